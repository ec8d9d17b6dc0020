"""Kernel arguments kvmtune cannot persist on this host: a change left to the operator.

Where no boot loader kvmtune can edit is found (probe.boot_loader), writing a GRUB drop-in
would report success and change nothing at boot. Instead each group of boot-time arguments
(a page size's boot reservation, the CPU isolation) is one change that is ``blocked`` and
names the arguments to add by hand; it is ``ok`` once the running kernel has them all (the
operator added them and rebooted), so verify and a second apply settle. It writes nothing,
so it is never journaled and never carried out: not a kind of tune.registry.
"""

from __future__ import annotations

from kvmtune.tune.change import BLOCKED, OK, REBOOT, Change


class ByHandChange(Change):
    when = REBOOT
    __slots__ = ("what",)

    def __init__(self, what: str, args: list[str], running):
        self.what = what
        words = {f"{k}={v}" if v is not None else k for k, v in running}
        present = [a for a in args if a in words]
        missing = [a for a in args if a not in words]
        detail = ("the running kernel has them" if not missing else
                  f"no boot loader kvmtune can edit: add '{' '.join(missing)}' to the kernel command line "
                  "by hand, then reboot")
        super().__init__(" ".join(present) or None, " ".join(args), OK if not missing else BLOCKED, detail)

    target = property(lambda self: f"kernel command line: {self.what}")

    def execute(self, host, ctx) -> None:
        raise AssertionError("a change left to the operator is never carried out")

    def undo(self, host) -> None:
        raise AssertionError("a change left to the operator is never carried out")


def plan_by_hand(groups: list[tuple[str, list[str]]], facts, warnings: list[str]) -> list[ByHandChange]:
    """One change per group of arguments; a warning naming every argument still missing."""
    out = [ByHandChange(what, args, facts.cmdline) for what, args in groups if args]
    missing = [a for c in out if c.status == BLOCKED for a in c.after.split() if a not in (c.before or "").split()]
    if missing:
        warnings.append(f"no boot loader kvmtune can edit on this host ({facts.boot_loader.evidence}): nothing was written "
                        f"for the next boot; add these kernel arguments by hand: {' '.join(missing)}")
    return out
