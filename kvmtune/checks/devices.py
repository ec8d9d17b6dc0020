"""devices.vhost_net, devices.tun, devices.vfio: the nodes QEMU opens for I/O."""

from __future__ import annotations

from kvmtune.checks.facts import Facts
from kvmtune.checks.model import FAIL, INFO, PASS, UNKNOWN, WARN, Check

# id -> (node, title, status when missing, why it matters, module to load)
DEVICES = {
    "devices.vhost_net": ("vhost_net", "/dev/vhost-net exists", WARN,
                          "virtio-net runs in QEMU's userspace: slower guest networking", "vhost_net"),
    "devices.tun": ("tun", "/dev/net/tun exists", FAIL,
                    "QEMU cannot create tap devices: guests have no host networking", "tun"),
    "devices.vfio": ("vfio", "/dev/vfio/vfio exists", INFO,
                     "PCI device assignment (VFIO) is unavailable", "vfio-pci"),
}


def check_device_node(facts: Facts, check_id: str) -> Check:
    name, title, missing_status, why, module = DEVICES[check_id]
    node = facts.node(name)
    data = node.to_json()
    if node.problem:
        return Check(check_id, UNKNOWN, title, f"/{node.path}: {node.problem}", None, data)
    if not node.captured:
        return Check(check_id, UNKNOWN, title, "no /dev in this snapshot", None, data)
    if node.exists:
        wrong = node.wrong_kind
        if wrong:
            return Check(check_id, missing_status, title, f"/{node.path} is not the device QEMU opens: {wrong}",
                         f"Remove it and let udev recreate it: 'rm /{node.path} && udevadm trigger'.", data)
        return Check(check_id, PASS, title, f"/{node.path} is present", None, data)
    loaded = f" (module {', '.join(node.modules)} is present: check udev)" if node.modules else ""
    return Check(check_id, missing_status, title, f"/{node.path} is missing{loaded}: {why}",
                 f"'modprobe {module}'; to keep it across reboots: "
                 f"'echo {module.replace('-', '_')} > /etc/modules-load.d/{module}.conf'.", data)
