"""Which hugetlb pool can back a guest's RAM, and the words to paste: pure arithmetic and text.

A suggested backend must start when pasted. QEMU allocates a hugetlbfs backend's pages when it
starts (prealloc=on), and fails with "Cannot allocate memory" when the pool lacks them, so a
pool is offered only when its available pages hold the guest's whole RAM. Available is
free_hugepages less resv_hugepages: reserved pages are free but promised to a mapping that
has not touched them yet (Documentation/admin-guide/mm/hugetlbpage.rst). QEMU also needs the
backend's size to equal -m and to be a whole number of pages. Guests are served in turn from
what is left, so pasting every hint works; where no pool holds a guest, the hint says how many
pages to add and the profile line that adds them.
"""

from __future__ import annotations

from kvmtune.probe.hugepages import size_label
from kvmtune.record import record

SMALL_POOL_KB = 2048  # the pool to grow when none holds a guest: every x86-64 kernel has 2M pages


@record
class Backend:
    page_kb: int
    pages: int  # the guest's RAM in pages of page_kb
    short: int  # pages the pool lacks for it (0: it fits now)
    pool_total: int  # the pool's size once `short` pages are added: the profile's number
    mount: str | None  # a hugetlbfs mount serving page_kb, if the host has one


def plan_backends(needs, pools: dict[int, tuple[int, int]], mounts: dict[int, str]) -> dict:
    """``needs``: (key, RAM in kB) per guest, in the order hints are given; ``pools``: page size in
    kB -> (total, available pages); ``mounts``: page size -> a hugetlbfs mount. Returns key ->
    Backend, leaving out a guest whose RAM is no whole number of 2M pages."""
    total = {size: t for size, (t, _) in pools.items()}
    left = {size: a for size, (_, a) in pools.items()}
    out = {}
    for key, ram_kb in needs:
        sizes = [s for s in sorted(total, reverse=True) if ram_kb % s == 0]
        fits = [s for s in sizes if left[s] >= ram_kb // s]
        if fits:
            # a mount lets the hint be pasted as it is; then the larger page (fewer TLB entries)
            size = next((s for s in fits if s in mounts), fits[0])
            left[size] -= ram_kb // size
            out[key] = Backend(size, ram_kb // size, 0, total[size], mounts.get(size))
            continue
        if ram_kb % SMALL_POOL_KB:
            continue
        # grow the smallest pool that divides the RAM (2M): its pages are the likeliest granted
        size = next((s for s in reversed(sizes) if s in mounts), sizes[-1] if sizes else SMALL_POOL_KB)
        pages = ram_kb // size
        short = pages - left.get(size, 0)
        total[size] = total.get(size, 0) + short
        left[size] = 0
        out[key] = Backend(size, pages, short, total[size], mounts.get(size))
    return out


def plan_for_host(hp, needs) -> dict:
    """plan_backends on the host's pools (HugepageFacts, or None) and its hugetlbfs mounts."""
    pools = {p.size_kb: (p.total or 0, max((p.free or 0) - (p.reserved or 0), 0)) for p in (hp.pools if hp else ())}
    mounts: dict[int, str] = {}
    for m in (hp.mounts if hp else ()):
        size = hp.mount_size_kb(m)
        if size is not None:
            mounts.setdefault(size, m.target)
    return plan_backends(needs, pools, mounts)


def _ram(ram_kb: int) -> str:
    return f"{ram_kb >> 20}G" if ram_kb % (1 << 20) == 0 else f"{ram_kb >> 10}M"


def qemu_option(b: Backend) -> str:
    mount = b.mount or f"/dev/hugepages{size_label(b.page_kb)}"
    return (f"-object memory-backend-file,id=ram0,size={_ram(b.pages * b.page_kb)},mem-path={mount},"
            "share=on,prealloc=on -machine memory-backend=ram0")


def libvirt_element(b: Backend) -> str:
    return f'<memoryBacking><hugepages><page size="{b.page_kb}" unit="KiB"/></hugepages></memoryBacking>'


def prepare(b: Backend) -> str:
    """What to do before the backend can start: add pages, mount a hugetlbfs; '' when nothing."""
    label = size_label(b.page_kb)
    steps = []
    if b.short:
        steps.append(f"add {b.short} {label} pages ('hugepages: {{{label}: {b.pool_total}}}' in the profile, "
                     "then 'kvmtune apply PROFILE')")
    if b.mount is None:
        steps.append(f"mount a hugetlbfs for {label} pages ('mkdir -p /dev/hugepages{label} && mount -t hugetlbfs "
                     f"-o pagesize={label} none /dev/hugepages{label}', or a 'hugetlbfs:' entry in the profile)")
    return ", ".join(steps)
