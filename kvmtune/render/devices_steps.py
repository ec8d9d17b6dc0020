"""``kvmtune devices ADDRESS``: the exact steps to give one PCI function to a guest, in the
ecosystem's own terms (kernel arguments, modprobe.d, udev, libvirt, QEMU, memlock)."""

from __future__ import annotations

AMD = ("AuthenticAMD", "HygonGenuine")


def plan_binding(pci, needs, addresses: list[str]) -> tuple[list[str], list[str]]:
    """(modprobe.d lines, udev lines): see kvmtune.pci.binding_lines (the vfio section writes the same)."""
    from kvmtune.pci import binding_lines

    return binding_lines(pci, addresses)


def hostdev_xml(address: str) -> str:
    domain, bus, rest = address.split(":")
    slot, function = rest.split(".")
    return (f"<hostdev mode='subsystem' type='pci' managed='yes'>\n  <source>\n"
            f"    <address domain='0x{domain}' bus='0x{bus}' slot='0x{slot}' function='0x{function}'/>\n"
            f"  </source>\n</hostdev>")


def render_steps(pci, needs, address: str, vendor: str | None, no_iommu: str | None, out) -> None:
    """Prose is wrapped to the terminal; commands, rules and XML are written whole, each
    short enough for 80 columns."""
    from kvmtune.pci import ALONE, NEVER, NO_IOMMU, verdict
    from kvmtune.render.devices_text import width, wrap

    cols = width()

    def say(text: str, indent: str = "") -> None:
        if text.startswith("\n"):  # a blank line before a step (textwrap would make it a space)
            out.write("\n")
        out.write("\n".join(wrap(text.strip(), indent, cols)) + "\n")

    fn = pci.get(address)
    v = verdict(pci, needs, address)
    out.write(f"{address}  {fn.ids}  {fn.kind}  driver {fn.driver or '-'}  group {fn.iommu_group or '-'}\n")
    if needs and needs.needs.get(address):
        say(f"the host needs it for {' and '.join(needs.needs[address])}")
    say(f"passthrough: {v.verdict}: {no_iommu if v.verdict == NO_IOMMU and no_iommu else v.reason}")
    if v.verdict == NEVER:
        say("No steps: giving it to a guest would take what the host needs, or vfio-pci cannot bind it.")
        return
    taken = [address, *v.with_]
    # kernel-parameters.txt: amd_iommu= has no "on" (the AMD IOMMU is on unless amd_iommu=off)
    iommu = (("" if vendor in AMD else "intel_iommu=on ") if vendor
             else "intel_iommu=on (on Intel; AMD's IOMMU is on unless amd_iommu=off) ")
    say("\n1. Kernel arguments (GRUB_CMDLINE_LINUX in /etc/default/grub, 'update-grub', reboot):")
    out.write(f"   {iommu}iommu=pt\n")
    if v.verdict == NO_IOMMU:
        say("Then run 'kvmtune devices' again: the device needs an IOMMU group before the next steps.", "   ")
        return
    modprobe, udev = plan_binding(pci, needs, taken)
    if v.verdict != ALONE:
        say(f"\n   The whole group goes to the guest: {', '.join(taken)}", "   ")
    out.write("\n2. Bind to vfio-pci at boot:\n")
    if udev:
        say("Its ids are shared with a device the host keeps, so bind by address, in "
            "/etc/udev/rules.d/70-vfio-pci.rules:", "   ")
        out.write("".join(f"   {line}\n" for line in udev))
    out.write("   echo vfio-pci > /etc/modules-load.d/vfio-pci.conf\n")
    if modprobe:
        out.write("   /etc/modprobe.d/vfio.conf:\n" + "".join(f"   {line}\n" for line in modprobe))
    say(f'Or let kvmtune do it, now and at boot, and undo it on rollback: a profile with '
        f'vfio: {{devices: ["{address}"]}}, then \'kvmtune apply PROFILE\'.', "   ")
    out.write("\n3. libvirt (virsh edit GUEST, under <devices>):\n")
    for a in taken:
        out.write("".join(f"   {line}\n" for line in hostdev_xml(a).split("\n")))
    out.write("\n4. QEMU:\n" + " \\\n".join(f"   -device vfio-pci,host={a}" for a in taken) + "\n")
    say("\n5. Memlock: VFIO pins all guest RAM for DMA; the QEMU process needs RLIMIT_MEMLOCK of at least "
        "the guest's memory plus 1 GiB (libvirt raises it for <hostdev>; for plain QEMU: 'ulimit -l' in KiB, "
        "or LimitMEMLOCK= in its systemd unit). Without it VFIO_MAP_DMA fails with ENOMEM.")
