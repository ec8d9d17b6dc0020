"""What ``mitigations=`` on the kernel command line chose, in a KVM host's terms.

Documentation/admin-guide/kernel-parameters.txt (``mitigations=``): ``off``, ``auto`` (the
default) and ``auto,nosmt``. Linux 6.17 added attack vector controls
(Documentation/admin-guide/hw-vuln/attack_vector_controls.rst): after ``auto`` (or ``off``),
``no_user_kernel``, ``no_user_user``, ``no_guest_host``, ``no_guest_guest`` and
``no_cross_thread`` each turn off the mitigations of one attack vector. A kernel before 6.17
does not know them: it logs "Unsupported mitigations=..." and keeps ``auto``.
"""

from __future__ import annotations

VECTORS = {
    "no_user_kernel": "host processes attacking the kernel",
    "no_user_user": "host processes attacking each other",
    "no_guest_host": "guests attacking this host",
    "no_guest_guest": "guests attacking each other",
    "no_cross_thread": "attacks across SMT siblings (SMT is not turned off for them)",
}
# The vectors a host that runs guests loses protection on.
GUEST_VECTORS = ("no_guest_host", "no_guest_guest", "no_cross_thread")


def read_mitigations(cmdline) -> tuple[str | None, list[str], list[str]]:
    """(the last ``mitigations=`` value as given, what each part turns off, the parts that turn
    off protection between guests and the host); (None, [], []) when the line has none."""
    values = [v for k, v in cmdline if k == "mitigations" and v is not None]
    if not values:
        return None, [], []
    value = values[-1]  # the kernel parses each occurrence in turn: the last one wins
    parts = [p for p in value.split(",") if p]
    if parts[:1] == ["off"]:
        return value, ["every optional mitigation, for every attack vector"], ["off"]
    meaning, guest = [], []
    for part in parts[1:] if parts[:1] == ["auto"] else parts:
        if part in VECTORS:
            meaning.append(VECTORS[part])
            if part in GUEST_VECTORS:
                guest.append(part)
        elif part == "nosmt":
            continue  # turns nothing off: SMT goes off where a vulnerability needs it
        else:
            meaning.append(f"'{part}', which the kernel does not know (it then keeps mitigations=auto)")
    return value, meaning, guest


def explain(value: str, meaning: list[str], guest: list[str]) -> tuple[str, str | None]:
    """(a clause for the detail, a hint where the line turns off what guests rely on)."""
    clause = f"the kernel command line has mitigations={value}: " + (
        "mitigations off for " + ", ".join(meaning) if meaning else "every mitigation on")
    if not guest:
        return clause, None
    if guest == ["off"]:
        return clause, ("Remove 'mitigations=off' from the kernel command line (reboot needed) unless every guest "
                        "and every process here is trusted; microcode and kernel updates cannot help while it is there.")
    keep = [p for p in value.split(",") if p and p not in guest]
    fixed = ",".join(keep) or "auto"
    return clause + " (attack vector controls, Linux 6.17+)", (
        f"Run only guests you trust here, or set 'mitigations={fixed}' on the kernel command line instead "
        "(reboot needed): no microcode or kernel update brings back a mitigation the command line turns off.")
