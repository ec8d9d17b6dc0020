"""kvmtune guests: found by their VM descriptor, judged on backing, locality, pinning and KSM;
from snapshot trees of /proc, and live with real QEMU guests."""

import errno
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import live_state
from tests.fixtures.guests import guest, plain_process, write_links
from tests.fixtures.synthetic import host, write_tree

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "kvmtune" / "schema" / "guests.schema.json").read_text())
GiB_KB = 1 << 20


def _tree(tmp_path, *parts, base=None, extra=None) -> Path:
    files = dict(base if base is not None else host(n_cpus=8, sockets=2, nodes=2))
    files.update(extra or {})
    links = {}
    for f, l in parts:
        files.update(f)
        links.update(l)
    root = tmp_path / "host"
    write_tree(str(root), files)
    write_links(str(root), links)
    return root


def _guests(run_cli, root, *extra):
    code, out, err = run_cli("--root", str(root), "guests", "--json", *extra)
    assert err == "", err
    report = json.loads(out)
    jsonschema.validate(report, SCHEMA)
    return code, report


def _finding(report, fid):
    return next(f for f in report["findings"] if f["id"] == fid)


def test_a_guest_on_the_wrong_node_is_found_by_its_vm_descriptor_and_judged(run_cli, tmp_path):
    # node 0: CPUs 0-3, node 1: CPUs 4-7; memory on node 1, vCPUs last ran on node 0
    far = guest(4242, "far", 1024, backing="thp", vcpus=((0, (0, 1, 2, 3)), (1, (0, 1, 2, 3))),
                nodes_kb={1: 1024 << 10})
    near = guest(4343, "near", 512, backing="thp", vcpus=((5, (4, 5, 6, 7)),), nodes_kb={1: 512 << 10})
    root = _tree(tmp_path, far, near, plain_process(1, "systemd"), plain_process(77, "qemu-ga"))
    code, report = _guests(run_cli, root)
    assert code == 0
    by_name = {g["name"]: g for g in report["guests"]}
    assert set(by_name) == {"far", "near"}  # qemu-ga holds no VM descriptor
    assert by_name["far"]["numa"] == {"pages_kb_by_node": {"1": 1024 << 10}, "vcpu_nodes": [0, 0], "locality": 0.0}
    assert by_name["near"]["numa"]["locality"] == 1.0
    assert by_name["far"]["memory"]["thp_kb"] == 1024 << 10  # the 16 MiB video RAM is not guest RAM
    assert by_name["far"]["memory"]["total_kb"] == 1024 << 10
    numa = _finding(report, "guests.numa")
    assert numa["status"] == "warn"
    assert "far (pid 4242) 0% local (memory on node 1, vCPUs on node 0)" in numa["detail"]
    assert "near" not in numa["detail"]
    assert "numactl --cpunodebind=0 --membind=0" in numa["hint"]


def test_a_guest_on_1g_pages_passes_and_its_pages_are_counted_by_size(run_cli, tmp_path):
    base = host(n_cpus=8, sockets=2, nodes=2)
    base["proc/mounts"] += "hugetlbfs /dev/hugepages1G hugetlbfs rw,relatime,pagesize=1024M 0 0\n"
    base["sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"] = "8\n"
    g = guest(5000, "big", 4096, backing="1G", hugetlbfs="/dev/hugepages1G", vcpus=((1, (1,)), (2, (2,))),
              nodes_kb={0: 4 * GiB_KB})
    _, report = _guests(run_cli, _tree(tmp_path, g, base=base))
    mem = report["guests"][0]["memory"]
    assert mem["hugetlb_kb"] == {"1048576": 4 * GiB_KB} and mem["small_kb"] == 0 and mem["source"] == "hugetlbfs"
    assert report["guests"][0]["pinned_one_to_one"] is True
    assert _finding(report, "guests.hugepages")["status"] == "pass"
    assert _finding(report, "guests.numa")["status"] == "pass"


def test_a_guest_partly_on_4k_pages_while_the_host_has_pools_says_how_much(run_cli, tmp_path):
    base = host(n_cpus=8, sockets=2, nodes=2)
    base["sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"] = "1024\n"
    base["sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"] = "1000\n"
    part = guest(6000, "part", 2048, backing="thp", small_kb=512 << 10)
    flat = guest(6100, "flat", 1024, backing="4k", libvirt=True)
    _, report = _guests(run_cli, _tree(tmp_path, part, flat, base=base))
    f = _finding(report, "guests.hugepages")
    assert f["status"] == "warn"
    assert "part (pid 6000) 512 MiB (25%) on 4K pages" in f["detail"]
    assert "flat (pid 6100) on 4K pages" in f["detail"] and "1000 of 1024 2M pages free" in f["detail"]
    assert '<memoryBacking><hugepages><page size="2048" unit="KiB"/>' in f["hint"]  # libvirt's terms
    assert "flat (pid 6100): add 512 2M pages" in f["hint"]  # what 'part' left of the free pages
    assert "part (pid 6000): add 24 2M pages" in f["hint"]  # 1024 needed, 1000 free
    assert "start it with '-object memory-backend-file" in f["hint"]  # QEMU's
    assert report["guests"][1]["libvirt"] is True


def test_ksm_merging_a_guest_on_a_latency_host_is_a_warning(run_cli, tmp_path):
    base = host(n_cpus=8, sockets=2, nodes=2)
    base["sys/devices/system/cpu/isolated"] = "2-3,6-7\n"
    merged = guest(7000, "merged", 1024, backing="thp", ksm_merging=2560, libvirt=True,
                   vcpus=((2, (2,)), (3, (3,))), emulator_allowed=(0, 1))
    _, report = _guests(run_cli, _tree(tmp_path, merged, base=base))
    f = _finding(report, "guests.ksm")
    assert f["status"] == "warn" and "merged (pid 7000): 10 MiB merged" in f["detail"]
    assert "<nosharepages/>" in f["hint"]
    assert report["guests"][0]["ksm"]["merging_pages"] == 2560
    assert _finding(report, "guests.pinning")["status"] == "pass"  # pinned 1:1 on isolated, emulator off them


def test_vcpus_on_housekeeping_cpus_emulator_on_isolated_ones_and_shared_cpus_are_named(run_cli, tmp_path):
    base = host(n_cpus=8, sockets=2, nodes=2)
    base["sys/devices/system/cpu/isolated"] = "2-3\n"
    floating = guest(8000, "floating", 512, backing="thp", vcpus=((0, (0, 1, 2, 3)),), emulator_allowed=(2, 3))
    a = guest(8100, "a", 512, backing="thp", vcpus=((2, (2,)),), emulator_allowed=(0,))
    b = guest(8200, "b", 512, backing="thp", vcpus=((2, (2,)),), emulator_allowed=(0,), thread_names=False)
    _, report = _guests(run_cli, _tree(tmp_path, floating, a, b, base=base))
    f = _finding(report, "guests.pinning")
    assert f["status"] == "warn"
    assert "floating (pid 8000): vCPUs 0 not pinned on a host with isolated CPUs" in f["detail"]
    assert "floating (pid 8000): vCPUs 0 may run on housekeeping CPUs" in f["detail"]
    assert "floating (pid 8000): emulator threads may run on isolated CPUs 2,3" in f["detail"]
    assert "CPU 2 is shared by a vCPU 0, b vCPU 0" in f["detail"]
    # b's threads are not named: its vCPU is the thread in KVM_RUN on its vCPU descriptor
    b_json = next(g for g in report["guests"] if g["name"] == "b")
    assert [v["tid"] for v in b_json["vcpus"]] == [8210]


def test_a_process_that_vanishes_or_cannot_be_inspected_is_never_a_traceback(run_cli, tmp_path, monkeypatch):
    from kvmtune.errors import HostError
    from kvmtune.host.door import Host

    gone = guest(9000, "gone", 512)
    gone_files, gone_links = gone
    gone_files = {k: v for k, v in gone_files.items() if "/fd/" in k}  # only its fd links were seen
    root = _tree(tmp_path, (gone_files, gone_links), guest(9100, "stays", 512), plain_process(9200, "qemu-kvm"))
    listdir = Host.listdir

    def refusing(self, rel):
        if rel == "proc/9200/fd":
            raise HostError(rel, "permission denied", errno.EACCES)
        return listdir(self, rel)

    monkeypatch.setattr(Host, "listdir", refusing)
    code, report = _guests(run_cli, root)
    assert code == 0
    assert [g["name"] for g in report["guests"]] == ["stays"]
    assert report["hidden"] == [{"pid": 9200, "name": "qemu-kvm", "reason": "/proc/9200/fd: permission denied"}]


def test_smaps_without_vmflags_lines_parse_the_same():
    """Kernels before 3.8 end no block with VmFlags: the header scan finds the blocks instead."""
    from kvmtune.probe.guest_memory import parse_smaps

    files, _ = guest(1, "x", 1024, backing="2M")
    modern = files["proc/1/smaps"]
    old = "".join(line + "\n" for line in modern.splitlines() if not line.startswith("VmFlags"))
    assert parse_smaps(modern, ("/dev/hugepages",)) == parse_smaps(old, ("/dev/hugepages",))
    assert [m.source for m in parse_smaps(old, ("/dev/hugepages",))] == ["anonymous", "hugetlbfs"]


def test_no_guests_and_no_process_table(run_cli, tmp_path, check_json):
    root = _tree(tmp_path, plain_process(1, "systemd"))
    code, report = _guests(run_cli, root)
    assert code == 0 and report["guests"] == [] and report["findings"] == []
    code, out, _ = run_cli("--root", str(root), "guests")
    assert "no running KVM guests" in out
    _, check = check_json(root, "--only", "guests")
    line = next(c for c in check["checks"] if c["id"] == "guests")
    assert line["status"] == "info" and line["detail"] == "no running guests"
    bare = tmp_path / "bare"
    write_tree(str(bare), host())
    _, check = check_json(bare, "--only", "guests")
    line = next(c for c in check["checks"] if c["id"] == "guests")
    assert line["status"] == "info" and "no process table" in line["detail"]


def test_check_summarises_the_guest_findings_in_one_line(tmp_path, check_json):
    base = host(n_cpus=8, sockets=2, nodes=2)
    root = _tree(tmp_path, guest(4242, "far", 1024, backing="thp", vcpus=((0, (0, 1, 2, 3)),),
                                 nodes_kb={1: 1024 << 10}), base=base)
    _, check = check_json(root, "--only", "guests")
    line = next(c for c in check["checks"] if c["id"] == "guests")
    assert line["status"] == "warn"
    assert line["detail"].startswith("1 guest (far (pid 4242)): far (pid 4242) 0% local")
    assert "kvmtune guests" in line["hint"]


def test_prometheus_has_a_series_per_guest(run_cli, tmp_path):
    root = _tree(tmp_path, guest(4242, "far", 1024, backing="thp", nodes_kb={1: 1024 << 10}))
    code, out, _ = run_cli("--root", str(root), "guests", "--format", "prometheus")
    assert code == 0
    assert 'kvmtune_guest_memory_bytes{guest="far",pid="4242",vmm="qemu",backing="thp"} 1073741824' in out
    assert 'kvmtune_guest_numa_locality{guest="far",pid="4242",vmm="qemu"} 0' in out


def test_strict_exits_1_on_a_warning(run_cli, tmp_path):
    root = _tree(tmp_path, guest(4242, "far", 1024, backing="thp", nodes_kb={1: 1024 << 10}))
    assert run_cli("--root", str(root), "guests", "--strict")[0] == 1
    assert run_cli("--root", str(root), "guests")[0] == 0


def test_the_text_table_fits_80_columns_and_names_each_guest(run_cli, tmp_path):
    root = _tree(tmp_path, guest(4242, "far", 1024, backing="thp", nodes_kb={1: 1024 << 10}))
    code, out, _ = run_cli("--root", str(root), "guests")
    assert code == 0
    assert "far (4242)" in out and "100% THP (anonymous)" in out and "0%" in out
    assert "WARN    guests.numa" in out


def test_report_summarises_guests_off_huge_pages_and_far_from_their_memory(run_cli, tmp_path):
    far = _tree(tmp_path / "a", guest(4242, "far", 1024, backing="thp", vcpus=((0, (0, 1, 2, 3)),),
                                      nodes_kb={1: 1024 << 10}))
    flat = _tree(tmp_path / "b", guest(6100, "flat", 1024, backing="4k"))
    results = tmp_path / "results"
    results.mkdir()
    for name, root in (("a", far), ("b", flat)):
        code, out, _ = run_cli("--root", str(root), "guests", "--json")
        (results / f"{name}.json").write_text(out)
    code, out, err = run_cli("report", str(results), "--json")
    assert code == 0, err
    guests = json.loads(out)["guests"]
    assert guests["hosts"] == 2 and guests["guests"] == 2
    assert [(g["guest"], g["share"]) for g in guests["off_hugepages"]] == [("flat", 1.0)]
    assert [(g["guest"], g["locality"]) for g in guests["low_locality"]] == [("far", 0.0)]
    code, out, _ = run_cli("report", str(results))
    assert "Guests: 2 guests on 2 hosts: 1 off huge pages, 1 below 95% NUMA locality" in out
    assert "flat (pid 6100) 1024 MiB (100%) on 4K pages" in out


# -- live, with real QEMU ----------------------------------------------------------------

QEMU = shutil.which("qemu-system-x86_64")
POOL = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"


def _can_run_qemu() -> str | None:
    if QEMU is None:
        return "qemu-system-x86_64 is not installed (.ci/run installs qemu-system-x86)"
    if os.geteuid() != 0:
        return "needs root (a hugetlbfs mount, a pool, /proc/PID/fd of the guests)"
    if not os.path.exists("/dev/kvm"):
        return "this machine has no /dev/kvm"
    if not os.access(POOL, os.W_OK):
        return "the 2M pool is not writable here"
    return None


def _qemu(name: str, memory: list[str], prefix: list[str] = ()) -> subprocess.Popen:
    return subprocess.Popen([*prefix, QEMU, "-accel", "kvm", "-cpu", "pentium3", "-m", "128", "-name", name,
                             "-display", "none", "-monitor", "none", "-serial", "none", "-nodefaults",
                             *memory], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.live
@pytest.mark.skipif(_can_run_qemu() is not None, reason=_can_run_qemu() or "")
def test_three_real_guests_are_found_with_their_backing_and_pinning(run_cli):
    before = live_state()
    pool_before = Path(POOL).read_text()
    mount = tempfile.mkdtemp(prefix="kvmtune-test-huge-")
    procs = []
    mounted = False
    try:
        Path(POOL).write_text(str(int(pool_before) + 64))
        subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", mount], check=True)
        mounted = True
        procs.append(_qemu("on-2m", ["-object", f"memory-backend-file,id=m,size=128M,mem-path={mount},share=on,"
                                     "prealloc=on", "-machine", "pc,memory-backend=m"]))
        procs.append(_qemu("on-4k", ["-object", "memory-backend-memfd,id=m,size=128M,prealloc=on",
                                     "-machine", "pc,memory-backend=m"]))
        procs.append(_qemu("pinned", ["-object", "memory-backend-memfd,id=m,size=128M,prealloc=on",
                                      "-machine", "pc,memory-backend=m"], prefix=["taskset", "-c", "1"]))
        by_name = {}
        for _ in range(100):  # until every guest has its vCPU thread in KVM_RUN and its RAM resident
            code, out, err = run_cli("guests", "--json")
            assert code == 0, err
            report = json.loads(out)
            by_name = {g["name"]: g for g in report["guests"] if g["pid"] in {p.pid for p in procs}}
            if len(by_name) == 3 and all(g["vcpus"] for g in by_name.values()):
                break
            assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs if p.poll() is not None]
            time.sleep(0.1)
        jsonschema.validate(report, SCHEMA)
        assert set(by_name) == {"on-2m", "on-4k", "pinned"}
        ram = 128 << 10
        m = by_name["on-2m"]["memory"]
        assert m["source"] == "hugetlbfs" and abs(m["hugetlb_kb"].get("2048", 0) - ram) <= ram * 0.03, m
        m = by_name["on-4k"]["memory"]
        assert m["source"] == "memfd" and abs(m["small_kb"] - ram) <= ram * 0.03 and not m["hugetlb_kb"], m
        assert by_name["pinned"]["pinned_one_to_one"] and by_name["pinned"]["vcpus"][0]["allowed"] == [1]
        assert by_name["pinned"]["emulator_threads"]["allowed"] == [1]
        assert not by_name["on-4k"]["pinned_one_to_one"]
        hp = _finding(report, "guests.hugepages")
        assert hp["status"] == "warn"  # the host has a pool, two guests are on 4K pages
        assert "on-4k" in hp["detail"] and "pinned" in hp["detail"] and "on-2m" not in hp["detail"]
    finally:
        for p in procs:
            p.kill()
            p.wait()
        if mounted:
            subprocess.run(["umount", mount], check=False)
        os.rmdir(mount)
        Path(POOL).write_text(pool_before)
    assert live_state() == before


@pytest.mark.parametrize("digits", ["\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079",
                                    "".join(chr(0x660 + i) for i in range(10))], ids=["superscript", "arabic-indic"])
def test_unicode_digits_in_a_process_table_are_no_guest_and_no_crash(digits, run_cli, tmp_path):
    """Every digit under /proc (pids, fds, vCPU numbers, smaps, numa_maps) written as a digit
    int() refuses or reads as another: no internal error, and no guest made of them."""
    far = guest(4242, "far", 1024, backing="thp", vcpus=((0, (0, 1, 2, 3)),), nodes_kb={1: 1024 << 10})
    root = _tree(tmp_path, far, plain_process(1, "systemd"))
    table = str.maketrans("0123456789", digits)
    for dirpath, dirnames, filenames in os.walk(root / "proc", topdown=False):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                text = Path(path).read_text(errors="surrogateescape")
                Path(path).write_text(text.translate(table), errors="surrogateescape")
            if name.translate(table) != name:
                os.rename(path, os.path.join(dirpath, name.translate(table)))
    code, out, err = run_cli("--root", str(root), "guests", "--json")
    assert code in (0, 1) and "internal error" not in err, err
    report = json.loads(out)
    jsonschema.validate(report, SCHEMA)
    assert report["guests"] == []
