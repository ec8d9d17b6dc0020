"""HugeTLB pools (every page size, global and per node) and hugetlbfs mounts, as the kernel shows them.

/proc/meminfo's HugePages_* lines cover only the default page size (observed:
2 x 1 GiB allocated still read 0 there), so every size is read from its own
/sys/kernel/mm/hugepages/hugepages-<kB>kB directory.
"""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host.door import Host
from kvmtune.probe.numa import NumaFacts, pool_size_kb
from kvmtune.probe import parse
from kvmtune.probe.system import Mount, cmdline_values
from kvmtune.grammar import digits

POOL_DIR = "sys/kernel/mm/hugepages"
_FIELDS = ("nr_hugepages", "free_hugepages", "resv_hugepages", "surplus_hugepages",
           "nr_overcommit_hugepages")


def size_label(size_kb: int) -> str:
    """2048 -> 2M, 1048576 -> 1G."""
    for unit, factor in (("G", 1 << 20), ("M", 1 << 10)):
        if size_kb % factor == 0:
            return f"{size_kb // factor}{unit}"
    return f"{size_kb}K"


@record
class Pool:
    size_kb: int
    total: int | None
    free: int | None
    reserved: int | None
    surplus: int | None
    overcommit: int | None
    nodes: dict[int, dict[str, int | None]]

    def to_json(self) -> dict:
        return {
            "size_kb": self.size_kb,
            "total": self.total,
            "free": self.free,
            "reserved": self.reserved,
            "surplus": self.surplus,
            "overcommit": self.overcommit,
            "nodes": {str(k): v for k, v in sorted(self.nodes.items())},
        }


@record
class HugepageFacts:
    pools: tuple[Pool, ...] = ()
    default_size_kb: int | None = None
    mounts: tuple[Mount, ...] = ()
    boot: dict[str, list[str]] = {}
    problems: tuple[str, ...] = ()
    captured: bool = True  # False: a snapshot without /sys/kernel/mm
    mounts_captured: bool = True  # False: a snapshot without /proc/mounts

    def pool(self, size_kb: int) -> Pool | None:
        return next((p for p in self.pools if p.size_kb == size_kb), None)

    def mount_size_kb(self, mount: Mount) -> int | None:
        """The page size a hugetlbfs mount serves (pagesize= or the default size)."""
        value = mount.options.get("pagesize")
        return parse_size_kb(value) if value else self.default_size_kb

    def to_json(self) -> dict:
        return {
            "default_size_kb": self.default_size_kb,
            "pools": {str(p.size_kb): p.to_json() for p in self.pools},
            "mounts": [
                {"path": m.target, "pagesize_kb": self.mount_size_kb(m), "options": m.options}
                for m in self.mounts
            ],
            "boot": self.boot,
        }


def parse_size_kb(text: str) -> int | None:
    """``1024M`` / ``1G`` / ``2048k`` / bytes -> kB, as the kernel prints hugetlbfs sizes."""
    text = text.strip()
    unit = text[-1:].upper() if text[-1:].isalpha() else ""
    count = text[:-1] if unit else text
    if not digits(count) or unit not in ("", "K", "M", "G"):
        return None
    value = int(count)
    return {"": value // 1024, "K": value, "M": value << 10, "G": value << 20}[unit]


def read_global_pools(host: Host) -> tuple[dict[int, list[int | None]], tuple[str, ...]]:
    """Each pool size's global counters (_FIELDS order) and what could not be read."""
    problems: list[str] = []
    pools = {}
    for entry in host.listdir(POOL_DIR):
        size = pool_size_kb(entry)
        if size is None:
            continue
        values = []
        for name in _FIELDS:
            rel = f"{POOL_DIR}/{entry}/{name}"
            try:
                text = host.read_optional(rel)
            except HostError as exc:
                problems.append(f"/{rel}: {exc.reason}")
                text = None
            value = parse.int_or_none(text)
            if text is not None and value is None:
                problems.append(f"/{rel}: not a number: {text.strip()[:40]!r}")
            values.append(value)
        pools[size] = values
    return pools, tuple(problems)


def empty_sizes(pools: dict[int, list[int | None]]) -> frozenset[int]:
    """Sizes with no page at all: every node's pool of them is empty too, unread."""
    return frozenset(size for size, v in pools.items() if v[0] == 0 and v[3] == 0)


def read_hugepages(host: Host, numa: NumaFacts, meminfo: dict[str, int],
                   mounts: list[Mount] | None, cmdline: list[tuple[str, str | None]],
                   global_pools: tuple[dict[int, list[int | None]], tuple[str, ...]] | None = None) -> HugepageFacts:
    """Every pool; ``mounts`` None: /proc/mounts was not there to read."""
    by_size, read_problems = global_pools if global_pools is not None else read_global_pools(host)
    problems = list(read_problems)
    pools = []
    for size, values in by_size.items():
        nodes = {
            n.id: {"total": p.total, "free": p.free, "surplus": p.surplus}
            for n in numa.nodes if (p := n.hugepages.get(size)) is not None
        }
        pools.append(Pool(size, *values, nodes=nodes))
    pools.sort(key=lambda p: p.size_kb)
    boot = {k: cmdline_values(cmdline, k) for k in ("hugepagesz", "hugepages", "default_hugepagesz")}
    return HugepageFacts(
        pools=tuple(pools),
        default_size_kb=meminfo.get("Hugepagesize"),
        mounts=tuple(m for m in mounts or () if m.fstype == "hugetlbfs"),
        boot={k: v for k, v in boot.items() if v},
        problems=tuple(problems),
        captured=host.live or host.is_dir("sys/kernel/mm"),
        mounts_captured=mounts is not None,
    )
