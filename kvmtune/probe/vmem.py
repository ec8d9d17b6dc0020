"""How the host backs memory it runs short of: swap, zswap, overcommit (Documentation/admin-guide/
sysctl/vm.rst, mm/zswap.rst, mm/overcommit-accounting.rst), and the swappiness kvmtune's own
sysctl.d drop-in asks for (what an applied profile set), each file read once."""

from __future__ import annotations

from kvmtune.grammar import digits
from kvmtune.record import record

VM = "proc/sys/vm"
ZSWAP = "sys/module/zswap/parameters"
ZSWAP_KNOBS = ("enabled", "compressor", "max_pool_percent", "zpool")
DROPIN = "etc/sysctl.d/99-zz-kvmtune.conf"  # tune.sysctl.DROPIN, spelled out: check imports no tuning


@record
class VmFacts:
    swappiness: int | None
    overcommit_memory: int | None  # 0 heuristic, 1 always, 2 strict (CommitLimit)
    overcommit_ratio: int | None
    overcommit_kbytes: int | None
    zswap: dict | None  # parameter -> text; None: the kernel has no zswap
    profile_swappiness: str | None  # vm.swappiness in kvmtune's drop-in, if it sets one

    def to_json(self) -> dict:
        return {"swappiness": self.swappiness, "overcommit_memory": self.overcommit_memory,
                "overcommit_ratio": self.overcommit_ratio, "overcommit_kbytes": self.overcommit_kbytes,
                "zswap": self.zswap, "profile_swappiness": self.profile_swappiness}


def _int(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if digits(text) and len(text) < 20 else None


def dropin_value(text: str, name: str) -> str | None:
    """The last ``name = value`` of a sysctl.d file (later lines win, as systemd-sysctl reads it)."""
    found = None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().lstrip("-") == name:
            found = value.strip()
    return found


def read_vm(host) -> VmFacts:
    values = {k: _int(host.read_optional(f"{VM}/{k}"))
              for k in ("swappiness", "overcommit_memory", "overcommit_ratio", "overcommit_kbytes")}
    zswap = None
    if host.is_dir(ZSWAP):
        zswap = {k: v.strip() for k in ZSWAP_KNOBS if (v := host.read_optional(f"{ZSWAP}/{k}")) is not None}
    dropin = host.read_optional(DROPIN)
    return VmFacts(**values, zswap=zswap,
                   profile_swappiness=dropin_value(dropin, "vm.swappiness") if dropin else None)
