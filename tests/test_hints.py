"""Hints that help: a typo gets the nearest real name, never advice that hides the typo."""

import json
import os

import pytest

from tests.fixtures.synthetic import host as synthetic_host, write_tree

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def root(tmp_path):
    files = synthetic_host()
    files["proc/sys/vm/swappiness"] = "60\n"
    files["proc/sys/vm/dirty_ratio"] = "20\n"
    files["proc/sys/net/core/somaxconn"] = "4096\n"
    return write_tree(str(tmp_path / "host"), files)


def _plan(run_cli, root, tmp_path, body):
    path = tmp_path / "p.yaml"
    path.write_text(body)
    return run_cli("--root", root, "plan", str(path))


def test_a_typo_gets_the_nearest_sysctl_not_the_skip_mark(run_cli, root, tmp_path):
    code, _, err = _plan(run_cli, root, tmp_path, "sysctl:\n  vm.swapiness: 10\n")
    assert code == 2
    assert "p.yaml:2:" in err and "did you mean 'vm.swappiness'" in err
    assert "-vm.swapiness" not in err  # following that hint would turn the error into a skip


def test_a_documented_sysctl_this_kernel_lacks_gets_the_skip_mark(run_cli, root, tmp_path):
    from kvmtune.tune.sysctl import documented_sysctls

    assert "vm.highmem_is_dirtyable" in documented_sysctls()
    code, _, err = _plan(run_cli, root, tmp_path, "sysctl:\n  vm.highmem_is_dirtyable: 0\n")
    assert code == 2 and "write '-vm.highmem_is_dirtyable'" in err
    code, out, err = _plan(run_cli, root, tmp_path, "sysctl:\n  -vm.highmem_is_dirtyable: 0\n")
    assert code == 0, err  # the hint, followed, works


def test_a_name_neither_here_nor_documented_gets_neither(run_cli, root, tmp_path):
    code, _, err = _plan(run_cli, root, tmp_path, "sysctl:\n  vm.qqqq_not_a_knob: 1\n")
    assert code == 2
    assert "did you mean" not in err and "'-vm." not in err and "check the spelling" in err


def test_the_documented_list_is_generated_from_the_kernel_documentation(tmp_path):
    """The committed list is what the script makes of the kernel's rst, named with its source."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_sysctl_names", os.path.join(HERE, "scripts/make_sysctl_names.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rst = ("Documentation for /proc/sys/kernel/\n=====\n\nacct\n====\n\ntext\n\n"
           "msgmax, msgmnb, and msgmni\n==========================\n\n"
           "bootloader_type (x86 only)\n==========================\n\n"
           "max_map_count:\n==============\n")
    assert script.documented(rst, "kernel") == ["kernel.acct", "kernel.msgmax", "kernel.msgmnb",
                                                "kernel.msgmni", "kernel.bootloader_type", "kernel.max_map_count"]
    net = "1. /proc/sys/net/core - Network core options\n====\n\nrmem_max\n--------\n\n4. Appletalk\n----\n\naarp-tick-time\n----\n"
    assert script.documented(net, "net") == ["net.core.rmem_max", "net.appletalk.aarp-tick-time"]
    with open(os.path.join(HERE, "kvmtune/data/sysctl_documented.json")) as fh:
        data = json.load(fh)
    assert data["source"] and len(data["files"]) >= 5
    assert {"vm.swappiness", "vm.nr_hugepages", "vm.highmem_is_dirtyable", "fs.file-max",
            "net.core.rmem_max"} <= set(data["names"])


@pytest.mark.parametrize("option, typo, meant", [("--only", "kvm.devise", "kvm.device"),
                                                 ("--skip", "memroy", "memory"),
                                                 ("--only", "ksmm", "ksm")])
def test_a_typo_in_only_or_skip_gets_the_nearest_check(option, typo, meant, run_cli, host_roots):
    code, _, err = run_cli("--root", str(host_roots["synthetic-intel-vtx"]), "check", option, typo)
    assert code == 2 and f"unknown check or area '{typo}'; did you mean '{meant}'?" in err
