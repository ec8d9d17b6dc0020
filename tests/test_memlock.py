"""memlock: the VMM user's RLIMIT_MEMLOCK (pam_limits, systemd) and each guest's, against the RAM it pins."""

from __future__ import annotations

import json

import pytest

from tests.conftest import by_id
from tests.fixtures.guests import guest, write_links
from tests.fixtures.synthetic import host, write_tree
from kvmtune.probe.memlock import (UNLIMITED, kernel_default_kb, parse_limits, parse_proc_limits,
                                   parse_systemd_default, session_limit)

LIMITS = """# /etc/security/limits.conf
*               soft    memlock         65536
*               hard    memlock         131072
@kvm            -       memlock         1048576   # the kvm group
qemu            soft    memlock         unlimited
root            -       memlock         32
"""


def rules(*texts):
    out = []
    for i, text in enumerate(texts):
        out += parse_limits(text, f"/f{i}")
    return out


def test_a_users_line_beats_a_group_line_which_beats_the_wildcard():
    r = rules(LIMITS)
    assert session_limit(r, "alice", frozenset()) == (65536, 131072, "/f0:2, /f0:3")
    assert session_limit(r, "bob", frozenset({"kvm"}))[:2] == (1048576, 1048576)
    assert session_limit(r, "qemu", frozenset({"kvm"}))[:2] == (UNLIMITED, 1048576)


def test_wildcard_and_group_lines_do_not_apply_to_root():
    assert session_limit(rules("* - memlock 99\n@root - memlock 98\n"), "root", frozenset({"root"})) is None
    assert session_limit(rules(LIMITS), "root", frozenset({"kvm"}))[:2] == (32, 32)


def test_among_equals_the_later_file_wins_and_no_line_is_none():
    r = rules("* - memlock 100\n", "* soft memlock 200\n")
    assert session_limit(r, "x", frozenset())[:2] == (200, 100)
    assert session_limit(rules("* - nofile 100\n@x hard memlock oops\n"), "x", frozenset({"x"})) is None


@pytest.mark.parametrize("text, expected", [
    ("[Manager]\nDefaultLimitMEMLOCK=8M\n", (8192, 8192)),
    ("[Manager]\nDefaultLimitMEMLOCK=64K:infinity\n", (64, UNLIMITED)),
    ("[Manager]\nDefaultLimitMEMLOCK=1G\nDefaultLimitMEMLOCK=2G\n", (2 << 20, 2 << 20)),
    ("[Manager]\n#DefaultLimitMEMLOCK=8M\n", None),
    ("[Other]\nDefaultLimitMEMLOCK=8M\n", None),
    ("[Manager]\nDefaultLimitMEMLOCK=lots\n", None),
])
def test_systemd_default_limit(text, expected):
    assert parse_systemd_default(text) == expected


def test_proc_limits_row_and_the_kernels_default():
    text = ("Limit                     Soft Limit           Hard Limit           Units\n"
            "Max locked memory         8388608              unlimited            bytes\n")
    assert parse_proc_limits(text) == (8192, UNLIMITED)
    assert parse_proc_limits("") == (None, None)
    assert kernel_default_kb("6.18.0") == 8192 and kernel_default_kb("5.15.0-91-generic") == 64


def limits_file(soft: str, hard: str = "unlimited") -> str:
    return ("Limit                     Soft Limit           Hard Limit           Units\n"
            f"Max locked memory         {soft:<20} {hard:<20} bytes\n")


def tree(tmp_path, guest_limit: str | None, vfio: bool = True, extra: dict | None = None):
    files = dict(host(n_cpus=4, sockets=1, nodes=1))
    g_files, links = guest(4242, "gpu-vm", 4096)
    files.update(g_files)
    if guest_limit is not None:
        files["proc/4242/limits"] = limits_file(guest_limit)
    if vfio:
        links["proc/4242/fd/30"] = "/dev/vfio/12"
    files.update(extra or {})
    root = tmp_path / "host"
    write_tree(str(root), files)
    write_links(str(root), links)
    return root


def test_a_vfio_guest_below_its_ram_fails_passthrough_and_not_plain_check(tmp_path, check_json):
    root = tree(tmp_path, str(64 << 20))
    _, plain = check_json(root)
    assert "memlock" not in by_id(plain)
    _, report = check_json(root, "--for", "passthrough")
    c = by_id(report)["memlock"]
    assert c["status"] == "fail" and "gpu-vm (pid 4242) pins 4 GiB with a limit of 64 MiB" in c["detail"]
    assert "LimitMEMLOCK=" in c["hint"] and "limits.d" in c["hint"] and "<hostdev>" in c["hint"]
    assert "memlock" in report["checks"][-1]["data"]["blocking"]
    assert c["data"]["guests"][0]["vfio"] is True and c["data"]["guests"][0]["soft_kb"] == 64 << 10
    # Outside passthrough the shortfall warns and blocks nothing (kvm.device runs too: without
    # it readiness is not judged at all).
    _, only = check_json(root, "--only", "memlock,kvm.device")
    assert by_id(only)["memlock"]["status"] == "warn" and only["judged"] is True
    assert "memlock" not in (only["checks"][-1]["data"] or {}).get("blocking", [])


def test_an_unlimited_guest_and_user_pass(tmp_path, check_json):
    root = tree(tmp_path, "unlimited", extra={
        "etc/passwd": "root:x:0:0::/root:/bin/sh\nlibvirt-qemu:x:64055:108::/var/lib/libvirt:/usr/sbin/nologin\n",
        "etc/group": "root:x:0:\nkvm:x:108:libvirt-qemu\n",
        "etc/security/limits.d/90-vfio.conf": "@kvm - memlock unlimited\n"})
    _, report = check_json(root, "--only", "memlock")
    c = by_id(report)["memlock"]
    assert c["status"] == "pass", c
    assert c["data"]["user"] == "libvirt-qemu"
    assert c["data"]["session"]["source"].endswith("limits.d/90-vfio.conf:1")


def test_the_as_user_limit_below_the_largest_guest_warns(tmp_path, check_json):
    root = tree(tmp_path, "unlimited", vfio=False, extra={
        "etc/passwd": "root:x:0:0::/root:/bin/sh\nvmm:x:1000:1000::/home/vmm:/bin/sh\n",
        "etc/group": "root:x:0:\nvmm:x:1000:\n",
        "etc/security/limits.conf": "vmm hard memlock 1048576\nvmm soft memlock 65536\n",
        "etc/systemd/system.conf": "[Manager]\nDefaultLimitMEMLOCK=infinity\n"})
    _, report = check_json(root, "--only", "memlock", "--as-user", "vmm")
    c = by_id(report)["memlock"]
    assert c["status"] == "warn" and c["detail"].startswith("vmm gets 64 MiB")
    assert "'vmm - memlock 5242880'" in c["hint"]
    assert c["data"]["service"]["soft_kb"] == UNLIMITED


def test_with_no_guest_a_finite_limit_is_only_stated(tmp_path, check_json):
    files = dict(host(n_cpus=4, sockets=1, nodes=1))
    files["etc/systemd/system.conf.d/memlock.conf"] = "[Manager]\nDefaultLimitMEMLOCK=16M\n"
    root = tmp_path / "bare"
    write_tree(str(root), files)
    _, report = check_json(root, "--only", "memlock")
    c = by_id(report)["memlock"]
    assert c["status"] == "info"
    assert c["detail"].startswith("libvirt-qemu: no limits.conf line; services get 16 MiB "
                                  "(/etc/systemd/system.conf.d/memlock.conf")
    assert json.dumps(c)  # evidence is plain data


def test_a_snapshot_carries_the_limits_files(tmp_path, run_cli, check_json):
    root = tree(tmp_path, None, vfio=False, extra={
        "etc/security/limits.d/90-vfio.conf": "libvirt-qemu - memlock 4194304\n",
        "etc/systemd/system.conf": "[Manager]\nDefaultLimitMEMLOCK=8M\n"})
    code, _, err = run_cli("--root", str(root), "snapshot", str(tmp_path / "snap"))
    assert code == 0, err
    _, original = check_json(root, "--only", "memlock")
    _, copy = check_json(tmp_path / "snap", "--only", "memlock")
    assert by_id(copy)["memlock"]["data"]["session"] == by_id(original)["memlock"]["data"]["session"]
    assert by_id(copy)["memlock"]["data"]["session"]["soft_kb"] == 4 << 20
