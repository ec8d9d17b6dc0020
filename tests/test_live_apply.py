"""apply / verify / rollback on the live kernel of this machine (root only; CI runs as root).

Everything the test can change is saved first and put back by a finalizer that
runs even when an assertion fails: knobs, pools, mounts, /etc files, kvmtune's state.
"""

import json
import os
import subprocess

import pytest

SYS = "/sys/kernel/mm"
KNOBS = [
    "/proc/sys/vm/swappiness",
    "/proc/sys/vm/nr_hugepages",
    f"{SYS}/hugepages/hugepages-2048kB/nr_hugepages",
    f"{SYS}/hugepages/hugepages-1048576kB/nr_hugepages",
    "/sys/devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages",
    "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages",
    f"{SYS}/ksm/run", f"{SYS}/ksm/pages_to_scan", f"{SYS}/ksm/sleep_millisecs",
    f"{SYS}/transparent_hugepage/defrag",
]
ETC = ["/etc/fstab", "/etc/sysctl.d/99-zz-kvmtune.conf", "/etc/tmpfiles.d/kvmtune.conf",
       "/etc/default/grub.d/90-kvmtune.cfg", "/var/lib/kvmtune/state.json"]


def _can_run() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for path in KNOBS[:4] + [f"{SYS}/ksm/run", f"{SYS}/transparent_hugepage/defrag"]:
        if not os.access(path, os.W_OK):
            return f"{path} is not writable here"
    if os.statvfs("/proc/sys").f_flag & os.ST_RDONLY:
        return "/proc/sys is read-only"
    return None


pytestmark = [pytest.mark.live, pytest.mark.skipif(_can_run() is not None, reason=_can_run() or "")]


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def snapshot(mount_dir):
    return {
        "knobs": {k: read(k) for k in KNOBS},
        "etc": {p: read(p) for p in ETC},
        "hugetlbfs": sorted(l for l in read("/proc/mounts").splitlines() if " hugetlbfs " in l),
        "state_dir": os.path.exists("/var/lib/kvmtune"),
        "mount_dir": os.path.exists(mount_dir),
    }


def force_restore(saved, mount_dir):
    """Last resort if rollback itself failed: put every saved value back by hand."""
    if any(l.split()[1] == mount_dir for l in read("/proc/mounts").splitlines() if " hugetlbfs " in l):
        subprocess.run(["umount", mount_dir], check=False)
    for path, value in saved["etc"].items():
        if value is None:
            if os.path.exists(path):
                os.unlink(path)
        elif read(path) != value:
            with open(path, "w") as f:
                f.write(value)
    for path in ("/var/lib/kvmtune",):
        if not saved["state_dir"] and os.path.isdir(path):
            for entry in os.listdir(path):
                os.unlink(os.path.join(path, entry))
            os.rmdir(path)
    with open(f"{SYS}/ksm/run", "w") as f:
        f.write("2")  # unmerge before restoring, so every knob is writable
    for path, value in saved["knobs"].items():
        if value is None or read(path) == value:
            continue
        word = value.split("[")[1].split("]")[0] if "[" in value else value.strip()
        with open(path, "w") as f:
            f.write(word)


@pytest.fixture
def live_host(tmp_path_factory):
    mount_dir = str(tmp_path_factory.mktemp("live") / "huge2M")
    saved = snapshot(mount_dir)
    yield saved, mount_dir
    if snapshot(mount_dir) != saved:
        subprocess.run(["python", "-m", "kvmtune", "rollback", "--json"], capture_output=True, check=False)
    if snapshot(mount_dir) != saved:
        force_restore(saved, mount_dir)
    assert snapshot(mount_dir) == saved, "the live host was not restored"


def gigantic_page_available() -> bool:
    """Whether the kernel can grant one 1 GiB page right now (it may not, on fragmented memory)."""
    pool = f"{SYS}/hugepages/hugepages-1048576kB/nr_hugepages"
    before = read(pool).strip()
    try:
        with open(pool, "w") as f:
            f.write(str(int(before) + 1))
        return int(read(pool)) == int(before) + 1
    finally:
        with open(pool, "w") as f:
            f.write(before)


def test_apply_verify_rollback_on_the_live_kernel(live_host, tmp_path, run_cli):
    saved, mount_dir = live_host
    if not gigantic_page_available():
        pytest.skip("the kernel cannot grant a 1 GiB page right now (memory too fragmented)")
    swappiness = int(saved["knobs"]["/proc/sys/vm/swappiness"])
    defrag = "defer" if "[defer]" not in saved["knobs"][f"{SYS}/transparent_hugepage/defrag"] else "madvise"
    profile = tmp_path / "live.yaml"
    profile.write_text(f"""
sysctl:
  vm.swappiness: {swappiness + 7 if swappiness < 90 else swappiness - 7}
hugepages:
  1G: 1
  2M: 4
hugetlbfs:
  - path: {mount_dir}
    pagesize: 2M
    size: 8M
    mode: "1770"
ksm:
  run: 1
  pages_to_scan: 200
  sleep_millisecs: 50
thp:
  defrag: {defrag}
""")
    code, out, err = run_cli("apply", str(profile), "--json")
    result = json.loads(out)
    assert code == 0 and result["changed"] is True, (result["msg"], err)

    # What the kernel really granted, read back independently of kvmtune.
    assert read(f"{SYS}/hugepages/hugepages-1048576kB/nr_hugepages").strip() == "1"
    assert read(f"{SYS}/hugepages/hugepages-2048kB/nr_hugepages").strip() == "4"
    assert read(f"{SYS}/ksm/run").strip() == "1"
    assert read(f"{SYS}/ksm/pages_to_scan").strip() == "200"
    assert f"[{defrag}]" in read(f"{SYS}/transparent_hugepage/defrag")
    mounts = [l.split() for l in read("/proc/mounts").splitlines() if " hugetlbfs " in l]
    mine = next(m for m in mounts if m[1] == mount_dir)
    assert "pagesize=2M" in mine[3] and "size=8388608" in mine[3] and "mode=1770" in mine[3]
    assert oct(os.stat(mount_dir).st_mode & 0o7777) == "0o1770"
    assert f"hugetlbfs {mount_dir} hugetlbfs" in read("/etc/fstab")
    assert os.path.exists("/var/lib/kvmtune/state.json")

    # The sysctl drop-in is valid for sysctl(8) itself.
    proc = subprocess.run(["sysctl", "-p", "/etc/sysctl.d/99-zz-kvmtune.conf"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr

    code, out, _ = run_cli("apply", str(profile), "--json")
    again = json.loads(out)
    assert code == 0 and again["changed"] is False
    assert {c["status"] for c in again["changes"]} == {"ok"}

    code, out, _ = run_cli("verify", str(profile), "--json")
    assert code == 0 and json.loads(out)["drift"] == []

    code, out, err = run_cli("rollback", "--json")
    back = json.loads(out)
    assert code == 0 and back["failed"] is False, (back["msg"], err)
    assert snapshot(mount_dir) == saved


def test_without_a_boot_loader_the_live_apply_writes_no_boot_config_and_settles(live_host, tmp_path, run_cli):
    from kvmtune.host.door import Host
    from kvmtune.probe.boot_loader import read_boot_loader

    saved, mount_dir = live_host
    loader = read_boot_loader(Host("/"))
    if loader.editable:
        pytest.skip(f"this machine has a boot loader kvmtune edits ({loader.evidence})")
    swappiness = int(saved["knobs"]["/proc/sys/vm/swappiness"])
    profile = tmp_path / "boot.yaml"
    profile.write_text(f"sysctl:\n  vm.swappiness: {swappiness + 7 if swappiness < 90 else swappiness - 7}\n"
                       "hugepages:\n  2M: {count: 4, boot: true}\n")
    code, out, err = run_cli("apply", str(profile), "--json")
    first = json.loads(out)
    assert code == 0 and first["changed"] is True, (first["msg"], err)
    hand = next(c for c in first["changes"] if c["target"] == "kernel command line: 2M huge pages at boot")
    assert hand["status"] == "blocked" and hand["after"] == "hugepagesz=2M hugepages=4"
    assert not os.path.exists("/etc/default/grub.d/90-kvmtune.cfg")
    assert read(f"{SYS}/hugepages/hugepages-2048kB/nr_hugepages").strip() == "4"  # the runtime part applied
    code, out, err = run_cli("apply", str(profile), "--json")
    again = json.loads(out)
    assert code == 0 and again["changed"] is False, [c for c in again["changes"] if c["status"] != "ok"]
    code, out, err = run_cli("rollback", "--json")
    assert code == 0, err
    assert snapshot(mount_dir) == saved
