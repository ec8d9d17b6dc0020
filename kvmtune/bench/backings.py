"""Which host backings a run can have: THP allowed, free pages in the pools (or grown for the
run with --grow-pools, within the reserve), and the mappings themselves."""

from __future__ import annotations

from kvmtune.bench.hostmem import BACKINGS, PAGE, Mapping
from kvmtune.bench.host_info import usable_kb as usable
from kvmtune.probe.hugepages import read_global_pools


class Closer:
    """Something ``held`` releases in reverse order before the host is put back."""

    def __init__(self, close):
        self.close = close


def backings(host, settings, guard, held: list, described: dict) -> tuple[list[Mapping], dict]:
    """A mapping per backing the host can have, and why each other one is skipped (``described``:
    describe_host's answer, read at the start of the run)."""
    thp = described["thp"]["enabled"]
    pools, _ = read_global_pools(host)  # with the reserved counts describe_host leaves out
    usable_kb, reserve_kb = usable(described)
    usable_kb -= sum(1 for k in ("4k", "thp") if k in settings.backings) * settings.size // 1024
    mappings, skips = [], {}
    for kind in BACKINGS:
        reason = None
        if kind not in settings.backings:
            reason = "not asked for"
        elif kind == "thp" and thp is None:
            reason = "this kernel has no transparent huge pages"
        elif kind == "thp" and thp == "never":
            reason = "THP is 'never' on this host (a profile's thp.enabled: madvise allows it)"
        elif kind.startswith("hugetlb"):
            reason, usable_kb = _pool_for(kind, settings, pools, guard, usable_kb, reserve_kb)
        if reason is None:
            try:
                mapping = Mapping(kind, settings.size)
            except OSError as exc:
                reason = f"the host refused the mapping: {exc.strerror}"
            else:
                held.append(Closer(mapping.free))
                mappings.append(mapping)
        skips[kind] = reason
    return mappings, skips


def _pool_for(kind: str, settings, pools: dict, guard, usable_kb: int,
              reserve_kb: int) -> tuple[str | None, int]:
    page = PAGE[kind]
    size_kb, label = page // 1024, kind.split("-")[1]
    if size_kb not in pools:
        return f"this kernel offers no {label} huge pages", usable_kb
    free, resv = pools[size_kb][1], pools[size_kb][2]
    wanted = -(-settings.size // page)
    spare = (free or 0) - (resv or 0)
    if spare >= wanted:
        return None, usable_kb
    missing = wanted - max(spare, 0)
    if not settings.grow_pools:
        return (f"{max(spare, 0)} free {label} pages, {wanted} needed (--grow-pools adds them for the run "
                f"and gives them back)"), usable_kb
    if missing * size_kb > usable_kb:
        return (f"growing the {label} pool by {missing} pages would eat into the host's reserve of "
                f"{reserve_kb >> 10} MiB"), usable_kb
    added = guard.grow_pool(size_kb, missing)
    if added < missing:
        return (f"the kernel added only {max(added, 0)} of {missing} {label} pages (memory too fragmented; "
                f"reserve them at boot with a profile's boot: true)"), usable_kb
    return None, usable_kb - missing * size_kb
