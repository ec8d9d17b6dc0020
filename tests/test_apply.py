"""apply / plan / verify / rollback against fixture roots (copied to tmp_path first)."""

import json
import os

import pytest

from kvmtune.host.writable import WritableHost as Host
from tests.fixtures.synthetic import host as synthetic_host, ksm_files, write_tree

FULL_PROFILE = """
description: every section
sysctl:
  vm.swappiness: 10
  net.ipv4.tcp_rmem: "4096 131072 6291456"
hugepages:
  1G:
    per_node: {0: 2, 1: 1}
  2M: 512
hugetlbfs:
  - path: /dev/hugepages1G
    pagesize: 1G
    size: 2G
    mode: "1770"
    group: kvm
ksm:
  run: 1
  pages_to_scan: 500
  merge_across_nodes: 0
thp:
  enabled: never
  defrag: defer
"""


def tree(root) -> dict:
    """Every file and directory under root with content and mode: the whole state."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            out[os.path.relpath(p, root) + "/"] = os.stat(p).st_mode
        for f in filenames:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = (fh.read(), os.stat(p).st_mode)
    return out


@pytest.fixture
def root(tmp_path):
    files = synthetic_host()
    files["proc/sys/vm/swappiness"] = "60\n"
    files["proc/sys/net/ipv4/tcp_rmem"] = "4096\t131072\t6291456\n"
    files["etc/fstab"] = "# /etc/fstab: static file system information.\nUUID=abc / ext4 errors=remount-ro 0 1\n"
    files["etc/sysctl.d/README.sysctl"] = "see sysctl.d(5)\n"
    return write_tree(str(tmp_path / "host"), files)


@pytest.fixture
def profile(tmp_path):
    path = tmp_path / "full.yaml"
    path.write_text(FULL_PROFILE)
    return str(path)


def apply(run_cli, root, *args):
    code, out, err = run_cli("--root", root, *args, "--json")
    return code, json.loads(out), err


def test_check_mode_writes_nothing_and_predicts(run_cli, root, profile):
    before = tree(root)
    code, out, _ = apply(run_cli, root, "apply", profile, "--check")
    assert code == 0 and out["changed"] is True and out["failed"] is False
    assert tree(root) == before
    targets = {c["target"]: c for c in out["changes"]}
    assert targets["sysctl vm.swappiness"]["before"] == "60" and targets["sysctl vm.swappiness"]["after"] == "10"
    # Multi-field values compare field by field: tabs in the kernel's form equal spaces here.
    assert targets["sysctl net.ipv4.tcp_rmem"]["status"] == "ok"
    assert out["reboot_required"] is False


def test_apply_every_section_then_again_then_rollback(run_cli, root, profile):
    original = tree(root)
    code, out, _ = apply(run_cli, root, "apply", profile)
    assert code == 0 and out["changed"] is True and out["failed"] is False, out["msg"]
    host = Host(root)
    assert host.read("proc/sys/vm/swappiness") == "10\n"
    assert host.read("sys/devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages") == "2\n"
    assert host.read("sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages") == "1\n"
    assert host.read("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages") == "512\n"
    assert host.read("sys/kernel/mm/ksm/run") == "1\n"
    assert host.read("sys/kernel/mm/transparent_hugepage/enabled") == "always madvise [never]\n"
    assert "hugetlbfs /dev/hugepages1G hugetlbfs rw,relatime,pagesize=1024M,size=2147483648,mode=1770,gid=104" \
        in host.read("proc/mounts")
    assert os.path.isdir(os.path.join(root, "dev/hugepages1G"))
    assert host.read("etc/sysctl.d/99-zz-kvmtune.conf").splitlines()[-1].startswith("# kvmtune seal: sha256 ")
    assert host.read("etc/sysctl.d/99-zz-kvmtune.conf").splitlines()[1:-1] == [
        "vm.swappiness = 10", "net.ipv4.tcp_rmem = 4096 131072 6291456", "vm.nr_hugepages = 512"]
    tmpfiles = host.read("etc/tmpfiles.d/kvmtune.conf")
    assert "w /sys/devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages - - - - 2\n" in tmpfiles
    assert tmpfiles.index("merge_across_nodes") < tmpfiles.index("ksm/run")
    fstab = host.read("etc/fstab")
    assert fstab.startswith("# /etc/fstab: static file system information.\nUUID=abc / ext4")
    assert fstab.endswith("hugetlbfs /dev/hugepages1G hugetlbfs pagesize=1024M,size=2147483648,mode=1770,gid=104 0 0\n")
    records = json.loads(host.read("var/lib/kvmtune/state.json"))["records"]
    assert records["sysctl:vm.swappiness"] == {"type": "sysctl", "name": "vm.swappiness", "original": "60", "dirs": []}

    applied = tree(root)
    code, again, _ = apply(run_cli, root, "apply", profile)
    assert code == 0 and again["changed"] is False
    assert {c["status"] for c in again["changes"]} == {"ok"}
    assert tree(root) == applied  # a second apply writes nothing

    code, verify, _ = apply(run_cli, root, "verify", profile)
    assert code == 0 and verify["drift"] == []

    code, back, _ = apply(run_cli, root, "rollback")
    assert code == 0 and back["changed"] is True, back["msg"]
    assert tree(root) == original  # byte for byte, modes included, nothing left behind
    code, nothing, _ = apply(run_cli, root, "rollback")
    assert code == 0 and nothing["changed"] is False


def test_verify_reports_drift_live_and_persisted(run_cli, root, profile):
    apply(run_cli, root, "apply", profile)
    host = Host(root)
    host.write("proc/sys/vm/swappiness", "61")
    host.write_file("etc/sysctl.d/99-zz-kvmtune.conf", "vm.swappiness = 61\n")
    code, out, _ = apply(run_cli, root, "verify", profile)
    assert code == 1
    drifted = {c["target"] for c in out["drift"]}
    assert drifted == {"sysctl vm.swappiness", "/etc/sysctl.d/99-zz-kvmtune.conf"}
    dropin = next(c for c in out["drift"] if c["target"] == "/etc/sysctl.d/99-zz-kvmtune.conf")
    assert "kvmtune would not have written: 'vm.swappiness = 61'" in dropin["detail"]
    apply(run_cli, root, "rollback")


def test_diff_shows_values_and_files(run_cli, root, profile):
    _, out, _ = apply(run_cli, root, "plan", profile, "--diff")
    assert "sysctl vm.swappiness = 60\n" in out["diff"]["before"]
    assert "sysctl vm.swappiness = 10\n" in out["diff"]["after"]
    assert "# /etc/sysctl.d/99-zz-kvmtune.conf\n(absent)\n" in out["diff"]["before"]
    code, text, _ = run_cli("--root", root, "plan", profile, "--diff")
    assert "-sysctl vm.swappiness = 60" in text and "+sysctl vm.swappiness = 10" in text


def plan_for(root, profile_path, **kw):
    from kvmtune.profile import load_profile
    from kvmtune.tune.facts import read_for_profile
    from kvmtune.tune.planner import build_plan

    profile = load_profile(profile_path)
    return build_plan(profile, read_for_profile(Host(root), profile, kw.get("persist", True)), **kw)


def apply_with(host, profile_path, **kw):
    from kvmtune.profile import load_profile
    from kvmtune.tune.engine import Context, apply_profile

    profile = load_profile(profile_path)
    ctx = Context(compact=profile.compact, progress=kw.pop("progress", None))
    return apply_profile(host, profile, ctx=ctx, **kw)


def test_ordering_rules(root, profile):
    plan = plan_for(root, profile)
    order = [c.target for c in plan.changes]
    # Larger pages first, per-node pools before totals, pools before the mount that needs them.
    assert order.index("hugepages 1G node0") < order.index("hugepages 1G node1") < order.index("hugepages 2M")
    assert order.index("hugepages 2M") < order.index("hugetlbfs /dev/hugepages1G")
    # KSM: its knobs before run; files last.
    assert order.index("ksm merge_across_nodes") < order.index("ksm run")
    assert order.index("ksm pages_to_scan") < order.index("ksm run")
    assert all(c.KIND in ("file", "fstab") for c in plan.changes[-3:])


def test_ksm_advisor_before_pages_to_scan(root, tmp_path):
    path = tmp_path / "adv.yaml"
    path.write_text("ksm:\n  run: 1\n  pages_to_scan: 100\n  advisor_mode: none\n  advisor_max_cpu: 50\n")
    write_tree(root, {"sys/kernel/mm/ksm/advisor_mode": "none [scan-time]\n",
                      "sys/kernel/mm/ksm/advisor_max_cpu": "70\n"})
    plan = plan_for(root, str(path))
    order = [c.target for c in plan.changes if c.target.startswith("ksm")]
    assert order == ["ksm advisor_mode", "ksm advisor_max_cpu", "ksm pages_to_scan", "ksm run"]
    pts = next(c for c in plan.changes if c.target == "ksm pages_to_scan")
    assert pts.status == "pending" and "resets pages_to_scan" in pts.detail  # equal now, reset by the switch


def test_ksm_sticky_knobs_blocked_while_pages_are_merged(run_cli, root, tmp_path):
    write_tree(root, ksm_files(run=1, shared=256, sharing=65280))
    path = tmp_path / "ksm.yaml"
    path.write_text("ksm:\n  merge_across_nodes: 0\n")
    code, out, _ = apply(run_cli, root, "plan", str(path))
    blocked = next(c for c in out["changes"] if c["target"] == "ksm merge_across_nodes")
    assert blocked["status"] == "blocked"
    assert "EBUSY" in blocked["detail"] and "allow_unmerge" in blocked["detail"]
    path.write_text("ksm:\n  merge_across_nodes: 0\n  allow_unmerge: true\n")
    code, out, _ = apply(run_cli, root, "plan", str(path))
    targets = [c["target"] for c in out["changes"]]
    assert targets[:3] == ["ksm run (unmerge first)", "ksm merge_across_nodes", "ksm run"]
    assert any("OOM" in w for w in out["warnings"])


class StingyHost(Host):
    """A kernel that grants at most ``cap`` pages per pool write, as fragmentation does."""

    cap = 900

    def write(self, rel, value):
        if rel.endswith("nr_hugepages") and int(value) > self.cap:
            value = str(self.cap)
        super().write(rel, value)


def test_hugepage_shortfall_fails_and_undoes(root, tmp_path):
    path = tmp_path / "hp.yaml"
    path.write_text("sysctl:\n  vm.swappiness: 10\nhugepages:\n  2M:\n    per_node: {0: 100, 1: 1024}\n")
    original = tree(root)
    plan = apply_with(StingyHost(root), str(path), persist=False)
    status = {c.target: (c.status, c.detail) for c in plan.changes}
    assert status["hugepages 2M node1"][0] == "failed"
    assert status["hugepages 2M node1"][1].startswith("got 900 of 1024 2M pages on node 1")
    assert "boot: true" in status["hugepages 2M node1"][1]
    assert status["sysctl vm.swappiness"][0] == "undone"
    assert status["hugepages 2M node0"][0] == "undone"
    assert tree(root) == original  # undone, and no state left behind


def test_keep_partial_keeps_earlier_changes(root, tmp_path):
    path = tmp_path / "hp.yaml"
    path.write_text("sysctl:\n  vm.swappiness: 10\nhugepages:\n  2M: 1024\n")
    plan = apply_with(StingyHost(root), str(path), persist=False, keep_partial=True)
    assert Host(root).read("proc/sys/vm/swappiness") == "10\n"
    # First the file naming the runtime-only sysctls for rollback, then the sysctl, then the pool.
    assert [c.status for c in plan.changes] == ["changed", "changed", "failed"]


def test_hugetlbfs_remount_is_blocked_when_in_use(run_cli, root, tmp_path):
    write_tree(root, {"proc/mounts": Host(root).read("proc/mounts") +
                      "hugetlbfs /dev/hugepages1G hugetlbfs rw,relatime,pagesize=1024M,size=1073741824 0 0\n",
                      "dev/hugepages1G/libvirt/qemu/guest1": ""})
    path = tmp_path / "m.yaml"
    path.write_text("hugetlbfs:\n  - path: /dev/hugepages1G\n    pagesize: 1G\n    size: 2G\n")
    _, out, _ = apply(run_cli, root, "plan", str(path))
    mount = next(c for c in out["changes"] if c["target"] == "hugetlbfs /dev/hugepages1G")
    assert mount["status"] == "blocked" and "ignores remount options" in mount["detail"]
    path.write_text("hugetlbfs:\n  - path: /dev/hugepages1G\n    pagesize: 1024M\n    size: 1G\n")
    _, out, _ = apply(run_cli, root, "plan", str(path))
    mount = next(c for c in out["changes"] if c["target"] == "hugetlbfs /dev/hugepages1G")
    assert mount["status"] == "ok"  # 1G = 1024M, 1G = 1073741824 bytes: same by meaning


def test_boot_pools_go_to_the_kernel_command_line(run_cli, root, tmp_path):
    write_tree(root, {"etc/default/grub": "", "usr/sbin/update-grub": ""})  # GRUB, with its generator
    path = tmp_path / "boot.yaml"
    path.write_text("hugepages:\n  1G:\n    count: 4\n    spread: true\n    boot: true\n")
    _, out, _ = apply(run_cli, root, "plan", str(path))
    grub = next(c for c in out["changes"] if c["target"] == "/etc/default/grub.d/90-kvmtune.cfg")
    assert 'hugepagesz=1G hugepages=0:2,1:2"' in grub["after"]
    assert out["reboot_required"] is True


def test_conflicts_are_named(run_cli, root, profile):
    write_tree(root, {"etc/sysctl.d/99-zzz-local.conf": "vm.swappiness = 1\n",
                      "etc/systemd/system/multi-user.target.wants/ksmtuned.service": "",
                      "proc/cmdline": "ro transparent_hugepage=always hugepages=16\n",
                      "etc/tuned/active_profile": "virtual-host\n",
                      "etc/systemd/system/multi-user.target.wants/tuned.service": "",
                      "usr/lib/tuned/virtual-host/tuned.conf": "[sysctl]\nvm.swappiness=10\n"})
    _, out, _ = apply(run_cli, root, "plan", profile)
    text = "\n".join(out["warnings"])
    assert "tuned profile 'virtual-host' also sets vm.swappiness" in text
    assert "/etc/sysctl.d/99-zzz-local.conf sets vm.swappiness = 1" in text
    assert "ksmtuned is enabled" in text
    assert "transparent_hugepage=always" in text
    assert "hugepages=16" in text


def test_lock_refuses_a_second_apply(run_cli, root, profile):
    host = Host(root)
    fd = host.lock(wait=False)
    try:
        code, _, err = run_cli("--root", root, "apply", profile, "--json")
        assert code == 5 and "another kvmtune apply or rollback holds the lock" in err and "--wait" in err
    finally:
        host.unlock(fd)


class FragmentedHost(Host):
    """Grants at most 900 pages per pool until memory is compacted (proc/sys/vm/compact_memory)."""

    compacted = False

    def write(self, rel, value):
        if rel == "proc/sys/vm/compact_memory":
            self.compacted = True
            return
        if rel.endswith("nr_hugepages") and not self.compacted and int(value) > 900:
            value = "900"
        super().write(rel, value)


def test_compact_retries_once_after_compaction(root, tmp_path):
    path = tmp_path / "hp.yaml"
    path.write_text("hugepages:\n  compact: true\n  2M: 1024\n")
    host = FragmentedHost(root)
    shown = []

    import contextlib

    @contextlib.contextmanager
    def progress(text):
        shown.append(text)
        yield

    plan = apply_with(host, str(path), persist=False, progress=progress)
    assert host.compacted and plan.changes[0].status == "changed"
    assert Host(root).read("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages") == "1024\n"
    assert shown == ["allocating hugepages 2M: 0 -> 1024 pages"]


def test_no_persist_plans_no_files(run_cli, root, profile):
    _, out, _ = apply(run_cli, root, "plan", profile, "--no-persist")
    assert [c for c in out["changes"] if c["target"].startswith("/etc")] == []
    _, out, _ = apply(run_cli, root, "plan", profile)
    assert {c["target"] for c in out["changes"] if c["target"].startswith("/etc")} == {
        "/etc/sysctl.d/99-zz-kvmtune.conf", "/etc/tmpfiles.d/kvmtune.conf", "/etc/fstab"}


def test_live_apply_refuses_before_any_write_when_not_root(monkeypatch):
    from kvmtune.errors import Refused
    from kvmtune.tune.engine import preflight

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(Refused, match="run as root"):
        preflight(Host("/"))
    preflight(Host("/tmp"))  # a snapshot tree needs no root


def test_optional_sysctl_is_skipped_where_missing_and_kept_optional_at_boot(run_cli, root, tmp_path):
    path = tmp_path / "opt.yaml"
    path.write_text("sysctl:\n  -kernel.no_such_knob: 1\n  -vm.swappiness: 12\n")
    code, out, err = apply(run_cli, root, "apply", str(path))
    assert code == 0, err
    assert any("kernel.no_such_knob does not exist on this kernel: skipped" in w for w in out["warnings"])
    assert Host(root).read("proc/sys/vm/swappiness") == "12\n"
    dropin = Host(root).read("etc/sysctl.d/99-zz-kvmtune.conf")
    # The "-" stays in the drop-in: systemd-sysctl skips such a key where the kernel lacks it.
    assert "-vm.swappiness = 12\n" in dropin and "-kernel.no_such_knob = 1\n" in dropin
    apply(run_cli, root, "rollback")


def test_wait_queues_behind_the_lock(run_cli, root, profile):
    import threading

    host = Host(root)
    fd = host.lock(wait=False)
    threading.Timer(0.5, host.unlock, args=(fd,)).start()
    code, out, err = apply(run_cli, root, "apply", profile, "--wait")
    assert code == 0 and out["changed"] is True, err
    apply(run_cli, root, "rollback")
