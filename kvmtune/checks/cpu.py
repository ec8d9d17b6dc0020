"""cpu.virt and cpu.vulnerabilities: CPU flags are evidence, never the verdict alone."""

from __future__ import annotations

from kvmtune.checks.facts import Facts
from kvmtune.checks.model import INFO, PASS, TITLES, UNKNOWN, WARN, Check, unknown

INTEL_CAPS = ("ept", "vpid", "flexpriority", "tpr_shadow", "vnmi", "unrestricted_guest")
AMD_CAPS = ("npt", "avic", "x2avic", "nrip_save", "decodeassists", "vgif")
VMX_VENDORS = ("GenuineIntel", "CentaurHauls")


def check_cpu_virt(facts: Facts) -> Check:
    title = TITLES["cpu.virt"]
    cpu = facts.cpu
    if cpu.arch != "x86_64":
        from kvmtune.checks.cpu_virt_arch import check_other_arch
        return check_other_arch(facts)
    if not cpu.flags:
        return unknown("cpu.virt", title, cpu.problems or ["/proc/cpuinfo has no flags"])
    features = set(cpu.flags) | set(cpu.vmx_flags or ())
    if cpu.has("vmx") or cpu.vendor in VMX_VENDORS:
        ext, caps, paging = "vmx", INTEL_CAPS, "ept"
    else:
        ext, caps, paging = "svm", AMD_CAPS, "npt"
    if ext == "vmx" and cpu.vmx_flags is None:
        # Only the "vmx flags" line (Linux >= 5.8) shows unrestricted_guest.
        caps = tuple(c for c in caps if c != "unrestricted_guest")
    present = [c for c in caps if c in features]
    data = {
        "vendor": cpu.vendor, "model_name": cpu.model_name, "extension": ext,
        "present": cpu.has(ext), "capabilities": {c: c in features for c in caps},
        "vmx_flags": list(cpu.vmx_flags) if cpu.vmx_flags is not None else None,
        "hypervisor": cpu.hypervisor,
    }
    where = " (running under a hypervisor)" if cpu.hypervisor else ""
    name = "VT-x" if ext == "vmx" else "AMD-V"
    if cpu.has(ext):
        caps_text = ", ".join(present) or "none of the capability flags"
        if paging not in features:
            return Check("cpu.virt", WARN, title,
                         f"{name} present{where} but no {paging.upper()}: KVM falls back to shadow paging ({caps_text})",
                         "Shadow paging makes every guest page-table change exit to the host. "
                         + ("Expose the host CPU to this guest (libvirt <cpu mode='host-passthrough'/>)."
                            if cpu.hypervisor else "Only a newer CPU generation provides it."),
                         data)
        return Check("cpu.virt", PASS, title, f"{name} present{where}: {caps_text}", None, data)
    backends = ", ".join(m.name for m in facts.modules.backends) or None
    kvm = facts.kvm
    if kvm is not None and kvm.probe.guest_ran:
        return Check("cpu.virt", INFO, title,
                     f"no {ext} flag{where}, yet KVM runs guests here (backend: {backends or 'unknown'})",
                     None, data)
    if kvm is not None and kvm.probe.failed_stage == "open" and facts.dev_kvm.exists and backends:
        # KVM is loaded and has a node, but this user may not open it: KVM could not be asked.
        return Check("cpu.virt", INFO, title,
                     f"no {ext} flag{where}; KVM's backend {backends} is loaded and /dev/kvm exists, but "
                     f"this user may not open it ({kvm.probe.error}), so KVM was not asked: see kvm.access",
                     None, data)
    if not facts.live and facts.dev_kvm.exists and backends:
        # A snapshot of such a host: its KVM loaded and made its node; only the live host can run a guest.
        return Check("cpu.virt", INFO, title,
                     f"no {ext} flag{where}; KVM's backend {backends} is loaded and /dev/kvm exists: whether "
                     "it runs guests is for the live host's kvm.functional (not available in a snapshot)",
                     None, data)
    cpuid = facts.cpuid
    data["cpuid"] = cpuid
    log = list(facts.virt_refusals or ())
    data["kernel_log"] = log
    firmware = (f"Enable {name} ('Intel Virtualization Technology' / 'SVM Mode') in the firmware "
                "setup, then power the machine off and on (reboot needed).")
    if cpuid is not None and cpuid.get(ext):
        said = f"; the kernel logged: {log[-1]}" if log else ""
        return Check("cpu.virt", WARN, title,
                     f"the CPU reports {name} (CPUID) but the kernel hides the {ext} flag: the firmware "
                     f"disabled it, or the kernel refused it{said}", firmware, data)
    if log:
        return Check("cpu.virt", WARN, title, f"no {ext} flag; the kernel logged: {log[-1]}", firmware, data)
    if cpu.hypervisor:
        return Check("cpu.virt", WARN, title,
                     f"no {ext} flag: this is a guest whose hypervisor does not expose {name}"
                     + (" (CPUID agrees)" if cpuid is not None else ""),
                     "Enable nested virtualization on the outer host (kvm_intel nested=1 or "
                     "kvm_amd nested=1) and give this guest the host CPU (host-passthrough).", data)
    if cpuid is not None:
        return Check("cpu.virt", WARN, title, f"no {ext} flag, and CPUID says this CPU has no {name}",
                     "KVM needs a CPU with VT-x or AMD-V.", data)
    return Check("cpu.virt", WARN, title,
                 f"no {ext} flag: the CPU lacks {name}, or firmware disabled it "
                 "(Linux >= 5.6 hides the flag when firmware locks it off)", firmware, data)


# Vulnerabilities that matter where guests run: guest-to-host or guest-to-guest leaks.
HYPERVISOR_VULNS = ("l1tf", "mds", "itlb_multihit", "retbleed", "mmio_stale_data", "tsx_async_abort",
                    "srbds", "spec_rstack_overflow", "gather_data_sampling",
                    "reg_file_data_sampling", "spectre_v2", "vmscape", "indirect_target_selection",
                    "tsa", "spec_store_bypass")


def check_cpu_vulnerabilities(facts: Facts) -> Check:
    from kvmtune.checks.mitigations import explain, read_mitigations

    title = TITLES["cpu.vulnerabilities"]
    vulns = facts.vulns
    if not vulns.states:
        if vulns.problems:
            return unknown("cpu.vulnerabilities", title, vulns.problems)
        return Check("cpu.vulnerabilities", UNKNOWN, title,
                     "no /sys/devices/system/cpu/vulnerabilities (kernel older than 4.15, or not captured)")
    relevant = {k: v for k, v in vulns.states.items() if k in HYPERVISOR_VULNS}
    vulnerable = sorted(k for k, v in relevant.items() if v.startswith("Vulnerable"))
    smt_exposed = sorted(k for k, v in relevant.items()
                         if "SMT vulnerable" in v and vulns.smt_active is not False)
    data = {"states": relevant, "vulnerable": vulnerable, "smt_exposed": smt_exposed,
            "smt_control": vulns.smt_control, "smt_active": vulns.smt_active}
    # What the command line chose explains a "Vulnerable" that no update will change.
    chosen, meaning, guest = read_mitigations(facts.known("cmdline") or ())
    clause, chosen_hint = explain(chosen, meaning, guest) if chosen is not None else ("", None)
    if chosen is not None:
        data["mitigations"] = {"value": chosen, "turns_off": meaning, "guest_vectors_off": guest}
    said = f"; {clause}" if clause else ""
    if vulnerable:
        return Check("cpu.vulnerabilities", WARN, title, f"vulnerable: {', '.join(vulnerable)}{said}",
                     chosen_hint or "Update the CPU microcode and the kernel; check that 'mitigations=off' is "
                     "not on the kernel command line (reboot needed).", data)
    if smt_exposed:
        return Check("cpu.vulnerabilities", WARN, title,
                     f"mitigated, but SMT still exposes: {', '.join(smt_exposed)}{said}",
                     "If guests do not trust each other, turn SMT off: 'echo off > "
                     "/sys/devices/system/cpu/smt/control' now, 'nosmt' on the kernel command "
                     "line to keep it (reboot needed); or pin guests to whole cores.", data)
    if chosen_hint:  # none vulnerable today, but what the line turns off covers the next one too
        return Check("cpu.vulnerabilities", WARN, title, f"{len(relevant)} checked, none vulnerable now{said}",
                     chosen_hint, data)
    return Check("cpu.vulnerabilities", PASS, title,
                 f"{len(relevant)} checked, none vulnerable{said}", None, data)

