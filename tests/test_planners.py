"""The planners are pure: their ordering rules are checked on hand-made facts, no host tree."""

import pytest

from kvmtune.errors import Refused
from kvmtune.host.door import FileState, PathState
from kvmtune.probe.hugepages import HugepageFacts, Pool
from kvmtune.probe.ksm import KsmFacts
from kvmtune.probe.numa import Node, NodePool, NumaFacts
from kvmtune.probe.system import Mount
from kvmtune.profile import load_profile_text
from kvmtune.tune.conflicts import Owners
from kvmtune.tune.facts import TuneFacts
from kvmtune.tune.planner import build_plan, plan_rollback

NO_OWNERS = Owners(None, (), {}, {})
GIB = 1 << 20


def numa(nodes=2, mem_gib=64):
    pools = {2048: NodePool(0, 0, 0), 1048576: NodePool(0, 0, 0)}
    return NumaFacts(tuple(Node(i, (), mem_gib * GIB, mem_gib * GIB // 2, {}, pools) for i in range(nodes)))


def facts(**kw) -> TuneFacts:
    base = dict(hugepages=HugepageFacts((Pool(2048, 0, 0, 0, 0, 0, {}), Pool(1048576, 0, 0, 0, 0, 0, {})), 2048),
                numa=numa(), meminfo={"MemTotal": 128 * GIB}, owners=NO_OWNERS,
                files={"sysctl": None, "tmpfiles": None, "grub": None},
                file_dirs={"sysctl": (), "tmpfiles": (), "grub": ("etc/default/grub.d",)})
    return TuneFacts(**(base | kw))


def targets(plan):
    return [c.target for c in plan.changes]


def test_pools_larger_pages_first_and_per_node_before_totals():
    profile = load_profile_text("hugepages:\n  2M: 512\n  1G:\n    per_node: {1: 2, 0: 1}\n")
    plan = build_plan(profile, facts(), persist=False)
    assert targets(plan) == ["hugepages 1G node0", "hugepages 1G node1", "hugepages 2M"]


def test_ksm_unmerges_first_when_sticky_knobs_change_over_merged_pages():
    ksm = KsmFacts({"run": 1, "pages_shared": 10, "pages_to_scan": 100, "merge_across_nodes": 1,
                    "advisor_mode": "[none] scan-time"}, 4096)
    profile = load_profile_text("ksm:\n  run: 1\n  merge_across_nodes: 0\n  pages_to_scan: 500\n"
                                "  advisor_mode: none\n  allow_unmerge: true\n")
    plan = build_plan(profile, facts(ksm=ksm), persist=False)
    assert targets(plan) == ["ksm run (unmerge first)", "ksm advisor_mode", "ksm merge_across_nodes",
                             "ksm pages_to_scan", "ksm run"]
    assert [c.status for c in plan.changes] == ["pending", "ok", "pending", "pending", "pending"]
    blocked = build_plan(load_profile_text("ksm:\n  merge_across_nodes: 0\n"), facts(ksm=ksm), persist=False)
    assert [c.status for c in blocked.changes] == ["blocked"]


@pytest.mark.parametrize("state, message", [
    (PathState("mnt/huge", (), False, 0), "symbolic link"),
    (PathState(None, (), True, 3), "not empty"),
    (PathState(None, (), False, 0, blocker="mnt"), "not a directory"),
])
def test_a_mount_point_that_is_not_an_empty_real_directory_is_refused(state, message):
    profile = load_profile_text("hugetlbfs:\n  - {path: /mnt/huge/2M, pagesize: 2M}\n")
    with pytest.raises(Refused, match=message):
        build_plan(profile, facts(paths={"/mnt/huge/2M": state}), persist=False)


def test_a_busy_mount_with_other_options_is_blocked_not_remounted():
    mount = Mount("hugetlbfs", "/dev/hugepages", "hugetlbfs", {"rw": None, "pagesize": "2M"})
    profile = load_profile_text("hugetlbfs:\n  - {path: /dev/hugepages, pagesize: 2M, mode: \"1770\"}\n")
    busy = build_plan(profile, facts(mounts=(mount,), paths={"/dev/hugepages": PathState(None, (), True, 2)}),
                      persist=False)
    assert busy.changes[0].status == "blocked"
    empty = build_plan(profile, facts(mounts=(mount,), paths={"/dev/hugepages": PathState(None, (), True, 0)}),
                       persist=False)
    assert empty.changes[0].status == "pending" and empty.changes[0].remount


def test_boot_pools_go_to_the_grub_drop_in_and_need_a_reboot():
    profile = load_profile_text("hugepages:\n  1G: {count: 4, spread: true, boot: true}\n")
    plan = build_plan(profile, facts())
    grub = next(c for c in plan.changes if c.target == "/etc/default/grub.d/90-kvmtune.cfg")
    assert 'hugepagesz=1G hugepages=0:2,1:2"' in grub.after.text and grub.missing == ("etc/default/grub.d",)
    assert plan.reboot_required


def test_rollback_runs_the_reverse_order_with_the_same_rules():
    records = {
        "sysctl:vm.swappiness": {"type": "sysctl", "name": "vm.swappiness", "original": "60"},
        "pool:2048:0": {"type": "pool", "size_kb": 2048, "node": 0, "original": "0"},
        "pool:2048:all": {"type": "pool", "size_kb": 2048, "node": None, "original": "0"},
        "ksm:merge_across_nodes": {"type": "ksm", "knob": "merge_across_nodes", "original": "1"},
        "ksm:run": {"type": "ksm", "knob": "run", "original": "0"},
        "file:sysctl": {"type": "file", "file": "sysctl", "original": None, "dirs": []},
        "fstab": {"type": "fstab", "original": "UUID=x / ext4 defaults 0 1\n"},
    }
    ksm = KsmFacts({"run": 1, "pages_shared": 5, "merge_across_nodes": 0}, 4096)
    fstab = "UUID=x / ext4 defaults 0 1\n# kvmtune: managed entry, 'kvmtune rollback' removes it\nhugetlbfs /x hugetlbfs pagesize=2M 0 0\n"
    now = facts(knobs={"sysctl:vm.swappiness": "10", "pool:2048:0": "256", "pool:2048:all": "512"}, ksm=ksm,
                files={"sysctl": FileState("x\n", 0o644, 0, 0), "tmpfiles": None, "grub": None}, fstab=fstab)
    plan = plan_rollback(records, now)
    assert targets(plan) == ["/etc/sysctl.d/99-zz-kvmtune.conf", "/etc/fstab", "ksm run (unmerge first)",
                             "ksm merge_across_nodes", "ksm run", "hugepages 2M", "hugepages 2M node0",
                             "sysctl vm.swappiness"]
    assert plan.changes[1].after == "UUID=x / ext4 defaults 0 1\n"
    assert all(c.status == "pending" for c in plan.changes)
