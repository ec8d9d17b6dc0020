"""kvmtune guests' advice holds when pasted: a hugetlbfs backend only where the free pages hold
it, guests the user may not inspect still counted, the vCPU of a busy guest with unnamed
threads found, backing judged against the whole RAM. Snapshot trees and pure arithmetic here;
the live guests are in test_guests_live.py."""

import errno
import json

import jsonschema

from tests.fixtures.guests import guest, plain_process
from tests.fixtures.synthetic import host
from tests.test_guests import SCHEMA, _finding, _guests, _tree

POOL = "sys/kernel/mm/hugepages/hugepages-{}kB/{}_hugepages"


def _pools(base, size_kb, total, free, reserved=0, mount="/dev/hugepages"):
    base[POOL.format(size_kb, "nr")] = f"{total}\n"
    base[POOL.format(size_kb, "free")] = f"{free}\n"
    base[POOL.format(size_kb, "resv")] = f"{reserved}\n"
    if mount:
        label = "2M" if size_kb == 2048 else "1024M"
        base["proc/mounts"] += f"hugetlbfs {mount} hugetlbfs rw,relatime,pagesize={label} 0 0\n"
    return base


# -- 2: a backend the free pools can hold, or the pages to add ---------------------------------

def test_a_backend_is_suggested_only_where_the_free_pages_hold_it(run_cli, tmp_path):
    base = _pools(host(n_cpus=4), 2048, total=160, free=32)  # 64 MiB free, the guest has 256
    _, report = _guests(run_cli, _tree(tmp_path, guest(4242, "big", 256, backing="4k"), base=base))
    f = _finding(report, "guests.hugepages")
    # the backend comes only after the pages it needs: pasted first, QEMU would answer
    # "Cannot allocate memory"
    assert f["hint"].startswith("big (pid 4242): add 96 2M pages"), f["hint"]
    assert f["hint"].index("add 96") < f["hint"].index("size=256M")
    assert "hugepages: {2M: 256}" in f["hint"]  # the profile line, for 'kvmtune apply'
    assert "32 of 160 2M pages free" in f["detail"]


def test_a_backend_the_pool_holds_names_its_mount_and_the_whole_ram(run_cli, tmp_path):
    base = _pools(host(n_cpus=4), 2048, total=512, free=300, reserved=100, mount="/mnt/huge2m")
    _, report = _guests(run_cli, _tree(tmp_path, guest(4242, "fits", 256, backing="4k"), base=base))
    hint = _finding(report, "guests.hugepages")["hint"]
    assert ("-object memory-backend-file,id=ram0,size=256M,mem-path=/mnt/huge2m,share=on,prealloc=on "
            "-machine memory-backend=ram0") in hint
    assert "add" not in hint


def test_two_guests_share_the_free_pages_and_the_second_is_told_to_grow_the_pool(run_cli, tmp_path):
    base = _pools(host(n_cpus=4), 2048, total=200, free=200)  # 400 MiB: one 256 MiB guest, not two
    _, report = _guests(run_cli, _tree(tmp_path, guest(100, "one", 256, backing="4k"),
                                       guest(200, "two", 256, backing="4k"), base=base))
    hints = _finding(report, "guests.hugepages")["hint"].split(" | ")
    assert "size=256M" in hints[0] and "add" not in hints[0]
    assert "add 56 2M pages" in hints[1] and "hugepages: {2M: 256}" in hints[1]


def test_suggestion_arithmetic():
    from kvmtune.checks.guest_backing import plan_backends

    pools = {2048: (160, 32), 1048576: (4, 4)}  # size_kb: (total, available)
    mounts = {2048: "/dev/hugepages"}
    plan = plan_backends([(1, 256 << 10)], pools, mounts)[1]
    assert (plan.page_kb, plan.pages, plan.short, plan.pool_total) == (2048, 128, 96, 256)
    # a whole number of 1G pages, and the 1G pool holds it: the larger page, even without a mount
    plan = plan_backends([(1, 2 << 20)], pools, mounts)[1]
    assert (plan.page_kb, plan.pages, plan.short, plan.mount) == (1048576, 2, 0, None)
    # 64 MiB fits the 32 free 2M pages exactly; the next guest finds none left
    plans = plan_backends([(1, 64 << 10), (2, 4 << 10)], pools, mounts)
    assert (plans[1].short, plans[2].short, plans[2].pool_total) == (0, 2, 162)
    # no pool at all: grow a 2M one
    plan = plan_backends([(1, 512 << 10)], {}, {})[1]
    assert (plan.page_kb, plan.pages, plan.short, plan.pool_total, plan.mount) == (2048, 256, 256, 256, None)
    # RAM that is no whole number of 2M pages gets no backend
    assert plan_backends([(1, 1025)], pools, mounts) == {}


def test_available_pages_leave_out_the_reserved_ones(run_cli, tmp_path):
    base = _pools(host(n_cpus=4), 2048, total=300, free=200, reserved=100)  # 100 usable
    _, report = _guests(run_cli, _tree(tmp_path, guest(4242, "g", 256, backing="4k"), base=base))
    assert "add 28 2M pages" in _finding(report, "guests.hugepages")["hint"]


# -- 3: a VMM the user may not inspect is still a guest --------------------------------------

def _refuse(monkeypatch, pid):
    from kvmtune.errors import HostError
    from kvmtune.host.door import Host

    listdir = Host.listdir

    def refusing(self, rel):
        if rel == f"proc/{pid}/fd":
            raise HostError(rel, "permission denied", errno.EACCES)
        return listdir(self, rel)

    monkeypatch.setattr(Host, "listdir", refusing)


def test_a_guest_that_cannot_be_inspected_is_counted_and_fails_strict(run_cli, tmp_path, monkeypatch, check_json):
    root = _tree(tmp_path, guest(4242, "secret", 512, backing="4k"), plain_process(1, "systemd"))
    _refuse(monkeypatch, 4242)
    code, report = _guests(run_cli, root, "--strict")
    assert code == 1
    assert report["guests"] == [] and report["hidden"][0]["pid"] == 4242
    f = _finding(report, "guests.inspect")
    assert f["status"] == "warn"
    assert "secret (pid 4242)" in f["detail"] and "permission denied" in f["detail"]  # -name, from cmdline
    assert "backing" in f["detail"] and "root" in f["hint"]
    code, out, _ = run_cli("--root", str(root), "guests")
    assert "no running KVM guests" not in out
    assert "1 running" in out and "1 not inspectable" in out
    _, check = check_json(root, "--only", "guests")
    line = next(c for c in check["checks"] if c["id"] == "guests")
    assert line["detail"].startswith("1 guest") and "not inspectable" in line["detail"], line
    code, out, _ = run_cli("--root", str(root), "guests", "--format", "prometheus")
    assert "kvmtune_guests 1\n" in out and "kvmtune_guests_not_inspectable 1\n" in out


# -- 4: the vCPU of a busy guest with unnamed threads; backing against the whole RAM --------

def test_a_busy_unnamed_vcpu_is_found_and_kernel_workers_are_no_emulator_threads(run_cli, tmp_path):
    g = guest(4242, "busy", 256, backing="thp", thread_names=False, busy=True,
              workers=("kvm-nx-lpage-re", "iou-wrk-4242"))
    _, report = _guests(run_cli, _tree(tmp_path, g))
    got = report["guests"][0]
    assert [(v["index"], v["tid"], v["found_by"]) for v in got["vcpus"]] == [(0, 4252, "running")]
    assert got["emulator_threads"]["count"] == 1  # the main thread; not the two kernel workers


def test_busy_threads_that_cannot_be_told_apart_are_not_guessed(run_cli, tmp_path):
    g = guest(4242, "busy", 256, backing="thp", thread_names=False, busy=True)
    files, links = g
    files["proc/4242/task/4242/syscall"] = "running\n"  # the main thread is on a CPU too
    _, report = _guests(run_cli, _tree(tmp_path, (files, links)))
    assert report["guests"][0]["vcpus"] == []
    code, out, _ = run_cli("--root", str(_tree(tmp_path / "b", (files, links))), "guests")
    assert "none seen in KVM_RUN" in out


def test_a_thread_in_kvm_run_is_named_by_its_descriptor(run_cli, tmp_path):
    _, report = _guests(run_cli, _tree(tmp_path, guest(4242, "idle", 256, thread_names=False,
                                                        vcpus=((0, (0, 1)), (1, (0, 1))))))
    got = report["guests"][0]["vcpus"]
    assert [(v["index"], v["tid"], v["found_by"]) for v in got] == [(0, 4252, "kvm_run"), (1, 4253, "kvm_run")]


def test_backing_is_judged_against_the_whole_ram_and_says_what_is_untouched(run_cli, tmp_path):
    base = _pools(host(n_cpus=4), 2048, total=512, free=512)
    g = guest(4242, "young", 256, backing="thp", resident_kb=6 << 10)
    _, report = _guests(run_cli, _tree(tmp_path, g, base=base))
    mem = report["guests"][0]["memory"]
    assert mem["untouched_kb"] == 250 << 10 and mem["thp_kb"] == 6 << 10
    f = _finding(report, "guests.hugepages")
    assert f["status"] != "pass" and "every guest" not in f["detail"]
    assert "250 MiB of 256 MiB not touched yet" in f["detail"], f["detail"]
    code, out, _ = run_cli("--root", str(_tree(tmp_path / "b", g, base=base)), "guests")
    assert "98% untouched" in out and "100% THP" not in out


def test_schema_holds_the_new_keys(run_cli, tmp_path):
    g = guest(4242, "busy", 256, backing="thp", thread_names=False, busy=True)
    _, report = _guests(run_cli, _tree(tmp_path, g))
    jsonschema.validate(json.loads(json.dumps(report)), SCHEMA)


class _Sampled:
    """A live host whose syscall files change between reads, as a busy vCPU's does when it is
    preempted: "running", then the KVM_RUN ioctl on its vCPU descriptor."""
    live = True

    def __init__(self, reads):
        self.reads = {tid: list(seq) for tid, seq in reads.items()}

    def read_optional(self, rel):
        tid = int(rel.split("/")[3])
        seq = self.reads[tid]
        return seq.pop(0) if len(seq) > 1 else seq[0]


def test_a_live_host_is_sampled_again_until_each_busy_vcpu_shows_its_descriptor(monkeypatch):
    from kvmtune.host.procs import Thread
    from kvmtune.probe import guests

    monkeypatch.setattr(guests, "SAMPLE_GAP", 0)
    threads = [Thread(10, "qemu-system-x86", (0, 1), 0), Thread(11, "qemu-system-x86", (0, 1), 1),
               Thread(12, "qemu-system-x86", (0, 1), 0), Thread(13, "kvm-nx-lpage-re", (0, 1), 0, True)]
    run = "16 0x{:x} 0xae80 0x0 0x0 0x0 0x0 0x0 0x0\n"
    host = _Sampled({10: ["271 0x5 0x4 0x0\n"],
                     11: ["running\n", "running\n", run.format(21)],  # vCPU 1, though started first
                     12: ["running\n", run.format(20)],
                     13: [run.format(20)]})
    vcpus, others = guests.find_vcpus(host, 10, threads, {20: 0, 21: 1})
    assert [(i, t.tid, how) for i, t, how in vcpus] == [(0, 12, "kvm_run"), (1, 11, "kvm_run")]
    assert [t.tid for t in others] == [10]
    # sampled once (a snapshot), the two busy threads are matched in thread order
    host = _Sampled({10: ["271 0x5 0x4 0x0\n"], 11: ["running\n"], 12: ["running\n"], 13: [run.format(20)]})
    host.live = False
    vcpus, _ = guests.find_vcpus(host, 10, threads, {20: 0, 21: 1})
    assert [(i, t.tid, how) for i, t, how in vcpus] == [(0, 11, "running"), (1, 12, "running")]


def test_a_guest_not_touched_yet_on_a_host_without_pools_is_a_note_not_a_warning(run_cli, tmp_path):
    _, report = _guests(run_cli, _tree(tmp_path, guest(4242, "young", 256, backing="thp", resident_kb=6 << 10),
                                       base=host(n_cpus=4)))
    f = _finding(report, "guests.hugepages")
    assert f["status"] == "info" and "not touched yet" in f["detail"]
    assert "add 128 2M pages" in f["hint"] and "mount a hugetlbfs for 2M pages" in f["hint"]
