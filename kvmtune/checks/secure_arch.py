"""secure_guest on hosts that are not x86: each architecture has its own confidential guests.

Arm CCA (Realms, FEAT_RME with an RMM in firmware), POWER's Protected Execution Facility
(PEF: POWER9 and later, with an ultravisor) and IBM Z Secure Execution (z15 and later, with
prot_virt=1). cpuinfo shows none of them, so a dump can rule out only what the CPU's
generation rules out.
"""

from __future__ import annotations

from kvmtune.checks.facts import Facts
from kvmtune.checks.model import INFO, UNKNOWN, Check

TITLES = {
    "aarch64": "Confidential guests (Arm CCA)",
    "ppc64": "Confidential guests (POWER PEF)",
    "s390x": "Confidential guests (IBM Secure Execution)",
}
OLD_POWER = ("POWER5", "POWER6", "POWER7", "POWER8", "PPC970")  # PEF came with POWER9
# IBM Z machine types before the z15 (8561/8562), which brought Secure Execution.
OLD_Z = {"2064", "2066", "2084", "2086", "2094", "2096", "2097", "2098", "2817", "2818", "2827", "2828",
         "2964", "2965", "3906", "3907"}


def check_secure_other_arch(facts: Facts) -> Check:
    cpu = facts.cpu
    title = TITLES.get(cpu.arch, f"Confidential guests ({cpu.arch})")
    data = {"arch": cpu.arch, "model_name": cpu.model_name, "machine": cpu.machine}
    if cpu.arch == "ppc64":
        if (cpu.model_name or "").startswith(OLD_POWER):
            return Check("secure_guest", INFO, title,
                         f"{cpu.model_name.split()[0]} has no PEF (POWER9 and later): confidential guests "
                         "unavailable", None, data)
        return Check("secure_guest", UNKNOWN, title, "PEF needs POWER9 or later with an ultravisor in firmware: "
                     "cpuinfo cannot tell whether it is there", None, data)
    if cpu.arch == "s390x":
        if cpu.machine in OLD_Z:
            return Check("secure_guest", INFO, title, f"machine type {cpu.machine} predates Secure Execution "
                         "(IBM z15 and later): confidential guests unavailable", None, data)
        return Check("secure_guest", UNKNOWN, title,
                     "Secure Execution needs IBM z15 or later and prot_virt=1 on the kernel command line: "
                     "this dump cannot tell whether the ultravisor is enabled", None, data)
    if cpu.arch == "aarch64":
        return Check("secure_guest", UNKNOWN, title,
                     "Arm CCA Realms need FEAT_RME and an RMM in firmware: neither cpuinfo nor sysfs shows "
                     "them, so whether this host can run Realm guests is unknown", None, data)
    return Check("secure_guest", INFO, title, f"{cpu.arch}: Linux offers no confidential KVM guests here",
                 None, data)
