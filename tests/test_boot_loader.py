"""Kernel arguments go only where a boot loader reads them; elsewhere they are left, blocked,
to the operator, and a second apply of anything changes nothing."""

import json
import re
from pathlib import Path

import pytest

from kvmtune.host.writable import WritableHost as Host
from tests.conftest import build_root
from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.support.treestate import tree_state

GRUB_DROPIN = "etc/default/grub.d/90-kvmtune.cfg"
BOOT_POOL = "hugepages:\n  1G:\n    count: 4\n    spread: true\n    boot: true\nsysctl:\n  vm.swappiness: 10\n"
GRUB = {"etc/default/grub": 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n', "usr/sbin/update-grub": ""}
BLS = {"boot/loader/entries/abc-6.8.5.conf": "title Fedora\nlinux /vmlinuz-6.8.5\noptions root=UUID=1 ro quiet\n"}


def _tree(tmp_path, extra=None, name="host") -> str:
    files = synthetic_host()
    files.update(extra or {})
    return write_tree(str(tmp_path / name), files)


def _apply(run_cli, root, profile, *argv):
    code, out, err = run_cli("--root", str(root), "apply", str(profile), "--json", *argv)
    return code, json.loads(out), err


@pytest.mark.parametrize("files,kind", [
    ({}, None),
    (GRUB, "grub"),
    ({"etc/default/grub": "", "usr/sbin/grub2-mkconfig": ""}, "grub"),
    ({"etc/default/grub": ""}, None),  # the defaults file alone: nothing turns it into a config
    ({"usr/sbin/update-grub": ""}, None),
    (BLS, "bls"),
    ({**GRUB, **BLS}, "bls"),  # Fedora: grub2-mkconfig no longer copies GRUB_CMDLINE_LINUX into the entries
    ({"efi/loader/loader.conf": "timeout 3\n"}, "systemd-boot"),
])
def test_the_boot_loader_is_detected_from_the_tree(tmp_path, files, kind):
    from kvmtune.probe.boot_loader import read_boot_loader

    loader = read_boot_loader(Host(_tree(tmp_path, files)))
    assert loader.kind == kind
    assert loader.editable == (kind in ("grub", "bls"))


def test_a_generator_reached_through_a_merged_usr_link_counts(tmp_path):
    from kvmtune.probe.boot_loader import read_boot_loader

    root = Path(_tree(tmp_path, {"etc/default/grub": "", "usr/bin/grub2-mkconfig": ""}))
    (root / "sbin").symlink_to("usr/bin")
    (root / "usr/bin/grub2-mkconfig").unlink()
    (root / "usr/sbin").mkdir()
    (root / "usr/sbin/grub2-mkconfig").write_text("")
    assert read_boot_loader(Host(str(root))).kind == "grub"


def test_without_a_boot_loader_apply_writes_no_boot_config_blocks_the_arguments_and_settles(run_cli, tmp_path):
    root = _tree(tmp_path)
    profile = tmp_path / "boot.yaml"
    profile.write_text(BOOT_POOL)
    code, out, err = _apply(run_cli, root, profile)
    assert code == 0, err
    assert not (Path(root) / GRUB_DROPIN).exists()
    assert not (Path(root) / "etc/default/grub.d").exists()
    by = {c["target"]: c for c in out["changes"]}
    assert by["sysctl vm.swappiness"]["status"] == "changed"  # the runtime part applies as usual
    assert by["hugepages 1G node0"]["status"] == "changed"
    hand = by["kernel command line: 1G huge pages at boot"]
    assert hand["status"] == "blocked" and hand["after"] == "hugepagesz=1G hugepages=0:2,1:2"
    assert "'hugepagesz=1G hugepages=0:2,1:2' to the kernel command line by hand" in hand["detail"]
    assert any("add these kernel arguments by hand: hugepagesz=1G hugepages=0:2,1:2" in w for w in out["warnings"])
    assert not any("update-grub" in json.dumps(c) for c in out["changes"])
    assert out["changed"] is True and out["reboot_required"] is False
    after_first = tree_state(root)
    code, out, err = _apply(run_cli, root, profile)
    assert code == 0, err
    assert out["changed"] is False, [c for c in out["changes"] if c["status"] != "ok"]
    assert tree_state(root) == after_first


def test_the_blocked_arguments_settle_once_the_running_kernel_has_them(run_cli, tmp_path):
    root = _tree(tmp_path)
    profile = tmp_path / "boot.yaml"
    profile.write_text(BOOT_POOL)
    assert _apply(run_cli, root, profile)[0] == 0
    code, out, err = run_cli("--root", root, "verify", str(profile), "--json")
    assert code == 1 and json.loads(out)["drift"][0]["target"] == "kernel command line: 1G huge pages at boot"
    Path(root, "proc/cmdline").write_text("root=/dev/sda1 ro quiet hugepagesz=1G hugepages=0:2,1:2\n")
    code, out, err = run_cli("--root", root, "verify", str(profile), "--json")
    assert code == 0, out


class RefusingHost(Host):
    """A kernel that grants no page of a 1G pool at run time (fragmented memory), as this machine's does."""

    def write(self, rel, value):
        if "hugepages-1048576kB" in rel and rel.endswith("nr_hugepages"):
            value = self.read(rel).strip()
        super().write(rel, value)


def _apply_with(root, profile_text, tmp_path):
    from kvmtune.profile import load_profile
    from kvmtune.tune.engine import apply_profile

    path = tmp_path / "p.yaml"
    path.write_text(profile_text)
    return apply_profile(RefusingHost(root), load_profile(str(path)))


@pytest.mark.parametrize("extra", [{}, GRUB], ids=["no boot loader", "grub"])
def test_a_boot_pool_the_kernel_will_not_grant_now_is_blocked_not_changed_every_run(run_cli, tmp_path, extra):
    from kvmtune.commands.apply import result

    root = _tree(tmp_path, extra)
    first = _apply_with(root, BOOT_POOL, tmp_path)
    pool = next(c for c in first.changes if c.target == "hugepages 1G node0")
    assert pool.status == "blocked" and pool.detail.startswith("got 0 of 2 1G pages on node 0")
    if extra:
        assert "the boot reservation provides them" in pool.detail
        assert (Path(root) / GRUB_DROPIN).exists()
    else:
        assert "the boot reservation" not in pool.detail
        assert "add 'hugepagesz=1G hugepages=0:2,1:2' to the kernel command line by hand" in pool.detail
    assert result(first, mode="apply")["changed"] is True  # the sysctl and the files
    state = tree_state(root)
    second = _apply_with(root, BOOT_POOL, tmp_path)
    out = result(second, mode="apply")
    assert out["changed"] is False, [c for c in out["changes"] if c["status"] not in ("ok", "blocked")]
    assert {k: v for k, v in tree_state(root).items() if "var/lib/kvmtune" not in k} == \
        {k: v for k, v in state.items() if "var/lib/kvmtune" not in k}


# -- every shipped profile, on several trees: the second apply changes nothing ---------------

PROFILES = sorted(p.stem for p in (Path(__file__).parent.parent / "profiles").glob("*.yaml"))


# What pinned's cpus and kvm_modules sections read, on trees that did not capture it.
CPU_KNOBS = {"proc/irq/default_smp_affinity": "ffffffff\n", "sys/devices/virtual/workqueue/cpumask": "ffffffff\n",
             "sys/module/kvm/parameters/kvmclock_periodic_sync": "Y\n",
             "sys/module/kvm_intel/parameters/ple_gap": "128\n", "sys/module/kvm/parameters/halt_poll_ns": "200000\n",
             "sys/devices/virtual/workqueue/writeback/cpumask": "ffffffff\n",
             "proc/sys/kernel/timer_migration": "1\n", "proc/sys/kernel/hung_task_timeout_secs": "120\n"}
# What a captured tree that predates planning lacks: the shipped profiles' sysctls, KSM and THP.
PLAN_KNOBS = {**{f"proc/sys/vm/{k}": v for k, v in (("swappiness", "60\n"), ("dirty_background_ratio", "10\n"),
                                                    ("stat_interval", "1\n"))},
              **{k: v for k, v in synthetic_host().items() if k.startswith(("sys/kernel/mm/ksm/",
                                                                            "sys/kernel/mm/transparent_hugepage/"))}}


def _fixture_tree(tmp_path, name: str) -> str:
    if name.startswith("synthetic"):
        loader = {"synthetic": {}, "synthetic-grub": GRUB, "synthetic-bls": BLS}[name]
        return _tree(tmp_path, {**CPU_KNOBS, **loader}, name)
    root = build_root(name, tmp_path)
    write_tree(str(root), {**CPU_KNOBS, **PLAN_KNOBS})
    return str(root)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("tree", ["synthetic", "synthetic-grub", "synthetic-bls", "intel-silver4108-32c-2n"])
def test_a_second_apply_of_every_shipped_profile_changes_nothing(run_cli, tmp_path, profile, tree):
    root = _fixture_tree(tmp_path, tree)
    code, out, err = run_cli("--root", root, "apply", profile, "--json", "--force")
    assert code == 0, out + err
    state = tree_state(root)
    code, out, err = run_cli("--root", root, "apply", profile, "--json", "--force")
    result = json.loads(out)
    assert code == 0 and result["changed"] is False, [c for c in result["changes"] if c["status"] != "ok"]
    assert tree_state(root) == state
    if tree != "synthetic-grub":
        assert not (Path(root) / GRUB_DROPIN).exists()


# -- the advice passes the kernel's command-line grammar --------------------------------------

def kernel_words(line: str) -> list[tuple[str, str | None]]:
    """The command line split as the kernel's next_arg() (lib/cmdline.c, Linux 6.x) does: words
    separated by spaces, a value may be double-quoted, and ``--`` ends the kernel's part."""
    out, i = [], 0
    while i < len(line):
        while i < len(line) and line[i].isspace():
            i += 1
        if i == len(line):
            break
        start, quoted = i, False
        while i < len(line) and (quoted or not line[i].isspace()):
            quoted ^= line[i] == '"'
            i += 1
        assert not quoted, f"unbalanced quote in {line[start:i]!r}"
        word = line[start:i]
        if word == "--":
            break
        key, eq, value = word.partition("=")
        out.append((key, value.strip('"') if eq else None))
    return out


CPULIST = r"(?:\d+(?:-\d+(?::\d+/\d+)?)?)(?:,\d+(?:-\d+(?::\d+/\d+)?)?)*"
# The value grammar of each parameter kvmtune advises (Documentation/admin-guide/kernel-parameters.txt,
# mm/hugetlbpage.rst; isolcpus flags from kernel/sched/isolation.c).
VALUES = {
    "hugepagesz": r"\d+[KMG]",
    "hugepages": r"\d+|\d+:\d+(?:,\d+:\d+)*",
    "default_hugepagesz": r"\d+[KMG]",
    "isolcpus": rf"(?:(?:nohz|domain|managed_irq),)*{CPULIST}",
    "nohz": r"on|off",
    "nohz_full": CPULIST,
    "rcu_nocbs": CPULIST,
    "irqaffinity": CPULIST,
    # the boot section's (kvmtune.profile.schema_boot), from kernel-parameters.txt
    "nmi_watchdog": r"0|1|panic|nopanic",
    "skew_tick": r"0|1",
    "tsc": r"reliable|nowatchdog|noirqtime|unstable",
    "intel_pstate": r"disable|passive|active|no_hwp|hwp_only",
    "kvm.nx_huge_pages": r"never|off|auto|force",
    "split_lock_detect": r"off|warn|fatal|ratelimit:\d{1,4}",
}
BARE = ("nosoftlockup",)  # parameters that take no value


def assert_kernel_grammar(args: str) -> None:
    words = kernel_words(args)
    assert " ".join(f"{k}={v}" if v is not None else k for k, v in words) == args  # nothing lost or merged
    for key, value in words:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", key), key
        assert key in VALUES or key in BARE, f"{key} is not a parameter kvmtune means to advise"
        assert (value is None) if key in BARE else (value is not None and re.fullmatch(VALUES[key], value)), \
            f"{key}={value}"
    sizes = [v for k, v in words if k == "hugepagesz"]
    counts = [v for k, v in words if k == "hugepages"]
    assert len(sizes) == len(counts), "each hugepages= follows its hugepagesz="


def test_kernel_grammar_checker_refuses_what_the_kernel_would_misread():
    for bad in ('hugepagesz=1G hugepages="0:2', "hugepagesz=1 G hugepages=2", "isolcpus=0-3;nohz",
                "hugepages=0:2,1", "nohz_full=1-3 --"):
        with pytest.raises(AssertionError):
            assert_kernel_grammar(bad)


def test_the_kernel_arguments_left_to_the_operator_pass_the_kernel_grammar(run_cli, tmp_path):
    root = _fixture_tree(tmp_path, "intel-silver4108-32c-2n")
    profile = tmp_path / "p.yaml"
    profile.write_text("extends: pinned\nhugepages:\n  2M: {count: 64, boot: true}\n")
    code, out, err = run_cli("--root", str(root), "plan", str(profile), "--json", "--force")
    assert code == 0, err
    hand = [c for c in json.loads(out)["changes"] if c["target"].startswith("kernel command line")]
    assert {c["target"] for c in hand} == {"kernel command line: 1G huge pages at boot",
                                           "kernel command line: 2M huge pages at boot",
                                           "kernel command line: CPU isolation",
                                           "kernel command line: quiet CPUs (boot section)"}
    for c in hand:
        assert_kernel_grammar(c["after"])
        assert f"'{c['after']}'" in c["detail"]  # the detail quotes exactly what to paste
    warning = next(w for w in json.loads(out)["warnings"] if "by hand" in w)
    assert_kernel_grammar(warning.rsplit(": ", 1)[1])


# -- check: a drop-in no boot loader reads is not "run update-grub" -------------------------

@pytest.mark.parametrize("extra,advice", [({}, "by hand"), (GRUB, "update-grub")], ids=["no boot loader", "grub"])
def test_check_advises_update_grub_only_where_grub_boots(check_json, tmp_path, extra, advice):
    dropin = {GRUB_DROPIN: '# Written by kvmtune apply\nGRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX hugepagesz=1G hugepages=4"\n'}
    _, report = check_json(_tree(tmp_path, {**extra, **dropin}), "--only", "kernel.cmdline")
    line = report["checks"][0]
    assert line["status"] == "warn" and advice in line["hint"]
    if not extra:
        assert "update-grub" not in line["hint"] and "'hugepagesz=1G hugepages=4'" in line["hint"]
        assert "no boot loader reads kvmtune's /etc/default/grub.d drop-in" in line["detail"]


def test_the_kernel_arguments_of_the_grub_drop_in_pass_the_kernel_grammar(run_cli, tmp_path):
    root = _fixture_tree(tmp_path, "intel-silver4108-32c-2n")
    write_tree(root, GRUB)
    profile = tmp_path / "p.yaml"
    profile.write_text("extends: pinned\nhugepages:\n  2M: {count: 64, boot: true}\n")
    code, out, err = run_cli("--root", root, "apply", str(profile), "--json", "--force")
    assert code == 0, err
    text = (Path(root) / GRUB_DROPIN).read_text()
    line = next(l for l in text.splitlines() if l.startswith("GRUB_CMDLINE_LINUX="))
    args = line.partition("=")[2].strip('"').replace("$GRUB_CMDLINE_LINUX ", "")
    assert_kernel_grammar(args)


def test_with_no_persist_a_boot_pool_short_now_does_not_promise_a_boot_reservation(tmp_path):
    from kvmtune.profile import load_profile
    from kvmtune.tune.engine import apply_profile

    root = _tree(tmp_path, GRUB)
    path = tmp_path / "p.yaml"
    path.write_text(BOOT_POOL)
    plan = apply_profile(RefusingHost(root), load_profile(str(path)), persist=False)
    pool = next(c for c in plan.changes if c.target == "hugepages 1G node0")
    assert pool.status == "blocked" and "--no-persist: nothing reserves them at boot" in pool.detail
    assert not (Path(root) / GRUB_DROPIN).exists()
