"""What a validated profile holds. Every setting keeps its YAML node for error messages."""

from __future__ import annotations

from kvmtune.profile.source import Node
from kvmtune.record import record


@record
class Amount:
    """A hugepage amount as written: pages, bytes, or a percent of memory."""

    kind: str  # "count", "bytes" or "percent"
    value: int | float
    src: Node

    def pages(self, page_kb: int, mem_kb: int | None) -> int:
        if self.kind == "count":
            return int(self.value)
        if self.kind == "bytes":
            page_bytes = page_kb * 1024
            if self.value % page_bytes:
                raise self.src.error(f"{self.src.value} is not a whole number of {page_kb // 1024} MiB pages")
            return int(self.value // page_bytes)
        if mem_kb is None:
            raise self.src.error("a percent needs the host's MemTotal, which could not be read")
        return int(mem_kb * self.value / 100 // page_kb)


@record
class PoolRequest:
    size_kb: int
    total: Amount | None  # the whole pool (spread or left to the kernel)
    per_node: dict  # node id -> Amount
    spread: bool  # divide the total evenly over the nodes with memory
    boot: bool  # also reserve at boot on the kernel command line
    src: Node


@record
class MountRequest:
    path: str
    pagesize_kb: int | None
    size: str | None  # as the kernel takes it: bytes or N%
    min_size: str | None
    mode: int
    owner: str | None
    group: str | None
    src: Node


@record
class Profile:
    name: str
    file: str
    description: str
    sysctl: dict  # key -> (value string, Node)
    hugepages: dict  # size_kb -> PoolRequest
    compact: bool
    hugetlbfs: tuple  # MountRequest
    ksm: dict  # knob -> (value, Node)
    allow_unmerge: bool
    thp: dict  # knob -> (value, Node)
    chain: tuple  # the files merged, base first
    kvm_modules: dict = {}  # module -> {parameter: (value text, Node)}
    cpus: object = None  # CpusRequest
    power: dict = {}  # knob -> (value, Node)
    intents: tuple = ()  # what verify also judges the host ready for (kvmtune.checks.intents)
    iommu: tuple | None = None  # (mode: "pt" | "lazy" | "strict", Node)
    sriov: dict = {}  # PF (PCI address or netdev name) -> SriovRequest
    vfio: tuple = ()  # (PCI address or vendor:device ids, Node) to bind to vfio-pci (tune.vfio)
    ksm_policy: object = None  # tune.ksm_decide.Policy: run and pages_to_scan decided under pressure
    boot: dict = {}  # kernel argument -> (value text or True for a bare flag, Node) (kvmtune.profile.schema_boot)


@record
class CpusRequest:
    isolated: tuple | None  # the CPUs asked for, or None: computed from housekeeping
    housekeeping_per_node: int
    nohz_full: bool
    rcu_nocbs: bool
    managed_irq: bool
    irqaffinity: bool
    irqbalance: bool
    systemd: bool
    workqueue: bool
    src: object  # the section's Node
    writeback: bool = False  # the writeback workqueue's own cpumask (opt-in: older profiles keep their plan)
    kthreads: bool = False  # movable kernel threads' affinity onto housekeeping CPUs (opt-in)


@record
class SriovRequest:
    numvfs: int | None  # None: the count is left as it is
    autoprobe: bool | None  # sriov_drivers_autoprobe; None: left as it is
    src: object  # the PF's Node (its key names the PF)
    numvfs_src: object = None  # the numvfs value's Node, for a count the PF cannot take


# The KSM pressure policy a profile asks for (tune.ksm_decide decides by it).
DEFAULT_THRESHOLD = 20.0  # % of MemTotal
DEFAULT_HYSTERESIS = 6.25  # % of MemTotal (1/16)
DEFAULT_PAGES = (64, 1250)  # ksmtuned KSM_NPAGES_MIN / KSM_NPAGES_MAX


@record
class Policy:
    threshold: float = DEFAULT_THRESHOLD  # percent of MemTotal
    hysteresis: float = DEFAULT_HYSTERESIS  # percent of MemTotal
    pages_min: int = DEFAULT_PAGES[0]
    pages_max: int = DEFAULT_PAGES[1]
    src: object = None  # the profile's Node (None in tests)

    def describe(self) -> str:
        return (f"pressure: on below {self.threshold:g}% of RAM available, off above "
                f"{self.threshold + self.hysteresis:g}%, pages_to_scan {self.pages_min}..{self.pages_max}")
