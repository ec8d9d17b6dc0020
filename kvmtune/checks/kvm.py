"""kvm.device, kvm.access, kvm.functional, kvm.modules.

kvm.functional decides whether KVM is usable: it runs a guest. The others
explain why not, and what KVM's configuration costs.
"""

from __future__ import annotations

import errno

from kvmtune.checks.facts import Facts
from kvmtune.checks.model import FAIL, PASS, SKIP, SNAPSHOT, TITLES, UNKNOWN, WARN, Check
from kvmtune.probe.devices import can_read_write

ACCESS_HINT = ("Give the user the device's group ('usermod -aG kvm USER', then log in again), or "
               "set it with a udev rule: KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\" in "
               "/etc/udev/rules.d/65-kvm.rules, then 'udevadm trigger /dev/kvm'. No reboot needed.")


def check_device(facts: Facts) -> Check:
    title = TITLES["kvm.device"]
    node = facts.node("kvm")
    data = node.to_json()
    if node.problem:
        return Check("kvm.device", UNKNOWN, title, f"/dev/kvm: {node.problem}", None, data)
    if not node.captured:
        return Check("kvm.device", UNKNOWN, title, "no /dev in this snapshot", None, data)
    if node.exists:
        wrong = node.wrong_kind
        if wrong:
            return Check("kvm.device", FAIL, title, f"/dev/kvm is not the KVM character device (10:232): {wrong}",
                         "Remove it and let udev recreate it: 'rm /dev/kvm && udevadm trigger' "
                         "(or 'modprobe -r kvm_intel kvm && modprobe kvm_intel').", data)
        return Check("kvm.device", PASS, title, "/dev/kvm is present (character device 10:232)", None, data)
    backends = facts.modules.backends
    if backends:
        hint = ("KVM is loaded but the node is missing: run 'udevadm trigger', check that /dev is a "
                "devtmpfs; in a container, pass the device in (docker --device /dev/kvm).")
    elif facts.cpu.arch != "x86_64":
        hint = {"aarch64": "arm64 KVM is built into the kernel and makes /dev/kvm only when the kernel was "
                           "entered at EL2: see cpu.virt.",
                "ppc64": "Load KVM-HV on a PowerNV host: 'modprobe kvm_hv' (see cpu.virt).",
                "s390x": "Load KVM: 'modprobe kvm' (it needs the SIE facility: see cpu.virt)."}.get(
                    facts.cpu.arch, "This architecture has no KVM host support: see cpu.virt.")
    else:
        module = "kvm_amd" if facts.cpu.vendor in ("AuthenticAMD", "HygonGenuine") else "kvm_intel"
        hint = (f"Load KVM: 'modprobe {module}' (to keep it: 'echo {module} > "
                f"/etc/modules-load.d/kvm.conf'); if it refuses, enable virtualization in the "
                "firmware setup and power-cycle (reboot needed).")
    return Check("kvm.device", FAIL, title, "/dev/kvm does not exist", hint, data)


def check_access(facts: Facts) -> Check:
    title = TITLES["kvm.access"] + (f" and {facts.as_user}" if facts.as_user else "")
    node = facts.node("kvm")
    if not facts.live:
        return Check("kvm.access", SKIP, title, SNAPSHOT)
    if not node.exists:
        return Check("kvm.access", SKIP, title, "no /dev/kvm (see kvm.device)")
    st, accounts, me = node.stat, facts.accounts, facts.access
    owner = next((n for n, (uid, _) in accounts.users.items() if uid == st.uid), str(st.uid))
    owner_group = accounts.group_name(st.gid) or str(st.gid)
    data = {"mode": f"{st.perm:04o}", "uid": st.uid, "group": owner_group, "acl": bool(node.acl)}
    problems = []
    data["invoking_user"] = {"uid": me.uid, "groups": list(me.groups), "read_write": me.read_write}
    if not me.read_write:
        groups = ", ".join(accounts.group_name(g) or str(g) for g in me.groups) or "none"
        problems.append(f"uid {me.uid} (groups: {groups}) cannot open /dev/kvm read-write")
    if facts.as_user:
        user = accounts.user(facts.as_user)
        ok = user is not None and can_read_write(node, user.uid, set(user.groups))
        data["as_user"] = {"name": facts.as_user, "uid": user.uid if user else None, "read_write": ok}
        if not ok:
            problems.append(f"user {facts.as_user} cannot open /dev/kvm read-write")
    where = f"mode {st.perm:04o}, owner {owner}, group {owner_group}" + (", with ACL" if node.acl else "")
    if problems:
        hint = ACCESS_HINT
        if accounts.group_id("kvm") is None:
            hint = "There is no 'kvm' group: 'groupadd -r kvm' first. " + hint
        return Check("kvm.access", FAIL, title, f"{'; '.join(problems)} ({where})", hint, data)
    who = "invoking user" + (f" and {facts.as_user}" if facts.as_user else "")
    return Check("kvm.access", PASS, title, f"{who} can read and write /dev/kvm ({where})", None, data)


def check_functional(facts: Facts) -> Check:
    title = TITLES["kvm.functional"]
    if not facts.live:
        return Check("kvm.functional", SKIP, title, SNAPSHOT)
    if not facts.node("kvm").exists:
        return Check("kvm.functional", SKIP, title, "no /dev/kvm (see kvm.device)")
    arch = facts.cpu.arch
    if arch not in ("x86_64", "aarch64"):
        return Check("kvm.functional", SKIP, title,
                     f"no guest probe for {arch} yet (the x86 one runs x86 code): /dev/kvm and "
                     "the kvm module decide readiness here (see kvm.device and cpu.virt)")
    probe = facts.kvm.probe
    data = probe.to_json()
    if arch == "aarch64" and probe.guest_ran:
        return Check("kvm.functional", PASS, title,
                     f"created a VM ({probe.ipa_bits or 40}-bit IPA) and a vCPU (target {probe.target}) and ran "
                     f"guest code to its MMIO write ({len(probe.exits)} exits, {probe.elapsed_ms:.1f} ms)",
                     None, data)
    if probe.guest_ran:
        return Check("kvm.functional", PASS, title,
                     f"created a VM and a vCPU and ran guest code to its HLT "
                     f"({len(probe.exits)} exits, {probe.elapsed_ms:.1f} ms, API {probe.api_version})",
                     None, data)
    stage, err = probe.failed_stage, probe.errno
    if stage == "open" and err in (errno.EACCES, errno.EPERM):
        return Check("kvm.functional", UNKNOWN, title,
                     "KVM could not be asked: this user may not open /dev/kvm (see kvm.access)", ACCESS_HINT, data)
    if stage == "create_vm" and err == errno.EBUSY:
        return Check("kvm.functional", FAIL, title,
                     "KVM_CREATE_VM: device busy: another hypervisor holds VT-x/AMD-V",
                     "Stop the other hypervisor (VirtualBox, VMware) and its kernel modules; "
                     "kvm.enable_virt_at_load=1 makes KVM claim the extensions at load instead.",
                     data)
    if stage == "open" and err in (errno.ENXIO, errno.ENODEV):
        return Check("kvm.functional", FAIL, title,
                     "/dev/kvm has no driver behind it (module not loaded or failed to set up)",
                     "Load the vendor module (modprobe kvm_intel / kvm_amd) and read its refusal "
                     "in the kernel log ('journalctl -k | grep -i kvm').", data)
    if arch == "aarch64" and not stage:
        stage = "run"
    what = f"{stage}: {probe.error}" + (f" ({errno.errorcode.get(err, err)})" if err else "")
    return Check("kvm.functional", FAIL, title, f"KVM refused: {what}",
                 "Read the kernel log ('journalctl -k | grep -i kvm') for the reason.", data)


# Per-backend parameters: (name, meaning when off, warn when off?)
INTEL_PARAMS = {
    "ept": ("shadow paging: every guest page-table change exits to the host", True),
    "vpid": ("TLB flushed on every VM entry and exit", True),
    "unrestricted_guest": ("real-mode guest code (firmware, boot) is emulated", True),
    "enable_apicv": ("interrupts and EOIs exit to the host", True),
    "pml": ("dirty logging for live migration uses write-protect faults", False),
    "nested": ("guests cannot run their own hypervisor", False),
}
AMD_PARAMS = {
    "npt": ("shadow paging: every guest page-table change exits to the host", True),
    "avic": ("interrupts to guests exit to the host (AVIC off)", False),
    "nested": ("guests cannot run their own hypervisor", False),
    "sev": ("no SEV guests", False),
    "sev_es": ("no SEV-ES guests", False),
    "sev_snp": ("no SEV-SNP guests", False),
}


def _off(value: str | None) -> bool:
    return value is not None and value.strip().upper() in ("N", "0")


def check_modules(facts: Facts) -> Check:
    title = TITLES["kvm.modules"]
    mods = facts.modules
    if not mods.captured:
        return Check("kvm.modules", UNKNOWN, title, "no /sys/module to read (not captured in this snapshot)")
    data = mods.to_json()
    if not mods.modules:
        return Check("kvm.modules", FAIL if facts.live else WARN, title,
                     "no kvm module is built in or loaded",
                     "Load it: 'modprobe kvm_intel' or 'modprobe kvm_amd'.", data)
    warns, notes = [], []
    for module, table in (("kvm_intel", INTEL_PARAMS), ("kvm_amd", AMD_PARAMS)):
        m = mods.get(module)
        if m is None:
            continue
        requested = mods.requested.get(module, {})
        for param, (cost, warn) in table.items():
            value = m.params.get(param)
            if not _off(value):
                continue
            text = f"{module}.{param}={value} ({cost})"
            if param in requested and not _off(requested[param]):
                text += f"; requested {requested[param]} but the kernel turned it off (no hardware support)"
            (warns if warn else notes).append(text)
    kvm = mods.get("kvm")
    if kvm:
        from kvmtune.checks.kvm_pinned import pinned_notes

        short, data["pinned"] = pinned_notes(kvm.params, facts.known("cmdline"), facts.known("cpu"))
        if short:
            notes.append("for pinned guests: " + ", ".join(short))
        if _off(kvm.params.get("tdp_mmu")):
            notes.append("kvm.tdp_mmu=N")
    backends = ", ".join(f"{m.name} ({'built-in' if m.builtin else 'loaded'})" for m in mods.backends)
    summary = f"backend: {backends or 'none'}"
    if mods.problems:
        notes.append(f"unreadable: {len(mods.problems)} parameters")
    if warns:
        return Check("kvm.modules", WARN, title, f"{summary}; " + "; ".join(warns),
                     "Remove the override from /etc/modprobe.d and the kernel command line, "
                     "then reload the module ('modprobe -r kvm_intel && modprobe kvm_intel' with "
                     "no guests running) or reboot.", data)
    if not mods.backends:
        return Check("kvm.modules", WARN, title, "kvm is present but no vendor backend (kvm_intel, kvm_amd)",
                     "Load the backend: 'modprobe kvm_intel' or 'modprobe kvm_amd'.", data)
    return Check("kvm.modules", PASS, title, summary + ("; " + "; ".join(notes) if notes else ""),
                 None, data)

