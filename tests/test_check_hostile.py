"""check on damaged, hostile and restricted hosts: it always ends, always in one piece.

The file positions are not listed by hand: a normal run records every path the read
phase opens, and each is then replaced in turn by a FIFO, a socket, a directory, a link
loop, a link out of the snapshot, an oversized file or (as root) a device node. Every
variant must exit 0 or 1 within a second, with JSON that validates, and no traceback.
"""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys

import jsonschema
import pytest

from kvmtune.host.door import Host
from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.test_golden import SCHEMA

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    files = synthetic_host(n_cpus=4, iommu_groups=2)
    files["proc/sys/kernel/hostname"] = "hv01\n"
    files["etc/modprobe.d/kvm.conf"] = "options kvm_intel nested=1\n"
    return write_tree(str(tmp_path_factory.mktemp("template") / "host"), files)


def recorded_reads(template, run_cli, monkeypatch) -> list[str]:
    seen = []
    for name in ("read", "read_optional", "listdir", "stat"):
        real = getattr(Host, name)
        monkeypatch.setattr(Host, name, lambda self, rel, *a, _real=real, **k: seen.append(rel) or _real(self, rel, *a, **k))
    code, out, err = run_cli("--root", template, "check", "--json")
    monkeypatch.undo()
    assert code in (0, 1), err
    return sorted({r for r in seen if os.path.lexists(os.path.join(template, r))})


class Expired(BaseException):
    """Not an OSError (as TimeoutError is) and not an Exception: nothing in kvmtune may catch it."""


def timed_check(run_cli, root, *extra, limit=1.0):
    def expire(*_):
        raise Expired(f"check did not end within {limit} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return run_cli("--root", root, "check", *extra)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def assert_whole(code, out, err):
    assert code in (0, 1), (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    report = json.loads(out)
    jsonschema.validate(report, SCHEMA)
    return report


def replace(path: str, kind: str, outside: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        here = os.getcwd()
        os.chdir(os.path.dirname(path))  # a socket path may be at most 108 bytes
        try:
            socket.socket(socket.AF_UNIX).bind(os.path.basename(path))
        finally:
            os.chdir(here)
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "loop":
        os.symlink(os.path.basename(path), path)
    elif kind == "escape":
        os.symlink(outside, path)
    elif kind == "oversized":
        with open(path, "wb") as f:
            f.truncate(64 << 20)  # sparse: 64 MiB of zeros
    elif kind == "device":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers


KINDS = ["fifo", "socket", "directory", "loop", "escape", "oversized"] + (["device"] if os.geteuid() == 0 else [])


@pytest.mark.parametrize("kind", KINDS)
def test_every_file_position_survives_hostile_content(kind, template, tmp_path, run_cli, monkeypatch):
    positions = recorded_reads(template, run_cli, monkeypatch)
    assert len(positions) > 60, positions
    outside = tmp_path / "outside"
    outside.write_text("0-3\n")
    failures = []
    for rel in positions:
        root = str(tmp_path / "case")
        if os.path.exists(root):
            shutil.rmtree(root)
        shutil.copytree(template, root, symlinks=True)
        replace(os.path.join(root, rel), kind, str(outside))
        try:
            code, out, err = timed_check(run_cli, root, "--json")
            assert_whole(code, out, err)
            code, out, err = timed_check(run_cli, root)
            assert code in (0, 1) and "Traceback" not in err, err
        except (AssertionError, Expired, ValueError) as exc:
            failures.append((rel, str(exc)[:160]))
    assert not failures, f"{len(failures)} of {len(positions)} positions: {failures[:8]}"


@pytest.mark.parametrize("rel, text", [
    ("sys/devices/system/cpu/online", "0-999999999\n"),
    ("sys/devices/system/node/online", "0-99999999\n"),
    ("sys/devices/system/node/node0/cpulist", "0-2147483647\n"),
    ("sys/devices/system/node/node0/cpumap", "f" * 400000 + "\n"),
    ("proc/mounts", "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\nbad\\777escape /x\\9 tmpfs rw 0 0\n"),
    ("proc/mounts", "cgroup2 /../../../etc cgroup2 rw 0 0\n"),
    ("proc/mounts", "hugetlbfs /dev/huge\\xff hugetlbfs rw,pagesize=2M 0 0\n"),
    ("proc/cpuinfo", "processor\t: 0\n" + "flags\t\t: " + "x " * 200 + "\n"),
])
def test_hostile_values_end_in_unknown_not_a_hang_or_crash(rel, text, template, tmp_path, run_cli):
    root = str(tmp_path / "case")
    shutil.copytree(template, root, symlinks=True)
    write_tree(root, {rel: text})
    assert_whole(*timed_check(run_cli, root, "--json"))


def test_absolute_links_inside_a_snapshot_never_read_the_live_host(template, tmp_path, run_cli):
    root = str(tmp_path / "case")
    shutil.copytree(template, root, symlinks=True)
    shutil.rmtree(os.path.join(root, "proc"))
    os.symlink("/proc", os.path.join(root, "proc"))  # a capture that kept proc -> /proc
    report = assert_whole(*timed_check(run_cli, root, "--json"))
    with open("/proc/meminfo") as f:
        live_total = int(f.readline().split()[1])
    assert report["host"]["memory"]["MemTotal"] != live_total
    assert report["host"]["cpu"]["model_name"] is None or "Gold 6230" not in open("/proc/cpuinfo").read()


@pytest.mark.parametrize("kind", ["regular", "fifo"])
def test_dev_kvm_must_be_the_kvm_character_device(kind, template, tmp_path, run_cli):
    root = str(tmp_path / "case")
    shutil.copytree(template, root, symlinks=True)
    manifest = json.loads(open(os.path.join(root, "kvmtune-snapshot.json")).read())
    del manifest["nodes"]["dev/kvm"]  # the tree itself holds what is at /dev/kvm
    write_tree(root, {"kvmtune-snapshot.json": json.dumps(manifest), "dev/kvm": ""})
    if kind == "fifo":
        replace(os.path.join(root, "dev/kvm"), "fifo", "")
    report = assert_whole(*timed_check(run_cli, root, "--json"))
    device = next(c for c in report["checks"] if c["id"] == "kvm.device")
    assert device["status"] == "fail" and "not the KVM character device" in device["detail"]
    assert report["ready"] is False


def test_offline_cpus_are_offline_everywhere_without_the_global_list(template, tmp_path, run_cli):
    root = str(tmp_path / "case")
    shutil.copytree(template, root, symlinks=True)
    os.unlink(os.path.join(root, "sys/devices/system/cpu/online"))
    write_tree(root, {"sys/devices/system/cpu/cpu0/online": "1\n", "sys/devices/system/cpu/cpu1/online": "1\n",
                      "sys/devices/system/cpu/cpu2/online": "0\n", "sys/devices/system/cpu/cpu3/online": "1\n"})
    report = assert_whole(*timed_check(run_cli, root, "--json"))
    assert report["host"]["cpu"]["online"] == [0, 1, 3]
    assert report["host"]["numa"]["nodes"]["1"]["cpus"] == [3]


class SealedHost(Host):
    """A Host that refuses every call once the read phase is over."""

    sealed = False

    def __getattribute__(self, name):
        if not name.startswith("_") and object.__getattribute__(self, "sealed") and name not in ("root", "live", "sealed"):
            raise AssertionError(f"Host.{name} called after the read phase")
        return object.__getattribute__(self, name)


def test_judging_and_rendering_never_touch_the_host(template, monkeypatch):
    import io

    from kvmtune.checks import read_phase, run_checks
    from kvmtune.render.check_text import render_check_text
    from kvmtune.render.json_out import report_json
    from kvmtune.render.prometheus import render_prometheus

    host = SealedHost(template)
    facts = read_phase(host, only=[], skip=[])
    host.sealed = True
    report = run_checks(facts, strict=True)
    jsonschema.validate(report_json(report), SCHEMA)
    render_check_text(report, stream=io.StringIO())
    render_check_text(report, stream=io.StringIO(), colour=True)
    render_prometheus(report)


@pytest.mark.parametrize("only, allowed", [
    ("ksm", ("sys/kernel/mm/ksm", "proc/sys/kernel/hostname", "sys/devices/system/node/online",
             "var/lib/kvmtune/state.json")),  # the KSM policy's last decision
    ("memory.thp", ("sys/kernel/mm/transparent_hugepage", "proc/cmdline", "proc/sys/kernel/hostname")),
])
def test_only_reads_what_the_chosen_checks_need(only, allowed, template, run_cli, monkeypatch):
    seen = []
    for name in ("read", "read_optional", "listdir", "stat", "exists", "is_dir", "getxattr", "open_device"):
        real = getattr(Host, name)
        monkeypatch.setattr(Host, name, lambda self, rel, *a, _real=real, _n=name, **k: seen.append(rel) or _real(self, rel, *a, **k))
    code, out, err = run_cli("--root", template, "check", "--json", "--only", only)
    monkeypatch.undo()
    assert code in (0, 1), err
    strays = [r for r in seen if not r.startswith(allowed)]
    assert not strays, strays


def run_as_nobody(*argv, root=None):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": REPO, "HOME": "/tmp"}
    cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m", "kvmtune"]
    return subprocess.run(cmd + ([] if root is None else ["--root", root]) + list(argv), capture_output=True,
                          text=True, env=env, timeout=60, cwd="/tmp")


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and setpriv to run as nobody")


@needs_root
@pytest.mark.parametrize("rel", ["proc", "sys", "sys/kernel/mm/hugepages", "sys/kernel/mm/ksm", "sys/module",
                                 "sys/module/kvm/parameters", "sys/devices/system/node",
                                 "sys/devices/system/node/node0", "etc", "."])
def test_unreadable_directories_for_an_unprivileged_user(rel, template, tmp_path_factory):
    base = tmp_path_factory.mktemp("nobody")
    os.chmod(base, 0o755)
    for parent in (base.parent, base.parent.parent):
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    root = str(base / "case")
    shutil.copytree(template, root, symlinks=True)
    os.chmod(os.path.join(root, rel), 0)
    for extra in (["--json"], []):
        proc = run_as_nobody("check", *extra, root=root)
        assert proc.returncode in (0, 1), proc.stderr
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
        if extra:
            jsonschema.validate(json.loads(proc.stdout), SCHEMA)


live_kvm_closed = pytest.mark.skipif(
    not os.path.exists("/dev/kvm") or os.geteuid() != 0 or not shutil.which("setpriv")
    or os.stat("/dev/kvm").st_mode & 0o006 == 0o006, reason="needs root, setpriv and a /dev/kvm that nobody may not open")


@live_kvm_closed
def test_a_user_who_may_not_open_dev_kvm_is_told_so_not_advised_nested_virtualisation():
    proc = run_as_nobody("check", "--json")
    report = json.loads(proc.stdout)
    checks = {c["id"]: c for c in report["checks"]}
    assert "nested" not in (checks["cpu.virt"]["hint"] or "") and "nested" not in checks["cpu.virt"]["detail"]
    access = checks["kvm.access"]
    assert access["status"] == "fail" and "uid 65534" in access["detail"] and "mode 0600" in access["detail"]
    proc = run_as_nobody("cpu-models", "--json")
    out = json.loads(proc.stdout)
    assert out["source"] == "cpuinfo" and "Permission denied" in out["kvm_unavailable"]
    text = run_as_nobody("cpu-models").stdout
    assert "KVM could not be asked" in "\n".join(text.splitlines()[:3]), text[:400]


@needs_root
def test_not_permitted_is_exit_4_with_what_to_do(tmp_path_factory, run_cli):
    """apply as a user who is not root, and rollback of a state only root may read: exit 4
    (not permitted), never 3 (internal error), and the message says what to do."""
    proc = run_as_nobody("apply", "kvm-host", "--json")
    assert proc.returncode == 4 and "run as root" in proc.stderr, proc.stderr
    base = tmp_path_factory.mktemp("perm")
    for parent in (base, base.parent, base.parent.parent):
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    root = str(base / "host")
    write_tree(root, synthetic_host(n_cpus=2, iommu_groups=0))
    profile = base / "p.yaml"
    profile.write_text("sysctl:\n  vm.swappiness: 7\n")
    os.chmod(profile, 0o644)
    assert run_cli("--root", root, "apply", str(profile), "--json")[0] == 0
    proc = run_as_nobody("rollback", "--json", root=root)
    assert proc.returncode == 4 and "state.json" in proc.stderr and "root" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert run_cli("--root", root, "rollback", "--json")[0] == 0


def _unicode_digits(root: str, positions: list[str], digit: str) -> None:
    """Every ASCII digit of every file check reads, and of every name in a directory it lists,
    written as ``digit`` (str.isdigit() says yes to it; int() refuses '²' and reads '٣' as 3)."""
    table = str.maketrans("0123456789", digit * 10)
    for rel in positions:
        path = os.path.join(root, rel)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                data = f.read()
            try:
                text = data.decode()
            except UnicodeDecodeError:
                continue
            with open(path, "w") as f:
                f.write(text.translate(table))
        elif os.path.isdir(path) and not os.path.islink(path):
            for name in os.listdir(path):
                twin = name.translate(table)
                if twin != name and not os.path.lexists(os.path.join(path, twin)):
                    src = os.path.join(path, name)
                    if os.path.isdir(src) and not os.path.islink(src):
                        shutil.copytree(src, os.path.join(path, twin), symlinks=True)
                    elif os.path.isfile(src):
                        shutil.copy(src, os.path.join(path, twin))


@pytest.mark.parametrize("digit", ["\u00b2", "\u0663", "\uff17"])
def test_unicode_digits_are_not_numbers_anywhere_check_reads(digit, template, tmp_path, run_cli, monkeypatch):
    positions = recorded_reads(template, run_cli, monkeypatch)
    root = str(tmp_path / "case")
    shutil.copytree(template, root, symlinks=True)
    _unicode_digits(root, positions, digit)
    report = assert_whole(*timed_check(run_cli, root, "--json", limit=5.0))
    code, out, err = timed_check(run_cli, root, limit=5.0)
    assert code in (0, 1) and "Traceback" not in err, err
    # Not one number of the host may have been read out of those digits (all of them are the
    # same digit, so such a number is d, dd, ddd...).
    import unicodedata

    d = str(unicodedata.digit(digit))
    read = {int(d * k) for k in range(1, 20)}
    assert not [n for n in _numbers(report["host"]) if n in read], report["host"]
    assert not [k for k in _keys(report["host"]) if k.isdigit() and int(k) in read], report["host"]


def _numbers(value):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)


def _keys(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from _keys(v)


KVM_NODE = {"mode": 0o20660, "uid": 0, "gid": 0, "major": 10, "minor": 232}


@pytest.mark.parametrize("name, node", [
    ("huge major", dict(KVM_NODE, major=1 << 40)),
    ("negative minor", dict(KVM_NODE, minor=-1)),
    ("huge mode", dict(KVM_NODE, mode=1 << 70)),
    ("negative uid", dict(KVM_NODE, uid=-5)),
    ("xattr not text", dict(KVM_NODE, xattrs={"system.posix_acl_access": 5})),
    ("xattr not base64", dict(KVM_NODE, xattrs={"system.posix_acl_access": "@@@\u00b2"})),
    ("xattr names not text", dict(KVM_NODE, xattrs=[1, 2])),
])
def test_a_hostile_manifest_is_refused_as_a_whole(name, node, template, tmp_path, run_cli):
    """kvmtune-snapshot.json is input: a node field out of range is "not a manifest", and the
    device nodes it describes are then unknown, never an internal error."""
    root = str(tmp_path / "case")
    shutil.copytree(template, root, symlinks=True)
    if os.path.lexists(os.path.join(root, "dev/kvm")):
        os.unlink(os.path.join(root, "dev/kvm"))
    with open(os.path.join(root, "kvmtune-snapshot.json"), "w") as f:
        json.dump({"format": 1, "nodes": {"dev/kvm": node}}, f)
    assert set(Host(root).manifest()) == {"problem"}
    for extra in (("--json",), ("--as-user", "root", "--json")):
        report = assert_whole(*timed_check(run_cli, root, *extra))
        kvm = {c["id"]: c for c in report["checks"]}["kvm.device"]
        assert kvm["status"] != "pass", kvm
