"""tune/journal.py alone reads and writes state.json; check's readers get a validated view."""

import json
import os
from pathlib import Path

from kvmtune.host.door import Host
from tests.fixtures.synthetic import write_tree

BLS = "title Linux\nlinux /vmlinuz\noptions root=/dev/sda1 ro nohz_full=2-3\n"


def _state(records: dict, profiles=("virt-host",)) -> str:
    return json.dumps({"version": 2, "run": {"command": "apply", "status": "complete"}, "records": records,
                       "state_dirs": [], "profiles": list(profiles)})


def test_only_the_journal_names_the_state_file():
    repo = Path(__file__).resolve().parent.parent / "kvmtune"
    allowed = {"tune/journal.py", "host/owned.py", "render/man_page.py"}  # the owner, the allow-list, the docs
    readers = [str(p.relative_to(repo)) for p in repo.rglob("*.py")
               if str(p.relative_to(repo)) not in allowed and ("state.json" in p.read_text()
                                                                or "STATE_FILE" in p.read_text())]
    assert readers == [], f"these read state.json without the journal: {readers}"


def test_boot_arguments_on_a_bls_host_come_from_the_journals_checked_records(tmp_path):
    from kvmtune.probe.bootargs import read_boot_args

    record = {"type": "bls", "entry": "a.conf", "original": BLS.replace(" nohz_full=2-3", ""), "dirs": []}
    root = write_tree(str(tmp_path / "host"), {"boot/loader/entries/a.conf": BLS,
                                               "var/lib/kvmtune/state.json": _state({"bls:a.conf": record})})
    args = read_boot_args(Host(root))
    assert args.kvmtune == ("nohz_full=2-3",) and args.where == "bls" and args.problems == ()


def test_a_tampered_record_is_reported_and_never_followed(tmp_path):
    from kvmtune.probe.bootargs import read_boot_args

    record = {"type": "bls", "entry": "../../etc/passwd", "original": "", "dirs": []}
    root = write_tree(str(tmp_path / "host"), {"etc/passwd": "root:x:0:0::/root:/bin/sh\n",
                                               "var/lib/kvmtune/state.json": _state({"bls:x": record})})
    args = read_boot_args(Host(root))
    assert args.kvmtune == () and args.where is None
    assert len(args.problems) == 1 and "not a state kvmtune wrote" in args.problems[0]


def test_the_applied_profiles_are_read_only_from_a_valid_state(tmp_path):
    from kvmtune.tune.journal import read_profiles

    good = write_tree(str(tmp_path / "a"), {"var/lib/kvmtune/state.json": _state({})})
    assert read_profiles(Host(good)) == (("virt-host",), None)
    bad = write_tree(str(tmp_path / "b"), {"var/lib/kvmtune/state.json": json.dumps({"profiles": ["x"]})})
    profiles, problem = read_profiles(Host(bad))
    assert profiles == () and "not a state kvmtune wrote" in problem
    assert read_profiles(Host(write_tree(str(tmp_path / "c"), {"etc/passwd": ""}))) == ((), None)
    assert not os.path.exists(os.path.join(good, "var/lib/kvmtune/.state.json.kvmtune-tmp"))
