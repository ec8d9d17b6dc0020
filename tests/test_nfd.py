"""check --format nfd: the feature file Node Feature Discovery's local source reads (issue 21 section 4).

The grammar below is written from NFD's documentation and the Kubernetes rules its master
applies, not from kvmtune's code:
- NFD customization guide, "Local feature source" / "Input format": a file in
  /etc/kubernetes/node-feature-discovery/features.d/, lines ``<namespace>/<name>[=<value>]``,
  ``#`` lines are comments, a file over 64 kB is ignored.
- nfd-master validates each label as a Kubernetes label (k8s.io/apimachinery validation:
  IsQualifiedName for the name, IsValidLabelValue for the value): a prefix that is a DNS
  subdomain, a name of at most 63 characters matching ``([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]``,
  and a value of at most 63 characters matching the same pattern, or empty.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.conftest import ALL_HOSTS, build_root

PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PART_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
FIXED = ["ready", "ready-passthrough", "ready-sriov", "ready-migration", "ready-pinned", "kvm-functional", "cpu-model", "tsc-khz",
         "hugepages-2M-free", "hugepages-1G-free", "isolated-cpus"]


def parse_feature_file(text: str) -> dict[str, str]:
    """NFD's reading of a feature file, holding every label to the grammar."""
    assert len(text.encode()) <= 64 * 1024, "NFD ignores a feature file over 64 kB"
    labels = {}
    for line in text.split("\n")[:-1]:
        assert line, "an empty line"
        if line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        prefix, slash, part = name.partition("/")
        assert slash and prefix == "kvmtune.io" and PREFIX_RE.match(prefix) and len(prefix) <= 253, line
        assert len(part) <= 63 and PART_RE.match(part), f"label name {part!r}"
        assert len(value) <= 63 and (value == "" or PART_RE.match(value)), f"label value {value!r}"
        assert name not in labels, f"{name} twice"
        labels[name] = value if sep else "true"
    assert text.endswith("\n")
    return labels


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_every_fixture_host_gives_labels_nfd_accepts(run_cli, host_roots, name):
    code, out, err = run_cli("--root", str(host_roots[name]), "check", "--format", "nfd")
    assert code in (0, 1), err
    labels = parse_feature_file(out)
    names = [n.removeprefix("kvmtune.io/") for n in labels]
    assert set(names) <= set(FIXED) and names == [n for n in FIXED if n in names]  # fixed names, fixed order
    assert {"ready", "ready-passthrough", "ready-sriov", "ready-migration"} <= set(names)
    assert all(labels[f"kvmtune.io/{n}"] in ("true", "false") for n in names if n.startswith("ready"))


def test_the_grammar_test_rejects_what_nfd_rejects():
    for bad in ("kvmtune.io/cpu-model=Skylake Server\n", "kvmtune.io/x=" + "a" * 64 + "\n",
                "kvmtune.io/x=-v4\n", "Kvmtune.io/x=1\n", "kvmtune.io/x=a/b\n"):
        with pytest.raises(AssertionError):
            parse_feature_file(bad)
    from kvmtune.render.nfd import valid_part

    assert not valid_part("Skylake Server") and not valid_part("a" * 64) and not valid_part("-v4")
    assert valid_part("Cascadelake-Server-v5") and valid_part("", empty_ok=True) and not valid_part("")


def test_labels_agree_with_check_json(run_cli, host_roots, tmp_path):
    root = build_root("synthetic-hugepage-pools", tmp_path)
    (root / "kvmtune-kernel-log").write_text("tsc: Refined TSC clocksource calibration: 2095.077 MHz\n")
    (root / "sys/devices/system/cpu/isolated").write_text("2-3,6\n")
    _, out, _ = run_cli("--root", str(root), "check", "--format", "nfd")
    labels = parse_feature_file(out)
    _, report, _ = run_cli("--root", str(root), "check", "--json", "--for", "passthrough,sriov,migration")
    report = json.loads(report)
    _, models, _ = run_cli("--root", str(root), "cpu-models", "--json")
    assert labels["kvmtune.io/tsc-khz"] == str(report["host"]["migration"]["tsc_khz"]) == "2095077"
    # hugepage_pools(): 1536 of 2048 2M pages free, all 8 1G pages
    assert labels["kvmtune.io/hugepages-2M-free"] == "1536" and labels["kvmtune.io/hugepages-1G-free"] == "8"
    assert labels["kvmtune.io/isolated-cpus"] == "3"
    assert labels["kvmtune.io/cpu-model"] == json.loads(models)["recommended"]["model"]
    for intent in ("passthrough", "sriov", "migration"):
        assert labels[f"kvmtune.io/ready-{intent}"] == ("true" if intent in report["ready_for"] else "false")
    assert labels["kvmtune.io/ready"] == "true"
    assert "kvmtune.io/kvm-functional" not in labels  # a snapshot cannot run a guest: left out, not guessed


def test_the_label_file_is_replaced_atomically(run_cli, host_roots, tmp_path):
    target = tmp_path / "features.d" / "kvmtune"
    target.parent.mkdir()
    target.write_text("kvmtune.io/ready=false\n")
    old = os.open(target, os.O_RDONLY)
    try:
        before = os.fstat(old).st_ino
        code, out, _ = run_cli("--root", str(host_roots["synthetic-intel-vtx"]), "check", "--format", "nfd",
                               "-o", str(target))
        assert code == 0 and out == ""
        # A writer that truncates the file in place would change what the old descriptor reads.
        assert os.pread(old, 100, 0) == b"kvmtune.io/ready=false\n"
    finally:
        os.close(old)
    assert os.stat(target).st_ino != before
    assert os.listdir(target.parent) == ["kvmtune"]
    assert parse_feature_file(target.read_text())["kvmtune.io/ready"] == "true"


def test_a_write_that_fails_halfway_leaves_the_old_labels(run_cli, host_roots, tmp_path, monkeypatch):
    import kvmtune.host.atomic as atomic

    target = tmp_path / "kvmtune"
    target.write_text("kvmtune.io/ready=false\n")
    real = os.write

    def half(fd, data):
        real(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "write", half)
    code, _, err = run_cli("--root", str(host_roots["synthetic-intel-vtx"]), "check", "--format", "nfd",
                           "-o", str(target))
    assert code == 2 and "No space left on device" in err
    assert target.read_text() == "kvmtune.io/ready=false\n"
    assert os.listdir(tmp_path) == ["kvmtune"]


def test_the_shipped_systemd_timer_verifies_and_writes_the_nfd_file(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    contrib = Path(__file__).resolve().parent.parent / "contrib" / "nfd"
    service = (contrib / "kvmtune-nfd.service").read_text()
    command = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    assert command.split()[1:] == ["check", "--format", "nfd", "-o",
                                   "/etc/kubernetes/node-feature-discovery/features.d/kvmtune"]
    # verify wants the binary to exist: point it at this Python, the rest unchanged.
    (tmp_path / "kvmtune-nfd.service").write_text(service.replace("/usr/local/bin/kvmtune", sys.executable))
    shutil.copy(contrib / "kvmtune-nfd.timer", tmp_path)
    proc = subprocess.run([analyze, "verify", str(tmp_path / "kvmtune-nfd.service"), str(tmp_path / "kvmtune-nfd.timer")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
