"""memory.swap, memory.zswap, memory.overcommit, memory.fragmentation: the huge page forecast on
fixture buddyinfo/pagetypeinfo with answers computed by hand, plan's warning before a pool
grows short, and the checks on captured and synthetic trees."""


import pytest

from kvmtune.probe.buddy import Fragmentation, parse_buddyinfo, parse_pagetypeinfo
from tests.conftest import HOSTS, REAL_HOSTS, by_id
from tests.fixtures.synthetic import host as synthetic_host, write_tree

# Two nodes, 4 KiB pages, orders 0..10 (order 9 = 2 MiB, order 10 = 4 MiB).
BUDDYINFO = """\
Node 0, zone      DMA      1      1      1      0      2      1      1      0      1      1      3 
Node 0, zone    DMA32      4      3      2      1      0      2      1      1      2      3    200 
Node 0, zone   Normal    100     50     20     10      5      4      3      2      1      7    400 
Node 1, zone   Normal     10     10     10     10     10     10     10     10     10      0      0 
"""
PAGETYPEINFO = """\
Page block order: 9
Pages per block:  512

Free pages count per migrate type at order       0      1      2      3      4      5      6      7      8      9     10 
Node    0, zone   Normal, type    Unmovable   3241   2684   2528   1730   6520   2864    956    281     74      0      0 

Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic      Isolate 
Node 0, zone      DMA            1            7            0            0            0 
Node 0, zone    DMA32           11          300           91            0            0 
Node 0, zone   Normal         1295         1000         2532            0            0 
Node 1, zone   Normal          100           50           10            0            0 
"""
G1 = 1 << 20  # kB


def frag(types: bool = True) -> Fragmentation:
    order, movable = parse_pagetypeinfo(PAGETYPEINFO) if types else (None, {})
    return Fragmentation(parse_buddyinfo(BUDDYINFO), 4096, movable, order)


def test_2m_pages_now_are_counted_exactly_from_order_9_up_without_dma():
    f = frag()
    # DMA32: 3 + 200 x 2 = 403; Normal: 7 + 400 x 2 = 807; DMA's 1 + 3 x 2 never count.
    assert f.pages_now(2048) == (1210, True)
    assert f.pages_now(2048, node=0) == (1210, True)
    assert f.pages_now(2048, node=1) == (0, True)


def test_1g_pages_now_are_an_upper_bound_per_zone():
    # Larger than any buddy block: 200 x 4 MiB in DMA32 makes no 1 GiB run (256 needed), 400 in
    # Normal at most one. Summed across zones (600 blocks) it would wrongly say 2.
    assert frag().pages_now(G1) == (1, False)


def test_after_compaction_bounded_by_movable_pageblocks_and_free_memory():
    f = frag()
    # Node 0 free pages (DMA32 + Normal) = 207130 + 414456 = 621586 -> 1214 x 2M; movable
    # pageblocks 300 + 1000 = 1300: the free memory is the tighter bound.
    assert f.pages_compacted(2048, node=0) == 1214
    # Node 1: 10 x (1 + 2 + ... + 256) = 5110 pages -> 9 x 2M; 50 movable blocks.
    assert f.pages_compacted(2048, node=1) == 9
    assert f.pages_compacted(2048) == 1224  # 626696 pages
    assert f.pages_compacted(G1) == 2  # 1350 blocks x 512 pages / 262144, 626696 / 262144
    assert frag(types=False).pages_compacted(2048) is None  # pagetypeinfo unread: no bound


def test_parsers_refuse_what_is_not_buddyinfo():
    with pytest.raises(ValueError):
        parse_buddyinfo("Node 0, zone Normal 1 two 3\n")
    assert parse_pagetypeinfo("nothing here\n") == (None, {})


# -- plan warns before growing a pool that will fall short --------------------------------

@pytest.fixture
def pool_host(tmp_path):
    files = synthetic_host()
    files["proc/buddyinfo"] = BUDDYINFO
    files["proc/pagetypeinfo"] = PAGETYPEINFO
    return write_tree(str(tmp_path / "host"), files)


def plan_warnings(run_cli, root, tmp_path, pools: str) -> list[str]:
    import json

    (tmp_path / "p.yaml").write_text(f"hugepages:\n{pools}")
    code, out, err = run_cli("--root", root, "plan", str(tmp_path / "p.yaml"), "--json", "--no-persist")
    assert code == 0, err
    return [w for w in json.loads(out)["warnings"] if "free memory" in w]


def test_plan_warns_when_a_2m_pool_grows_past_the_forecast(run_cli, pool_host, tmp_path):
    assert plan_warnings(run_cli, pool_host, tmp_path, "  2M: 1000\n") == []
    [warning] = plan_warnings(run_cli, pool_host, tmp_path, "  2M: 1220\n")
    assert "growing by 1220 pages" in warning and "holds 1210 free 2M blocks now" in warning
    assert "compact memory first" in warning  # 1224 after compaction: it may still work
    [warning] = plan_warnings(run_cli, pool_host, tmp_path, "  2M: 1300\n")
    assert "at most 1224 even after compaction: the pool will fall short" in warning


def test_plan_forecasts_a_size_after_the_larger_pools_take_their_share(run_cli, pool_host, tmp_path):
    # The 1G pool grows first and takes its one possible 1 GiB run (512 x 2M) from the free blocks.
    warnings = plan_warnings(run_cli, pool_host, tmp_path, "  1G: 1\n  2M: 1000\n")
    assert len(warnings) == 1 and "hugepages 2M" in warnings[0] and "holds 698 free" in warnings[0]
    many = plan_warnings(run_cli, pool_host, tmp_path, "  1G: 4\n")
    assert "at most 1 free 1G blocks now" in many[0] and "at most 2 even after compaction" in many[0]


# -- the checks --------------------------------------------------------------------------

MEMORY = ("memory.swap", "memory.zswap", "memory.overcommit", "memory.fragmentation")


# The captured hosts kept in the tree (a fresh clone has no ../shared beside it).
@pytest.mark.parametrize("name", REAL_HOSTS)
def test_memory_checks_on_captured_hosts_say_what_was_not_captured(check_json, name):
    _, report = check_json(HOSTS / name, "--only", ",".join(MEMORY))
    checks = by_id(report)
    for check_id in MEMORY:
        c = checks[check_id]
        assert c["status"] in ("unknown", "info"), c
        assert "not captured" in c["detail"] or "absent" in c["detail"], c


def memory_host(tmp_path, **files) -> str:
    tree = synthetic_host()
    tree.update({k.replace("__", "/"): v for k, v in files.items()})
    return write_tree(str(tmp_path / "host"), tree)


def test_swap_against_the_profiles_drop_in(check_json, tmp_path):
    meminfo = "MemTotal: 134217728 kB\nMemAvailable: 100000000 kB\nSwapTotal: 8388608 kB\nSwapFree: 8388608 kB\n"
    root = memory_host(tmp_path, proc__meminfo=meminfo)
    c = by_id(check_json(root, "--only", "memory.swap")[1])["memory.swap"]
    assert c["status"] == "info" and "swap 8192 MiB (0 MiB used)" in c["detail"] and "vm.swappiness=10" in c["hint"]
    write_tree(root, {"etc/sysctl.d/99-zz-kvmtune.conf": "# kvmtune\nvm.swappiness = 10\n"})
    c = by_id(check_json(root, "--only", "memory.swap")[1])["memory.swap"]
    assert c["status"] == "warn" and "sets 10" in c["detail"] and "vm.swappiness=60" in c["detail"]
    write_tree(root, {"proc/sys/vm/swappiness": "10\n"})
    c = by_id(check_json(root, "--only", "memory.swap")[1])["memory.swap"]
    assert c["status"] == "info" and "as the applied profile sets" in c["detail"]


def test_no_swap_is_said(check_json, tmp_path):
    c = by_id(check_json(memory_host(tmp_path), "--only", "memory.swap")[1])["memory.swap"]
    assert c["status"] == "info" and c["detail"].startswith("no swap") and c["hint"] is None


@pytest.mark.parametrize("enabled,swap,words", [
    ("Y", 0, "does nothing here"), ("Y", 8, "compressed in RAM first"), ("N", 0, "off (and no swap"),
    ("N", 8, "off"),
])
def test_zswap(check_json, tmp_path, enabled, swap, words):
    root = memory_host(tmp_path, proc__meminfo=f"MemTotal: 1000000 kB\nSwapTotal: {swap} kB\nSwapFree: 0 kB\n")
    write_tree(root, {"sys/module/zswap/parameters/enabled": f"{enabled}\n",
                      "sys/module/zswap/parameters/compressor": "zstd\n",
                      "sys/module/zswap/parameters/max_pool_percent": "20\n"})
    c = by_id(check_json(root, "--only", "memory.zswap")[1])["memory.zswap"]
    assert c["status"] == "info" and words in c["detail"] and c["data"]["zswap"]["enabled"] == enabled


def test_overcommit_strict_with_default_ratio_warns(check_json, tmp_path):
    meminfo = "MemTotal: 134217728 kB\nCommitLimit: 67108864 kB\nCommitted_AS: 1000000 kB\nSwapTotal: 0 kB\n"
    root = memory_host(tmp_path, proc__meminfo=meminfo, proc__sys__vm__overcommit_memory="2\n")
    c = by_id(check_json(root, "--only", "memory.overcommit")[1])["memory.overcommit"]
    assert c["status"] == "warn" and "strict" in c["detail"] and "fail to start" in c["detail"]
    write_tree(root, {"proc/meminfo": meminfo.replace("CommitLimit: 67108864", "CommitLimit: 130000000")})
    c = by_id(check_json(root, "--only", "memory.overcommit")[1])["memory.overcommit"]
    assert c["status"] == "info"


def test_overcommit_against_running_guests(tmp_path):
    """Judged on facts: the guests reader is a live one (a snapshot holds no process table)."""
    from kvmtune.checks.facts import Facts
    from kvmtune.checks.memory_vm import check_overcommit
    from kvmtune.probe.guest_memory import RamMapping
    from kvmtune.probe.guests import Guest, GuestFacts
    from kvmtune.probe.ksm import KsmFacts
    from kvmtune.probe.vmem import VmFacts

    def guest(pid, ram_kb, huge=False):
        m = RamMapping(0, ram_kb, "hugetlbfs" if huge else "anonymous", "", 4, 0, 0, 0, {})
        return Guest(pid, f"g{pid}", "qemu", ram_kb, (m,), (), (), 0, None)

    def judge(guests, swap=0, ksm_run=0):
        meminfo = {"MemTotal": 64 * G1, "Hugetlb": 16 * G1, "SwapTotal": swap}
        facts = Facts("/", True, None, {"meminfo": (meminfo, None), "vm": VmFacts(60, 0, 50, 0, None, None),
                                        "guests": GuestFacts(tuple(guests), (), True),
                                        "ksm": KsmFacts({"run": ksm_run}, 4096)})
        return check_overcommit(facts)

    fits = judge([guest(1, 32 * G1), guest(2, 32 * G1, huge=True)])  # 32 of the 48 GiB outside the pools
    assert fits.status == "info" and "32.0 GiB of 48.0 GiB (67%)" in fits.detail
    over = judge([guest(1, 32 * G1), guest(2, 32 * G1)])
    assert over.status == "warn" and "no swap and KSM off" in over.detail and "OOM killer" in over.hint
    assert judge([guest(1, 32 * G1), guest(2, 32 * G1)], ksm_run=1).status == "info"
    assert judge([guest(1, 32 * G1), guest(2, 32 * G1)], swap=G1).status == "info"


def test_fragmentation_check_on_a_tree(check_json, pool_host):
    c = by_id(check_json(pool_host, "--only", "memory.fragmentation")[1])["memory.fragmentation"]
    assert c["status"] == "info"
    assert "1210 x 2M (at most 1224 after compaction)" in c["detail"]
    assert c["data"]["now"] == {"2M": 1210, "1G": 1} and c["data"]["exact"] == {"2M": True, "1G": False}
    assert c["data"]["per_node"] == {"0": {"2M": 1210, "1G": 1}, "1": {"2M": 0, "1G": 0}}


def test_plain_check_leaves_pagetypeinfo_unread(check_json, pool_host, monkeypatch):
    """The kernel walks every pageblock to answer pagetypeinfo (90 ms on 24 GiB): plain check
    reads buddyinfo only; --only memory.fragmentation (or memory) asks for the bound too."""
    from kvmtune.host.door import Host

    opened = []
    real = Host.read_optional
    monkeypatch.setattr(Host, "read_optional", lambda self, rel, *a, **k: opened.append(rel) or real(self, rel, *a, **k))
    c = by_id(check_json(pool_host)[1])["memory.fragmentation"]
    assert "after compaction" not in c["detail"] and c["data"]["after_compaction"] == {"2M": None, "1G": None}
    assert "proc/pagetypeinfo" not in opened and "proc/buddyinfo" in opened
    c = by_id(check_json(pool_host, "--only", "memory")[1])["memory.fragmentation"]
    assert "after compaction" in c["detail"] and "proc/pagetypeinfo" in opened
