"""Judge CPU isolation, CPU power policy and the kernel command line. Pure: facts in, checks out."""

from __future__ import annotations

from kvmtune.checks.facts import Facts
from kvmtune.checks.model import INFO, PASS, TITLES, WARN, Check
from kvmtune.probe.parse import format_cpulist

SHOWN = 5  # IRQs or cores named in a detail before "and N more"
DEEP_IDLE_US = 20  # an idle state slower to leave than this costs a pinned guest's wakeups


def _cpus(cpus) -> str:
    return format_cpulist(sorted(cpus))


def _some(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def check_isolation(facts: Facts) -> Check:
    title = TITLES["cpu.isolation"]
    iso = facts.isolation
    data = iso.to_json()
    isolated = set(iso.all_isolated)
    from kvmtune.checks.isolation_quiet import pinned_gaps, quiet_gaps

    data["pinned_gaps"] = pinned_gaps(facts, iso, isolated)  # what intent pinned requires (checks.intents)
    if not isolated:
        return Check("cpu.isolation", INFO, title, "no CPUs isolated (right for a general host; for pinned guests "
                     "'kvmtune partition' computes a split)", None, data)
    problems = []
    nohz, rcu = set(iso.arg_cpus.get("nohz_full", iso.nohz_full)), set(iso.arg_cpus.get("rcu_nocbs", ()))
    if not nohz:
        problems.append(f"isolated CPUs {_cpus(isolated)} still take the scheduler tick (no nohz_full=)")
    elif isolated - nohz:
        problems.append(f"isolated CPUs {_cpus(isolated - nohz)} are not in nohz_full={_cpus(nohz)}")
    if nohz and not nohz <= rcu:
        problems.append(f"nohz_full CPUs {_cpus(nohz - rcu)} still run RCU callbacks (rcu_nocbs= does not cover them)")
    if iso.irqs:
        names = [f"{irq}" + (f" ({name})" if name else "") for irq, name, _ in iso.irqs]
        problems.append(f"IRQs {_some(names)} may be handled on isolated CPUs")
    if iso.default_smp_affinity is not None and set(iso.default_smp_affinity) & isolated:
        problems.append(f"new IRQs may land on isolated CPUs: /proc/irq/default_smp_affinity is "
                        f"{_cpus(iso.default_smp_affinity)}")
    if iso.workqueue is not None and set(iso.workqueue) & isolated:
        problems.append(f"unbound workqueues may run on isolated CPUs: the workqueue cpumask is {_cpus(iso.workqueue)}")
    if iso.irqbalance is not None and not isolated <= set(iso.irqbalance[1]):
        problems.append(f"irqbalance may move IRQs onto isolated CPUs {_cpus(isolated - set(iso.irqbalance[1]))} "
                        f"(IRQBALANCE_BANNED_CPULIST in /{iso.irqbalance[0]} does not ban them)")
    if iso.systemd_affinity is not None and set(iso.systemd_affinity[1]) & isolated:
        problems.append(f"system services may run on isolated CPUs: CPUAffinity= in /{iso.systemd_affinity[0]} is "
                        f"{_cpus(iso.systemd_affinity[1])}")
    cores = facts.known("isolated_cores") or ()
    split = [core for core in cores if set(core) & isolated and not set(core) <= isolated]
    if split:
        problems.append("SMT cores split between host and guests: " +
                        _some([f"{_cpus(set(c) & isolated)} isolated, {_cpus(set(c) - isolated)} not" for c in split]))
    numa = facts.known("numa")
    for node in numa.nodes if numa else ():
        if node.cpus and set(node.cpus) <= isolated:
            problems.append(f"node {node.id} has no housekeeping CPU: all of {_cpus(node.cpus)} are isolated")
    quiet, notes = quiet_gaps(iso, isolated, facts.known("cmdline"))
    problems += quiet
    how = [k for k in ("isolcpus", "nohz_full", "rcu_nocbs", "irqaffinity") if k in iso.args]
    how += ["cgroup partition"] if iso.partitions else []
    summary = f"isolated {_cpus(isolated)}" + (f" ({', '.join(how)})" if how else "") + "".join(f"; {n}" for n in notes)
    if problems:
        return Check("cpu.isolation", WARN, title, summary + "; " + "; ".join(problems),
                     "A profile's cpus: section sets the kernel arguments, IRQ affinities, the workqueue and writeback "
                     "cpumasks, kernel threads and irqbalance together, its boot: and sysctl: sections the rest "
                     "('kvmtune plan pinned' shows what it would change).", data)
    return Check("cpu.isolation", PASS, title, summary + "; IRQs, workqueues and services kept off them", None, data)


def check_power(facts: Facts) -> Check:
    title = TITLES["cpu.power"]
    power = facts.power
    data = power.to_json()
    if not power.policies and not power.idle_driver and not power.idle_states:
        return Check("cpu.power", INFO, title, "no cpufreq and no cpuidle here (usual in a VM: the host below "
                     "decides frequency and idle states)", None, data)
    parts = []
    governors = sorted({p[3] for p in power.policies if p[3]})
    if power.policies:
        drivers = sorted({p[2] for p in power.policies if p[2]})
        parts.append(f"governor {'/'.join(governors) or '?'} on {len(power.policies)} policies "
                     f"({'/'.join(drivers) or '?'})")
        epp = sorted({p[4] for p in power.policies if p[4]})
        if epp:
            parts.append(f"EPP {'/'.join(epp)}")
    else:
        parts.append("no cpufreq")
    if power.boost is not None:
        parts.append(f"boost {'on' if power.boost else 'off'}")
    deep = [(n, lat) for n, lat, disabled in power.idle_states if lat is not None and lat > DEEP_IDLE_US and not disabled]
    if power.idle_states:
        parts.append(f"cpuidle {power.idle_driver or '?'}: " +
                     ", ".join(f"{n} {lat}us" + (" off" if d else "") for n, lat, d in power.idle_states))
    limits = {v for v in power.resume_latency.values() if isinstance(v, int) and v > 0}
    isolated = set(facts.known("isolation").all_isolated) if facts.known("isolation") else set()
    problems = []
    if isolated:
        if governors and governors != ["performance"]:
            problems.append(f"governor {'/'.join(governors)} on a host with isolated CPUs")
        if deep and not limits:
            problems.append(f"idle states {', '.join(n for n, _ in deep)} take over {DEEP_IDLE_US} us to leave and "
                            "no PM QoS resume latency limits them")
    detail = "; ".join(parts)
    if problems:
        return Check("cpu.power", WARN, title, detail + "; " + "; ".join(problems),
                     "A profile's power: section (governor: performance, max_wakeup_latency_us: 20) sets these now "
                     "and at boot, without a daemon holding /dev/cpu_dma_latency.", data)
    return Check("cpu.power", INFO, title, detail, None, data)


REPEATABLE = ("hugepagesz", "hugepages", "default_hugepagesz")  # given once per page size


def check_cmdline(facts: Facts) -> Check:
    title = TITLES["kernel.cmdline"]
    boot = facts.boot_args
    running = {f"{k}={v}" if v is not None else k for k, v in facts.cmdline}
    data = {**boot.to_json(), "running": sorted(running)}
    mine = list(boot.kvmtune)
    if not mine:
        return Check("kernel.cmdline", INFO, title, "kvmtune has persisted no kernel arguments", None, data)
    problems = []
    pending = [w for w in mine if w not in running]
    if pending:
        problems.append(f"reboot pending: the running kernel lacks {' '.join(pending)}")
    keys = {w.partition("=")[0]: w for w in mine if w.partition("=")[0] not in REPEATABLE}
    contra = [f"{w} in /{f}" for f, w in boot.others if w.partition("=")[0] in keys and w != keys[w.partition("=")[0]]]
    if contra:
        problems.append("contradicted by " + _some(contra))
    if pending and boot.where == "unread":
        # An older kvmtune wrote the drop-in on a host GRUB does not boot: update-grub cannot help.
        problems.append(f"no boot loader reads kvmtune's /etc/default/grub.d drop-in here ({boot.loader})")
    if problems:
        reboot = ("Reboot: the boot entries already carry them." if boot.where == "bls" else
                  f"Add '{' '.join(pending)}' to the kernel command line by hand, then reboot; 'kvmtune rollback' "
                  "removes the unread drop-in." if boot.where == "unread" else
                  "Run 'update-grub' (or 'grub2-mkconfig -o /boot/grub2/grub.cfg'), then reboot.")
        hint = reboot if pending and not contra else "Remove the other setting, or change the profile to agree with it."
        return Check("kernel.cmdline", WARN, title, "; ".join(problems), hint, data)
    return Check("kernel.cmdline", PASS, title, f"the running kernel has kvmtune's {' '.join(mine)}", None, data)
