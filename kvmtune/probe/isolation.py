"""CPU isolation as the host has it now, from every place it can be set.

The kernel's answer (/sys/devices/system/cpu/isolated and nohz_full), the boot
arguments behind it (isolcpus=, nohz_full=, rcu_nocbs=, irqaffinity=), cgroup v2
isolated partitions (what the kernel's cpu-isolation guide now prefers), and what
keeps work off isolated CPUs afterwards: IRQ affinities, default_smp_affinity, the
workqueue cpumask, irqbalance's ban list and systemd's CPUAffinity=. IRQs are read only
when something is isolated: a host without isolation pays for none of it.
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.host.procs import movable
from kvmtune.probe import parse
from kvmtune.probe.system import cmdline_values, read_noting
from kvmtune.record import record
from kvmtune.grammar import digits

CPU_DIR = "sys/devices/system/cpu"
ARGS = ("isolcpus", "nohz_full", "rcu_nocbs", "irqaffinity")
MAX_IRQS = 8192
MAX_TASKS = 65536
# The sysctls tuned's real-time profiles set (profiles/network-latency and realtime, tuned.conf).
QUIET_SYSCTLS = ("kernel.timer_migration", "kernel.nmi_watchdog", "kernel.hung_task_timeout_secs",
                 "vm.stat_interval", "kernel.sched_rt_runtime_us")
IRQBALANCE = ("etc/default/irqbalance", "etc/sysconfig/irqbalance")


@record
class IsolationFacts:
    isolated: tuple  # the kernel's isolated CPUs (isolcpus domain)
    nohz_full: tuple
    args: dict  # boot argument -> its raw value, for those on the command line
    arg_cpus: dict  # boot argument -> its CPUs
    partitions: tuple  # (cgroup, CPUs) of cpuset partitions that are "isolated"
    default_smp_affinity: tuple | None
    workqueue: tuple | None
    irqs: tuple  # (irq, name, CPUs) whose effective affinity reaches an isolated CPU
    irqbalance: tuple | None  # (file, banned CPUs) if irqbalance is configured here
    systemd_affinity: tuple | None  # (file, CPUs)
    problems: tuple = ()
    # Read only when something is isolated (tune.kthreads and tuned's profiles set these):
    sysctls: dict = {}  # QUIET_SYSCTLS name -> value (None: absent)
    writeback: tuple | None = None  # the writeback workqueue's cpumask
    kthreads: tuple = ()  # (pid, name, CPUs) of movable kernel threads that may run on isolated CPUs
    rcu_offloaded: tuple | None = None  # CPUs with an rcuop/rcuos kthread: rcu_nocbs= in effect

    @property
    def all_isolated(self) -> tuple:
        cpus = set(self.isolated) | set(self.nohz_full) | set(self.arg_cpus.get("isolcpus", ()))
        for _, part in self.partitions:
            cpus |= set(part)
        return tuple(sorted(cpus))

    def to_json(self) -> dict:
        fmt = parse.format_cpulist
        return {
            "isolated": fmt(list(self.isolated)), "nohz_full": fmt(list(self.nohz_full)),
            "cmdline": dict(self.args),
            "partitions": {cg: fmt(list(c)) for cg, c in self.partitions},
            "default_smp_affinity": None if self.default_smp_affinity is None else fmt(list(self.default_smp_affinity)),
            "workqueue_cpumask": None if self.workqueue is None else fmt(list(self.workqueue)),
            "irqs_on_isolated": [{"irq": i, "name": n, "cpus": fmt(list(c))} for i, n, c in self.irqs],
            "irqbalance_banned": None if self.irqbalance is None else
            {"file": "/" + self.irqbalance[0], "cpus": fmt(list(self.irqbalance[1]))},
            "systemd_cpu_affinity": None if self.systemd_affinity is None else
            {"file": "/" + self.systemd_affinity[0], "cpus": fmt(list(self.systemd_affinity[1]))},
            "problems": list(self.problems),
            "sysctls": dict(self.sysctls),
            "writeback_cpumask": None if self.writeback is None else fmt(list(self.writeback)),
            "kthreads_on_isolated": [{"pid": p, "name": n, "cpus": fmt(list(c))} for p, n, c in self.kthreads],
            "rcu_offloaded": None if self.rcu_offloaded is None else fmt(list(self.rcu_offloaded)),
        }


def isolcpus_cpus(value: str) -> list[int]:
    """``managed_irq,domain,2-7`` -> [2..7]: flags are words, the rest is the CPU list."""
    parts = value.split(",")
    while parts and parts[0].isalpha():
        parts.pop(0)
    return parse.cpulist(",".join(parts))


def read_isolation(host, cmdline: list[tuple[str, str | None]], systemd_conf=None) -> IsolationFacts:
    problems: list[str] = []

    def cpus(rel: str, mask: bool = False) -> tuple | None:
        try:
            text = host.read_optional(rel)
            if text is None:
                return None
            return tuple(parse.cpumask(text) if mask else parse.cpulist(text.strip()))
        except (HostError, ValueError) as exc:
            problems.append(f"/{rel}: {exc}")
            return None

    args, arg_cpus = {}, {}
    for name in ARGS:
        values = cmdline_values(cmdline, name)
        if values:
            args[name] = values[-1]
            try:
                arg_cpus[name] = tuple(isolcpus_cpus(values[-1]) if name == "isolcpus" else parse.cpulist(values[-1]))
            except ValueError as exc:
                problems.append(f"{name}= on the kernel command line: {exc}")
    partitions = _partitions(host, problems)
    facts = IsolationFacts(cpus(f"{CPU_DIR}/isolated") or (), cpus(f"{CPU_DIR}/nohz_full") or (), args, arg_cpus,
                           partitions, cpus("proc/irq/default_smp_affinity", mask=True),
                           cpus("sys/devices/virtual/workqueue/cpumask", mask=True), (),
                           _irqbalance(host, problems), _systemd(host, problems, systemd_conf))
    isolated = set(facts.all_isolated)
    if isolated:
        kthreads, offloaded = _kthreads(host, isolated)
        facts = facts._replace(irqs=_irqs_on(host, isolated, problems), kthreads=kthreads, rcu_offloaded=offloaded,
                               writeback=cpus("sys/devices/virtual/workqueue/writeback/cpumask", mask=True),
                               sysctls={n: _strip(host.read_optional("proc/sys/" + n.replace(".", "/")))
                                        for n in QUIET_SYSCTLS})
    return facts._replace(problems=tuple(problems))


def _strip(text: str | None) -> str | None:
    return None if text is None else text.strip()


def _kthreads(host, isolated: set[int]) -> tuple[tuple, tuple]:
    """Movable kernel threads that may run on isolated CPUs, and the CPUs whose RCU callbacks
    an rcuop/N (or rcuos/N) kthread takes: rcu_nocbs= in effect, not only on the command line."""
    moved, offloaded = [], set()
    for entry in host.listdir("proc")[:MAX_TASKS]:
        if not digits(entry) or entry in ("0", "1"):
            continue
        try:
            found = host.kernel_thread(int(entry))
        except HostError:
            continue
        if found is None:
            continue
        comm, flags, allowed = found
        head, _, cpu = comm.partition("/")
        if head in ("rcuop", "rcuos") and digits(cpu):
            offloaded.add(int(cpu))
        if movable(flags, allowed) and set(allowed) & isolated:
            moved.append((int(entry), comm, tuple(allowed)))
    return tuple(sorted(moved)), tuple(sorted(offloaded))


def _partitions(host, problems: list[str]) -> tuple:
    """cgroup v2 cpuset partitions marked isolated, in the top two levels where they are made.
    Only on the unified hierarchy (cgroup.controllers at the top), where every file name has a
    dot: a name without one is a child cgroup, so no entry needs a stat."""
    base = "sys/fs/cgroup"
    if not host.exists(f"{base}/cgroup.controllers"):
        return ()
    out = []
    for first in _children(host, base):
        for rel in [f"{base}/{first}"] + [f"{base}/{first}/{e}" for e in _children(host, f"{base}/{first}")]:
            try:
                state = host.read_optional(f"{rel}/cpuset.cpus.partition")
                if state and state.split()[0] == "isolated":
                    text = host.read_optional(f"{rel}/cpuset.cpus.effective") or ""
                    out.append((rel[len(base):] or "/", tuple(parse.cpulist(text.strip()))))
            except (HostError, ValueError) as exc:
                problems.append(f"/{rel}: {exc}")
    return tuple(out)


def _children(host, rel: str) -> list[str]:
    try:
        return [e for e in host.listdir(rel) if "." not in e or e.endswith((".slice", ".scope", ".service"))][:64]
    except HostError:
        return []


def _irqs_on(host, isolated: set[int], problems: list[str]) -> tuple:
    names = {}
    try:
        for line in (host.read_optional("proc/interrupts", limit=16 << 20) or "").splitlines()[1:]:
            irq, _, rest = line.partition(":")
            if digits(irq.strip()):
                names[irq.strip()] = " ".join(w for w in rest.split() if not digits(w))[-60:]
    except HostError as exc:
        problems.append(f"/proc/interrupts: {exc.reason}")
    out = []
    for irq in [e for e in host.listdir("proc/irq") if digits(e)][:MAX_IRQS]:
        for name in ("effective_affinity_list", "smp_affinity_list"):
            try:
                text = host.read_optional(f"proc/irq/{irq}/{name}")
            except HostError:
                text = None
            if text is not None:
                try:
                    cpus = set(parse.cpulist(text.strip()))
                except ValueError:
                    break
                if cpus & isolated:
                    out.append((int(irq), names.get(irq, ""), tuple(sorted(cpus))))
                break
    return tuple(sorted(out))


def _shell_value(text: str, key: str) -> str | None:
    """KEY=value (quotes dropped) from a shell-style file, the last assignment not commented out."""
    found = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(key + "="):
            found = line.partition("=")[2].strip().strip("\"'")
    return found


def _irqbalance(host, problems: list[str]) -> tuple | None:
    for rel in IRQBALANCE:
        text = read_noting(host, rel, problems)
        if text is None:
            continue
        listed = _shell_value(text, "IRQBALANCE_BANNED_CPULIST")
        mask = _shell_value(text, "IRQBALANCE_BANNED_CPUS")
        try:
            cpus = parse.cpulist(listed) if listed else (parse.cpumask(mask) if mask else [])
        except ValueError as exc:
            problems.append(f"/{rel}: {exc}")
            cpus = []
        return rel, tuple(cpus)
    return None


def _systemd(host, problems: list[str], systemd_conf=None) -> tuple | None:
    """CPUAffinity= of system.conf and its drop-ins, the last one read winning (as systemd reads them)."""
    from kvmtune.probe.system import read_systemd_conf

    found = None
    for rel, text in (systemd_conf if systemd_conf is not None else read_systemd_conf(host)):
        for line in (text or "").splitlines():
            line = line.strip()
            if line.startswith("CPUAffinity="):
                value = line.partition("=")[2].strip()
                try:
                    # One list, so its total is bounded as one (systemd takes spaces or commas).
                    cpus = parse.cpulist(",".join(value.replace(",", " ").split()))
                    found = (rel, tuple(sorted(set(cpus))))
                except ValueError as exc:
                    problems.append(f"/{rel}: {exc}")
    return found
