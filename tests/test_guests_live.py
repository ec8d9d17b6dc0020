"""kvmtune guests' advice against real QEMU 7.2 guests (-accel kvm): the vCPU of a busy guest with
unnamed threads is found, a root guest seen by `nobody` is counted and fails --strict, and the
suggested hugetlbfs backend starts when pasted. Live: run inside `flock /work/live.lock`."""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import live_state
from tests.test_guests import POOL, QEMU, _can_run_qemu, _finding, _qemu

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534
PF_USER_WORKER = 0x4000

pytestmark = [pytest.mark.live, pytest.mark.skipif(_can_run_qemu() is not None, reason=_can_run_qemu() or "")]


def _loop_disk(path: Path) -> Path:
    """A boot sector that spins (jmp $): the guest's one vCPU stays busy in KVM_RUN."""
    sector = bytearray(512)
    sector[0:2] = b"\xeb\xfe"
    sector[510:512] = b"\x55\xaa"
    path.write_bytes(bytes(sector))
    return path


def _cpu_ticks(pid: int) -> dict[int, tuple[int, int]]:
    """tid -> (utime + stime, stat flags), read straight from /proc, not through kvmtune."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12]), int(fields[6]))
    return out


def _kvm_run_threads(pid: int) -> dict[int, int]:
    """tid -> vCPU index of every thread strace sees calling KVM_RUN for a second: the truth to
    compare with, found without kvmtune. Attaching interrupts KVM_RUN, and QEMU calls it again."""
    vcpu_of_fd = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("anon_inode:kvm-vcpu:"):
            vcpu_of_fd[int(fd)] = int(target.rpartition(":")[2])
    with tempfile.NamedTemporaryFile("r", prefix="kvmtune-strace-") as log:
        strace = subprocess.Popen(["strace", "-f", "-qq", "-p", str(pid), "-e", "trace=ioctl", "-e", "signal=none",
                                   "-o", log.name], stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        strace.send_signal(signal.SIGINT)  # detaches from every thread
        strace.wait(timeout=10)
        found = re.findall(r"^(\d+)\s+ioctl\((\d+), KVM_RUN", log.read(), re.M)
    return {int(tid): vcpu_of_fd[int(fd)] for tid, fd in found if int(fd) in vcpu_of_fd}


def _stop(procs):
    for p in procs:
        p.kill()
        p.wait()


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (.ci/run installs it)")
def test_the_vcpu_of_a_busy_guest_with_unnamed_threads_is_found(run_cli, tmp_path):
    before = live_state()
    disk = _loop_disk(tmp_path / "loop.img")
    guest = _qemu("busy-loop", ["-drive", f"file={disk},format=raw,if=ide,snapshot=on"])
    try:
        for _ in range(100):  # until one thread has run for a second: the vCPU in its loop
            ticks = _cpu_ticks(guest.pid)
            if ticks and max(t for t, _ in ticks.values()) >= os.sysconf("SC_CLK_TCK"):
                break
            assert guest.poll() is None, guest.stderr.read()
            time.sleep(0.1)
        ticks = _cpu_ticks(guest.pid)
        workers = [tid for tid, (_, flags) in ticks.items() if flags & PF_USER_WORKER]
        assert workers, "no kvm-nx-lpage-recovery worker in the guest's thread group: nothing to tell apart"
        code, out, err = run_cli("guests", "--json")
        assert code in (0, 1), err
        got = next(g for g in json.loads(out)["guests"] if g["pid"] == guest.pid)
        truth = _kvm_run_threads(guest.pid)
        assert len(truth) == 1, truth
        assert [(v["index"], v["tid"]) for v in got["vcpus"]] == [(i, t) for t, i in truth.items()], (got, ticks)
        assert got["vcpus"][0]["found_by"] in ("kvm_run", "running")
        # the kernel's worker, forked from the vCPU thread inside KVM_RUN, is no emulator thread
        assert got["emulator_threads"]["count"] <= len(ticks) - 1 - len(workers)
    finally:
        _stop([guest])
    assert live_state() == before


def _as_nobody(*argv: str) -> subprocess.CompletedProcess | None:
    """kvmtune run as `nobody` by an interpreter nobody may execute (this venv's may live under
    /root), or None if there is none."""
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([str(REPO), *site]), "HOME": "/"}
    for python in (sys.executable, "/usr/bin/python3"):
        try:
            probe = subprocess.run([python, "-c", "import kvmtune.entry, typer, yaml"], user=NOBODY, group=NOBODY,
                                   extra_groups=[], env=env, cwd="/", capture_output=True)
        except PermissionError:
            continue
        if probe.returncode == 0:
            return subprocess.run([python, "-m", "kvmtune", *argv], user=NOBODY, group=NOBODY, extra_groups=[],
                                  env=env, cwd="/", capture_output=True, text=True, timeout=60)
    return None


def test_a_root_guest_seen_by_nobody_is_counted_and_fails_strict():
    before = live_state()
    guest = _qemu("root-owned", [])
    try:
        time.sleep(1)
        assert guest.poll() is None, guest.stderr.read()
        run = _as_nobody("guests", "--json", "--strict")
        if run is None:
            pytest.skip("no Python interpreter that the user nobody may run with kvmtune's dependencies")
        assert run.returncode == 1, run.stderr
        report = json.loads(run.stdout)
        hidden = [h for h in report["hidden"] if h["pid"] == guest.pid]
        assert hidden and "permission denied" in hidden[0]["reason"].lower(), report["hidden"]
        f = _finding(report, "guests.inspect")
        assert f["status"] == "warn" and f"(pid {guest.pid})" in f["detail"]
        text = _as_nobody("guests")
        assert "no running KVM guests" not in text.stdout
        assert "not inspectable" in text.stdout and str(guest.pid) in text.stdout
    finally:
        _stop([guest])
    assert live_state() == before


def test_the_suggested_hugetlbfs_backend_starts_when_pasted(run_cli):
    before = live_state()
    pool_before = Path(POOL).read_text()
    mount = tempfile.mkdtemp(prefix="kvmtune-test-huge-")
    procs, mounted = [], False
    try:
        Path(POOL).write_text(str(int(pool_before) + 64))  # 128 MiB: one guest's RAM, no more
        subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", mount], check=True)
        mounted = True
        flat = _qemu("flat", ["-object", "memory-backend-memfd,id=m,size=128M,prealloc=on",
                              "-machine", "pc,memory-backend=m"])
        procs.append(flat)
        time.sleep(1)
        assert flat.poll() is None, flat.stderr.read()
        code, out, err = run_cli("guests", "--json")
        report = json.loads(out)
        hint = next(h for h in _finding(report, "guests.hugepages")["hint"].split(" | ")
                    if h.startswith(f"flat (pid {flat.pid}):"))
        # pages other processes hold or reserve may change while this runs: where the hint asks for
        # more pages, the test follows it as an operator would, with the profile's total
        grow = re.search(r"^flat \(pid \d+\): add (\d+) 2M pages \('hugepages: \{2M: (\d+)\}' in the profile", hint)
        if grow:
            Path(POOL).write_text(grow.group(2))
        else:
            assert "add " not in hint, hint
        option = re.search(r"start it with '([^']+)'", hint).group(1)
        assert "size=128M" in option
        # the mount the hint names (ours, unless the host has another 2M hugetlbfs)
        option = re.sub(r"mem-path=[^,]+", f"mem-path={mount}", option)
        flat.kill()
        flat.wait()
        backed = subprocess.Popen([QEMU, "-accel", "kvm", "-cpu", "pentium3", "-m", "128", "-name", "backed",
                                   "-display", "none", "-monitor", "none", "-serial", "none", "-nodefaults",
                                   *shlex.split(option)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(backed)
        for _ in range(100):  # until its RAM is allocated (prealloc=on) or it has failed
            code, out, err = run_cli("guests", "--json")
            got = [g for g in json.loads(out)["guests"] if g["pid"] == backed.pid]
            if got and got[0]["memory"]["hugetlb_kb"].get("2048") == 128 << 10 or backed.poll() is not None:
                break
            time.sleep(0.1)
        assert backed.poll() is None, backed.stderr.read().decode()
        mem = got[0]["memory"]
        assert mem["source"] == "hugetlbfs" and mem["hugetlb_kb"].get("2048") == 128 << 10, mem
    finally:
        _stop(procs)
        if mounted:
            subprocess.run(["umount", mount], check=False)
        os.rmdir(mount)
        Path(POOL).write_text(pool_before)
    assert live_state() == before
