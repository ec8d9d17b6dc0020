"""cpu.virt on hosts that are not x86: each architecture shows its virtualization its own way.

aarch64 cpuinfo cannot tell whether the kernel was entered at EL2: KVM's init lines in the kernel
log say it, and /dev/kvm, which arm64 KVM registers only after its hyp init succeeded. POWER runs
KVM-HV only on bare metal (PowerNV); in a PowerVM LPAR (pSeries) only KVM-PR exists. s390x
lists the SIE facility as ``sie`` in cpuinfo's features, since Linux 4.5.
"""

from __future__ import annotations

from kvmtune.checks.facts import Facts
from kvmtune.checks.model import INFO, PASS, UNKNOWN, WARN, Check
from kvmtune.grammar import number

TITLES = {
    "aarch64": "Hardware virtualization (aarch64: KVM at EL2)",
    "arm": "Hardware virtualization (32-bit ARM)",
    "ppc64": "Hardware virtualization (POWER: KVM-HV on PowerNV)",
    "s390x": "Hardware virtualization (s390x: SIE)",
}
HYP_OK = "mode initialized successfully"
HYP_FAILED = ("HYP mode not available", "error initializing Hyp mode", "not supported", "CPU unsupported",
              "Cannot map", "Cannot initiali", "Failed to")


def check_other_arch(facts: Facts) -> Check:
    cpu = facts.cpu
    title = TITLES.get(cpu.arch, f"Hardware virtualization ({cpu.arch})")
    data = {"arch": cpu.arch, "vendor": cpu.vendor, "model_name": cpu.model_name,
            "platform": cpu.platform, "machine": cpu.machine}
    judge = {"aarch64": _aarch64, "ppc64": _power, "s390x": _s390x}.get(cpu.arch)
    if judge is None:
        return Check("cpu.virt", WARN, title, f"{cpu.arch}: Linux has no KVM host support here "
                     "(KVM for 32-bit ARM hosts was removed in Linux 5.7)", "Run KVM on an aarch64 host.", data)
    return judge(facts, title, data)


def _kvm_node(facts: Facts) -> bool | None:
    """Whether /dev/kvm exists; None where the snapshot has no /dev to say."""
    node = facts.node("kvm")
    return node.exists if node.captured and not node.problem else None


def _aarch64(facts: Facts, title: str, data: dict) -> Check:
    log = [line for line in (facts.virt_refusals or ()) if "kvm" in line.lower()]
    data["kernel_log"] = log
    ok = [line for line in log if HYP_OK in line]
    bad = [line for line in log if any(n in line for n in HYP_FAILED)]
    node = _kvm_node(facts)
    if ok:
        return Check("cpu.virt", PASS, title, f"the kernel runs at EL2 and KVM initialized: {ok[-1]}", None, data)
    if bad:
        return Check("cpu.virt", WARN, title, f"KVM did not initialize; the kernel logged: {bad[-1]}",
                     "KVM on aarch64 needs the kernel entered at EL2: bare metal, or a VM whose hypervisor "
                     "offers nested virtualization. Check the firmware boots Linux at EL2.", data)
    if node:
        return Check("cpu.virt", PASS, title,
                     "/dev/kvm exists: arm64 KVM registers it only after its EL2 (hyp) init succeeded", None, data)
    if node is False and facts.live:
        return Check("cpu.virt", WARN, title,
                     "no /dev/kvm and no KVM init line in the kernel log: the kernel was not entered at EL2, "
                     "or KVM is not built (CONFIG_KVM)",
                     "Read 'journalctl -k | grep kvm': 'HYP mode not available' means no EL2 (a VM "
                     "without nested virtualization, or firmware entering at EL1).", data)
    return Check("cpu.virt", UNKNOWN, title,
                 "cpuinfo cannot tell whether the kernel runs at EL2, and this snapshot has neither the kernel "
                 "log's KVM lines nor /dev", None, data)


def _power(facts: Facts, title: str, data: dict) -> Check:
    platform = facts.cpu.platform
    loaded = [m.name for m in facts.modules.modules if m.name in ("kvm_hv", "kvm_pr")]
    data["modules"] = loaded
    if platform == "PowerNV":
        return Check("cpu.virt", PASS, title, "bare metal (PowerNV): KVM-HV can run guests here"
                     + (f"; loaded: {', '.join(loaded)}" if loaded else ""), None, data)
    if platform == "pSeries":
        if "kvm_hv" in loaded:
            return Check("cpu.virt", INFO, title, "a pSeries guest with kvm_hv loaded: nested KVM-HV, which "
                         "only a KVM host (POWER9 or later) offers its guests", None, data)
        return Check("cpu.virt", WARN, title,
                     "a pSeries LPAR (PowerVM): KVM-HV needs bare metal (PowerNV); only KVM-PR runs here, "
                     "which is slow and not for production",
                     "Run KVM on a POWER system in OPAL (PowerNV) mode, not in an LPAR.", data)
    return Check("cpu.virt", UNKNOWN, title,
                 f"cpuinfo names no platform ({platform or 'none'}): PowerNV or pSeries cannot be told", None, data)


def _s390x(facts: Facts, title: str, data: dict) -> Check:
    cpu = facts.cpu
    where = f" ({cpu.platform})" if cpu.platform else ""
    if cpu.has_feature("sie"):
        return Check("cpu.virt", PASS, title, f"the SIE facility is offered{where}: cpuinfo lists sie",
                     None, data)
    if _kvm_node(facts):
        return Check("cpu.virt", PASS, title, f"/dev/kvm exists{where}: KVM initialized, so SIE is offered "
                     "(this kernel does not list sie)", None, data)
    release = cpu.kernel
    major, _, rest = (release or "").partition(".")
    minor = number(rest.partition(".")[0].partition("-")[0])
    data["kernel"] = release
    if number(major) is not None and minor is not None and (number(major), minor) >= (4, 5):
        return Check("cpu.virt", WARN, title,
                     f"no sie in cpuinfo's features{where}: SIE is not offered, so KVM cannot run guests here",
                     "Run KVM in an LPAR, or in a guest whose hypervisor offers nested SIE "
                     "(kvm.nested=1 on the KVM host).", data)
    return Check("cpu.virt", UNKNOWN, title,
                 f"no sie in cpuinfo's features{where}, but kernels before Linux 4.5 never list it"
                 + ("" if release else " and this snapshot does not say which kernel it ran")
                 + ": its absence decides nothing", None, data)
