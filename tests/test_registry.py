"""The registry of change kinds: a half-declared kind is refused at import, and every declared
kind goes the whole way, apply -> journal record -> check -> rollback plan -> back."""

import json

import pytest

from kvmtune.host.writable import WritableHost as Host
from kvmtune.tune import registry
from kvmtune.tune.change import CHANGED, DONE, OK, PENDING, Change
from kvmtune.tune.engine import Context
from kvmtune.tune.facts import read_for_rollback
from kvmtune.tune.knob import KnobChange
from kvmtune.tune.planner import plan_rollback
from kvmtune.tune.registry import Field, check_record, integer, kind, load_all
from tests.fixtures.synthetic import host as synthetic_host, write_tree


class Complete(Change):
    KIND, ORDER = "testkind", 99
    FIELDS = (Field("n", integer(0, 10), "a small number"),)
    __slots__ = ("n",)

    def __init__(self, n, before, after, status=None, detail=""):
        self.n = n
        super().__init__(before, after, status, detail)

    target = property(lambda self: f"test {self.n}")

    def execute(self, host, ctx):
        self.status = CHANGED

    def undo(self, host):
        pass

    @classmethod
    def read_rollback(cls, host, entries):
        return {}

    @classmethod
    def restore(cls, entries, facts, warnings):
        return []


def _without(piece: str):
    """A copy of Complete whose declaration lacks one piece."""
    body = {k: v for k, v in Complete.__dict__.items() if k not in ("__dict__", "__weakref__", "__slots__", "n")}
    body.pop(piece)
    body["__slots__"] = ("n",) if piece != "__init__" else ()
    return type("Partial", (Change,), body)


@pytest.mark.parametrize("piece", ["KIND", "FIELDS", "ORDER", "target", "execute", "undo", "read_rollback",
                                   "restore"])
def test_a_kind_missing_a_piece_of_its_declaration_is_refused(piece):
    with pytest.raises(TypeError, match="declares no|does not define"):
        kind(_without(piece))
    assert "testkind" not in registry.KINDS


def test_a_knob_kind_must_name_its_file_and_a_kind_its_own_name():
    class NoRel(KnobChange):
        KIND, ORDER, FIELDS = "testknob", 99, ()
        __slots__ = ()
        target = "x"

    with pytest.raises(TypeError, match="rel"):
        kind(NoRel)
    clash = type("Clash", (Complete,), {"KIND": "sysctl", "__slots__": ()})
    load_all()
    with pytest.raises(TypeError, match="already"):
        kind(clash)


def test_a_complete_kind_is_registered_and_its_identity_derived():
    try:
        kind(Complete)
        change = Complete(3, "a", "b")
        assert change.key == "testkind:3" and change.identity() == {"n": 3}
        check_record("testkind:3", json.loads(json.dumps(change.record())))
        with pytest.raises(ValueError, match="testkind n 11 is not a small number"):
            check_record("testkind:11", {"type": "testkind", "n": 11, "original": "a"})
        with pytest.raises(ValueError, match="unknown fields"):
            check_record("testkind:3", {"type": "testkind", "n": 3, "name": "vm.x", "original": "a"})
    finally:
        registry.KINDS.pop("testkind", None)


# -- every registered kind, the whole way ------------------------------------------

HEADER = "# Written by kvmtune apply; 'kvmtune rollback' removes it. Edit the profile, not this file.\n"
BLS = "title Linux\nlinux /vmlinuz\noptions root=/dev/sda1 ro\n"
FSTAB = "UUID=abc / ext4 errors=remount-ro 0 1\n"
GPU = "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0"


def _samples():
    """kind -> a change as apply would make it on the tree below (before: what the tree holds)."""
    from kvmtune.tune.bls import BlsChange, with_args
    from kvmtune.tune.cpus import IrqChange, MaskChange
    from kvmtune.tune.files import FileChange, wanted
    from kvmtune.tune.fstab import FstabChange, fstab_text
    from kvmtune.tune.irqbalance import IrqbalanceChange, with_ban
    from kvmtune.tune.kthreads import KthreadChange
    from kvmtune.tune.ksm import KsmChange
    from kvmtune.tune.mounts import MountChange
    from kvmtune.tune.pools import PoolChange
    from kvmtune.tune.power import PowerChange
    from kvmtune.tune.sriov import SriovChange
    from kvmtune.tune.sysctl import SysctlChange
    from kvmtune.tune.thp import ThpChange
    from kvmtune.tune.vfio import Binding, VfioBindChange

    return {
        "sysctl": SysctlChange("vm.swappiness", "60", "10"),
        "pool": PoolChange(2048, None, "0", "4"),
        "ksm": KsmChange("run", "0", "1"),
        "thp": ThpChange("defrag", "madvise", "never"),
        "cpumask": MaskChange("default_smp_affinity", "ff", "3"),
        "irq": IrqChange(5, "0-7", "0-1"),
        "power": PowerChange("governor", 0, "powersave", "performance"),
        "mount": MountChange("/mnt/a", None, "pagesize=2M", missing=("mnt", "mnt/a"), status=PENDING),
        "file": FileChange("modprobe", None, wanted(HEADER + "options kvm x=1\n"), missing=("etc/modprobe.d",)),
        "fstab": FstabChange(FSTAB, fstab_text(FSTAB, [("/mnt/a", "pagesize=2M")], FSTAB), [("/mnt/a", "pagesize=2M")],
                             FSTAB),
        "bls": BlsChange("a.conf", BLS, with_args(BLS, ["nohz_full=2-3"])),
        "sriov": SriovChange("0000:01:00.0", "numvfs", "2", "4"),
        "irqbalance": IrqbalanceChange("etc/default/irqbalance", "OPTIONS=\n",
                                       with_ban("OPTIONS=\n", {2, 3}, "OPTIONS=\n"), ban="IRQBALANCE_BANNED_CPULIST=2-3"),
        "vfio-bind": VfioBindChange("0000:01:00.0", GPU, Binding(None, None), Binding("vfio-pci", "vfio-pci")),
        "kthread": KthreadChange(40, "ksmd", "0-7", "0-1"),
    }


# A kernel thread's stat line (Linux 6.x): field 9, flags 0x208040, holds PF_KTHREAD.
KSMD_STAT = "40 (ksmd) S 2 0 0 0 -1 2129984 0 0 0 0 0 3 0 0 25 5 1 0 9 0 0 18446744073709551615 0 0 0 0 0 0 0 " \
            "2147483647 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"


@pytest.fixture
def root(tmp_path):
    files = synthetic_host()
    files.update({"proc/sys/vm/swappiness": "60\n", "proc/irq/default_smp_affinity": "ff\n",
                  "proc/irq/5/smp_affinity_list": "0-7\n", "etc/fstab": FSTAB,
                  "sys/devices/system/cpu/cpufreq/policy0/scaling_governor": "powersave\n",
                  "boot/loader/entries/a.conf": BLS, "etc/default/irqbalance": "OPTIONS=\n",
                  "sys/bus/pci/devices/0000:01:00.0/sriov_numvfs": "2\n",
                  "sys/bus/pci/devices/0000:01:00.0/sriov_totalvfs": "8\n",
                  f"{GPU}/driver_override": "(null)\n", "sys/bus/pci/drivers_probe": "",
                  "proc/40/stat": KSMD_STAT, "proc/40/status": "Name:\tksmd\nCpus_allowed:\tff\nCpus_allowed_list:\t0-7\n"})
    return write_tree(str(tmp_path / "host"), files)


def test_every_kind_has_a_sample_here():
    assert set(_samples()) == set(load_all()), "a new kind needs a sample in this walk"


@pytest.mark.parametrize("name", sorted(_samples()))
def test_every_kind_goes_from_record_through_check_to_a_rollback_that_puts_it_back(root, name):
    host = Host(root)
    change = _samples()[name]
    assert change.status == PENDING and change.KIND == name
    record = json.loads(json.dumps(change.record()))  # as the journal stores it
    change.execute(host, Context())
    assert change.status in DONE, change.detail
    check_record(change.key, record)
    records = {change.key: record}
    plan = plan_rollback(records, read_for_rollback(host, records))
    mine = [c for c in plan.changes if c.key == change.key]
    assert mine and all(c.status == PENDING for c in mine), plan.changes
    for c in plan.pending:
        c.execute(host, Context())
    assert not [c for c in plan.changes if c.status not in (OK, *DONE)], plan.changes
    again = plan_rollback(records, read_for_rollback(host, records))
    assert [c for c in again.changes if c.status != OK] == [], again.changes
