"""CPU partitioning: the split, what moves now (IRQs, default_smp_affinity, the workqueue
and writeback cpumasks; kernel threads in tune.kthreads) and what only a reboot applies
(isolcpus, nohz_full, rcu_nocbs, irqaffinity, systemd's CPUAffinity). The split is computed
by kvmtune.cpus.split from the host's cores and nodes.
"""

from __future__ import annotations

import errno

from kvmtune.cpus.split import SplitError, by_housekeeping, by_isolated, kernel_args
from kvmtune.errors import HostError
from kvmtune.grammar import digits
from kvmtune.probe import parse
from kvmtune.tune.change import OK, PENDING_REBOOT
from kvmtune.tune.knob import KnobChange, TableKnob, table_field
from kvmtune.tune.registry import Field, integer, kind
from kvmtune.tune.sections import section

# writeback: the flusher workqueue has its own cpumask, which the unbound one does not cover
# (tuned sets both: profiles/cpu-partitioning/tuned.conf and profiles/realtime/tuned.conf, [sysfs]).
# tuned names it /sys/bus/workqueue/devices/writeback/cpumask, a link to this file; kvmtune writes
# through no link, so it names the device itself.
MASKS = {"default_smp_affinity": "proc/irq/default_smp_affinity", "workqueue": "sys/devices/virtual/workqueue/cpumask",
         "writeback": "sys/devices/virtual/workqueue/writeback/cpumask"}
SYSTEMD_DETAIL = "CPUAffinity= of system services: from the next boot (or 'systemctl daemon-reexec')"


def mask(cpus) -> str:
    """CPUs as the hex mask these files take (``3`` for CPUs 0 and 1)."""
    value = 0
    for cpu in cpus:
        value |= 1 << cpu
    return f"{value:x}"


def _cpus_of(text, as_mask: bool) -> set | None:
    if text is None:
        return None
    try:
        return set(parse.cpumask(str(text)) if as_mask else parse.cpulist(str(text).strip()))
    except ValueError:
        return None


@kind
class MaskChange(TableKnob):
    """default_smp_affinity or the workqueue cpumask: compared as CPU sets, written as a hex mask."""

    KIND, TABLE, ORDER = "cpumask", MASKS, 60
    FIELDS = table_field(MASKS)
    __slots__ = ()

    rel = property(lambda self: MASKS[self.knob])

    @staticmethod
    def equal(current, wanted) -> bool:
        return _cpus_of(current, True) == _cpus_of(wanted, True) if None not in (current, wanted) else current is wanted


@kind
class IrqChange(KnobChange):
    """One IRQ's smp_affinity_list. A managed IRQ (the kernel spreads it over queues) refuses the
    write: that is no failure of the run; isolcpus=managed_irq keeps it off isolated CPUs after
    the reboot, so it is reported as pending one."""

    KIND, ORDER = "irq", 61
    FIELDS = (Field("irq", integer(0, 1 << 20), "an IRQ number"),)
    __slots__ = ("irq",)

    def __init__(self, irq: int, before, after, status=None, detail=""):
        self.irq = irq
        super().__init__(before, after, status, detail)

    target = property(lambda self: f"irq {self.irq} affinity")
    rel = property(lambda self: f"proc/irq/{self.irq}/smp_affinity_list")

    @staticmethod
    def equal(current, wanted) -> bool:
        return _cpus_of(current, False) == _cpus_of(wanted, False) if None not in (current, wanted) else current is wanted

    def write(self, host, ctx) -> None:
        try:
            super().write(host, ctx)
        except HostError as exc:
            # The kernel's refusal to move this IRQ (seen here: EPERM as root, for a virtio
            # MSI-X queue; EIO for managed IRQs). EACCES or EROFS fail the run like any knob.
            if exc.errno not in (errno.EIO, errno.EINVAL, errno.EPERM):
                raise
            self.status = PENDING_REBOOT
            self.detail = "a managed IRQ: the kernel keeps its affinity; isolcpus=managed_irq moves it at boot"


def compute_split(profile, facts):
    """The split the profile asks for on this host; ProfileError naming the key if impossible."""
    req = profile.cpus
    node_cpus = {n.id: n.cpus for n in (facts.numa.nodes if facts.numa else ()) if n.cpus}
    try:
        if req.isolated is not None:
            return by_isolated(facts.cores, node_cpus, list(req.isolated))
        return by_housekeeping(facts.cores, node_cpus, req.housekeeping_per_node)
    except SplitError as exc:
        node = req.src.value.get("isolated") or req.src.value.get("housekeeping") or req.src
        raise node.error(str(exc)) from None


def boot_args(profile, split) -> list[str]:
    req = profile.cpus
    return kernel_args(split, req.managed_irq, req.nohz_full, req.rcu_nocbs, req.irqaffinity)


def plan_cpus(profile, facts, split, warnings: list[str]) -> list:
    """What moves now; the boot arguments and systemd drop-in are persisted files (persist.py)."""
    if split is None:
        return []
    housekeeping = list(split.housekeeping)
    isolated = set(split.isolated)
    changes: list = []
    req = profile.cpus
    if req.irqaffinity:
        current = facts.masks.get("default_smp_affinity")
        if current is None:
            warnings.append("no /proc/irq/default_smp_affinity here: new IRQs keep the kernel's default")
        else:
            changes.append(MaskChange("default_smp_affinity", current, mask(housekeeping),
                                      detail="IRQs registered from now on"))
        wanted = parse.format_cpulist(housekeeping)
        for irq, (affinity, effective) in sorted(facts.irqs.items()):
            if affinity & isolated:
                changes.append(IrqChange(irq, parse.format_cpulist(sorted(affinity)), wanted))
    # (flag, mask, what keeps its CPUs without the file, what the mask steers)
    for on, knob, absent, what in ((req.workqueue, "workqueue", "unbound workqueues keep all CPUs", "unbound workqueues"),
                                   (req.writeback, "writeback", "writeback keeps its CPUs", "the writeback workqueue")):
        current = facts.masks.get(knob) if on else None
        if on and current is None:
            warnings.append(f"no /{MASKS[knob]} here: {absent}")
        elif on:
            changes.append(MaskChange(knob, current, mask(housekeeping), detail=what))
    return [c for c in changes if c.status != OK or isinstance(c, MaskChange)]


def systemd_text(profile, split, header: str) -> str | None:
    if profile.cpus is None or not profile.cpus.systemd:
        return None
    return header + "[Manager]\n" + f"CPUAffinity={parse.format_cpulist(list(split.housekeeping))}\n"


def _read(host, profile, persist: bool, out: dict) -> None:
    if profile.cpus is None:
        return
    from kvmtune.probe.numa import read_numa
    from kvmtune.probe.topology import read_cores
    from kvmtune.tune.facts import online_cpus, strip

    online = online_cpus(host, out)
    out["cores"] = read_cores(host, online)
    if "numa" not in out:
        out["numa"] = read_numa(host, online)
    irqs = {}
    for entry in host.listdir("proc/irq"):
        if not digits(entry):
            continue
        text = host.read_optional(f"proc/irq/{entry}/smp_affinity_list")
        if text is None:
            continue
        effective = host.read_optional(f"proc/irq/{entry}/effective_affinity_list")
        try:
            irqs[int(entry)] = (set(parse.cpulist(text.strip())),
                                set(parse.cpulist(effective.strip())) if effective and effective.strip() else None)
        except ValueError:
            continue
    out["irqs"] = irqs
    out["masks"] = {k: strip(host.read_optional(rel)) for k, rel in MASKS.items()}


def _plan(profile, facts, ctx) -> list:
    # The split is the CPU sections' common ground: irqbalance and the boot files use it too.
    split = ctx.shared["split"] = compute_split(profile, facts) if profile.cpus is not None else None
    return plan_cpus(profile, facts, split, ctx.warnings)


section("cpus", order=60, reads=_read, plan=_plan)
