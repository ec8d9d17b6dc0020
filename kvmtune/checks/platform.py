"""cgroups, iommu and secure_guest: what libvirt needs from the platform around KVM."""

from __future__ import annotations

from kvmtune.checks.boot_hint import kernel_args_here as _args
from kvmtune.checks.facts import Facts
from kvmtune.checks.model import INFO, PASS, TITLES, UNKNOWN, WARN, Check
from kvmtune.probe.cgroups import V1_NEEDED, V2_NEEDED

AMD_VENDORS = ("AuthenticAMD", "HygonGenuine")
# A group's default domain type says how the kernel runs the IOMMU (Documentation/ABI/testing/sysfs-kernel-iommu_groups).
MODES = {"identity": "pt (identity: iommu=pt)", "DMA-FQ": "lazy (DMA-FQ)", "DMA": "strict (DMA)"}


def check_cgroups(facts: Facts) -> Check:
    title = TITLES["cgroups"]
    cg = facts.cgroups
    if cg is None:
        return Check("cgroups", UNKNOWN, title, "no /proc/mounts to read (not captured in this snapshot)")
    data = cg.to_json()
    if cg.problems:
        return Check("cgroups", UNKNOWN, title, "; ".join(cg.problems), None, data)
    if cg.mode == "none":
        return Check("cgroups", WARN, title, "no cgroup filesystem is mounted",
                     "Mount cgroup2 at /sys/fs/cgroup (systemd does this at boot).", data)
    if cg.mode == "v2":
        # No cpuacct (part of cpu), io for blkio, devices by BPF: nothing to warn about there.
        missing = [c for c in V2_NEEDED if c not in cg.v2_controllers]
        have = f"cgroup v2: {' '.join(cg.v2_controllers) or 'no controllers'}"
    else:
        missing = [c for c in V1_NEEDED if c not in cg.v1_controllers]
        have = f"cgroup {cg.mode} (v1 controllers: {' '.join(cg.v1_controllers)})"
    data["missing"] = missing
    if missing:
        return Check("cgroups", WARN, title, f"{have}; missing {', '.join(missing)}",
                     "Enable the controllers in the kernel (CONFIG_CGROUP_*) or remove "
                     "'cgroup_disable=' from the kernel command line (reboot needed).", data)
    return Check("cgroups", PASS, title, have, None, data)


def check_iommu(facts: Facts) -> Check:
    title = TITLES["iommu"]
    io = facts.iommu
    data = io.to_json()
    if not io.tables_readable and not io.groups:
        return Check("iommu", UNKNOWN, title,
                     "no /sys/firmware/acpi/tables to read (not captured, or not an ACPI system)", None, data)
    amd = facts.cpu.vendor in AMD_VENDORS
    table = "IVRS" if amd else "DMAR"
    off = {k: v for k, v in io.cmdline.items() if v in ("off", "0") or (k == "iommu" and v == "off")}
    if io.groups:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(io.group_types.items())) or "types unknown"
        modes = [MODES[k] for k in sorted(io.group_types) if k in MODES]
        detail = (f"the kernel enabled the IOMMU, mode {' and '.join(modes) or 'unknown'}: {io.groups} IOMMU groups "
                  f"({kinds}); units: {', '.join(io.units) or 'none listed'}")
        if io.group_types.get("identity"):
            detail += ("; identity (passthrough) domains trade DMA isolation from the host for "
                       "speed (iommu=pt), and block AMD SEV-SNP")
        return Check("iommu", PASS, title, detail, None, data)
    if off:
        words = " ".join(f"{k}={v}" for k, v in off.items())
        return Check("iommu", WARN, title, f"the kernel command line turns the IOMMU off: {words}",
                     f"Remove '{words}' from the kernel command line: {_args(facts)}.", data)
    if table in io.tables or ("DMAR" in io.tables or "IVRS" in io.tables):
        if amd:
            hint = ("AMD-Vi is on by default when the IVRS table exists: check that the kernel has "
                    "CONFIG_AMD_IOMMU and that nothing on the command line disables it (reboot needed).")
        else:
            hint = (f"Add 'intel_iommu=on' (kernels before 6.8 or built without "
                    f"CONFIG_INTEL_IOMMU_DEFAULT_ON): {_args(facts)}.")
        return Check("iommu", WARN, title,
                     f"firmware has an {table} table but the kernel set up no IOMMU groups", hint, data)
    if facts.cpu.hypervisor:  # a guest: its IOMMU is whatever its hypervisor gives it
        model, device = ("amd", "amd-iommu") if amd else ("intel", "intel-iommu,intremap=on")
        return Check("iommu", WARN, title,
                     f"no ACPI {table} table: this guest has no virtual IOMMU; PCI device assignment "
                     "(to nested guests) is unavailable",
                     f"Add a virtual IOMMU to this guest's definition on its host: libvirt "
                     f"<iommu model='{model}'/> (q35 machine, <ioapic driver='qemu'/> under <features>) or "
                     f"QEMU '-device {device}' with '-machine q35,kernel-irqchip=split'; only needed to "
                     "pass PCI devices to nested guests.", data)
    return Check("iommu", WARN, title,
                 f"no ACPI {table} table: IOMMU disabled in firmware or absent; PCI device assignment "
                 "is unavailable",
                 "Enable VT-d / AMD-Vi ('IOMMU') in the firmware setup (reboot needed); it is only "
                 "needed to pass PCI devices to guests.", data)


def check_secure_guest(facts: Facts) -> Check:
    title = TITLES["secure_guest"]
    cpu = facts.cpu
    if cpu.arch != "x86_64":
        from kvmtune.checks.secure_arch import check_secure_other_arch
        return check_secure_other_arch(facts)
    mods = facts.modules
    if cpu.vendor in AMD_VENDORS or cpu.has("sev") or mods.get("kvm_amd"):
        return _sev(facts, title)
    if cpu.has("tdx_host_platform"):
        tdx = (mods.get("kvm_intel").params.get("tdx") if mods.get("kvm_intel") else None)
        data = {"tdx_host_platform": True, "kvm_intel.tdx": tdx}
        if tdx and tdx.upper() in ("Y", "1"):
            return Check("secure_guest", PASS, title, "Intel TDX enabled (kvm_intel.tdx=Y)", None, data)
        return Check("secure_guest", WARN, title,
                     f"CPU and firmware support TDX but kvm_intel.tdx={tdx or 'absent'}",
                     f"Add 'kvm_intel.tdx=Y': {_args(facts)}.", data)
    return Check("secure_guest", INFO, title,
                 "CPU reports no TDX (tdx_host_platform); confidential guests unavailable", None,
                 {"sev": False, "tdx": False})


def _sev(facts: Facts, title: str) -> Check:
    amd = facts.modules.get("kvm_amd")
    params = amd.params if amd else {}
    gens = {g: params.get(g) for g in ("sev", "sev_es", "sev_snp")}
    dev = facts.node("sev")
    data = {"flags": [f for f in ("sev", "sev_es", "sev_snp") if facts.cpu.has(f)],
            "params": gens, "dev_sev": dev.exists}
    if not facts.cpu.has("sev"):
        return Check("secure_guest", INFO, title,
                     "CPU reports no SEV (absent, or SME/SEV disabled in firmware: the kernel then "
                     "hides the sev flags)",
                     "If the CPU is an EPYC, enable SME and SEV in the firmware setup (reboot needed).", data)
    if amd is None:
        return Check("secure_guest", INFO, title, "CPU supports SEV; kvm_amd is not loaded", None, data)
    if not _on(gens["sev"]):
        return Check("secure_guest", WARN, title, f"CPU supports SEV but kvm_amd.sev={gens['sev']}",
                     f"Add 'kvm_amd.sev=1': {_args(facts)}.", data)
    if not dev.exists:
        return Check("secure_guest", WARN, title,
                     "kvm_amd.sev is on but /dev/sev is missing: the PSP firmware did not initialise",
                     "Load the ccp module and check 'journalctl -k | grep -i sev' for firmware errors.", data)
    enabled = [n for n, g in (("SEV", "sev"), ("SEV-ES", "sev_es"), ("SEV-SNP", "sev_snp")) if _on(gens[g])]
    return Check("secure_guest", PASS, title, f"enabled: {', '.join(enabled)}", None, data)


def _on(value: str | None) -> bool:
    return value is not None and value.strip().upper() in ("Y", "1")
