"""The osnoise tracer's files are journaled before bench writes them, so that a kill -9 in the
tracer's window leaves a state `kvmtune rollback` (or the next bench) puts back exactly."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "osnoise-tracefs"
BASE = "sys/kernel/tracing"
FILES = ("osnoise/cpus", "tracing_on", "current_tracer")
STATE = "var/lib/kvmtune/state.json"

# A bench killed in the tracer's window: the measuring step is a kill -9 (os._exit runs no
# ``finally``). The journal hook is passed where this tree's bench takes one.
KILLED = """
import inspect, os, sys
from kvmtune.bench.osnoise import measure_osnoise
from kvmtune.bench.undo import Undo
from kvmtune.host.writable import WritableHost
host = WritableHost(sys.argv[1], live=False)
undo = Undo(host, True)
undo.start()
extra = {"journal": undo.tracer} if "journal" in inspect.signature(measure_osnoise).parameters else {}
measure_osnoise(host, "sys/kernel/tracing", [1, 3], 1.0, lambda seconds: os._exit(9), **extra)
"""


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(FIXTURE, root)
    return root


def _files(root: Path) -> dict:
    """Each tracer file's bytes and mode."""
    return {name: ((root / BASE / name).read_bytes(), (root / BASE / name).stat().st_mode) for name in FILES}


def _kill_in_window(root: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED, str(root)], env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    assert (root / BASE / "current_tracer").read_text() == "osnoise\n"  # killed with the tracer running


def test_rollback_after_a_kill_in_the_tracer_window_puts_the_files_back_exactly(tree, run_cli):
    before = _files(tree)
    _kill_in_window(tree)
    running = _files(tree)
    code, out, err = run_cli("--root", str(tree), "rollback", "--check", "--json")
    assert code == 0 and _files(tree) == running, err
    assert json.loads(out)["warnings"][0] == ("would put back the osnoise tracer a killed bench left: "
                                              "/sys/kernel/tracing/current_tracer 'osnoise' -> 'nop'")
    code, out, err = run_cli("--root", str(tree), "rollback", "--json")
    assert code == 0, err
    assert _files(tree) == before  # fails when the tracer's files are not journaled
    assert not (tree / STATE).exists()  # there was no state before the bench: none after
    assert [w.rpartition(": ")[2] for w in json.loads(out)["warnings"]] == [
        "/sys/kernel/tracing/current_tracer 'osnoise' -> 'nop'", "/sys/kernel/tracing/tracing_on '1' -> '0'",
        "/sys/kernel/tracing/osnoise/cpus '1,3' -> '0-3'"]
    code, out, err = run_cli("--root", str(tree), "rollback", "--json")
    assert code == 0 and "nothing to roll back" in json.loads(out)["msg"]


def test_the_next_bench_puts_back_what_a_killed_bench_left_in_tracefs(tree):
    from kvmtune.bench.undo import Undo
    from kvmtune.host.writable import WritableHost

    before = _files(tree)
    _kill_in_window(tree)
    undo = Undo(WritableHost(str(tree), live=False), True)
    undo.start()
    undo.release()
    assert _files(tree) == before
    assert "current_tracer 'osnoise' -> 'nop'" in undo.notes[0]
    assert not (tree / STATE).exists()


def test_each_files_text_is_on_disk_before_it_is_written_and_the_record_goes_after(tree):
    from kvmtune.bench.osnoise import measure_osnoise
    from kvmtune.bench.undo import Undo
    from kvmtune.host.writable import WritableHost

    host = WritableHost(str(tree), live=False)
    before = _files(tree)
    seen = []

    class Watched(WritableHost):
        def write(self, rel, value, *args, **kwargs):
            if rel.startswith(BASE):  # what a kill -9 now would leave for rollback
                entries = json.loads((tree / STATE).read_text())["bench"]["tracer"]
                journaled = {e["file"]: e["original"] for e in entries}
                seen.append(rel)
                if journaled.get(rel) != value + "\n":  # not a put-back: the text before must be on disk
                    assert journaled.get(rel) == (tree / rel).read_text(), rel
            return super().write(rel, value, *args, **kwargs)

    watched = Watched(str(tree), live=False)
    undo = Undo(watched, True)
    undo.start()
    try:
        figures, why, problems = measure_osnoise(watched, BASE, [1, 3], 1.0, lambda s: None, undo.tracer)
        assert why is None and problems == []
        assert "tracer" not in json.loads((tree / STATE).read_text())["bench"]  # all back: the record goes
        assert undo.close() == []
    finally:
        undo.release()
    assert seen == [f"{BASE}/{n}" for n in FILES + FILES[::-1]]  # three written, put back newest first
    assert _files(tree) == before and not (tree / STATE).exists()
    assert host.read(f"{BASE}/current_tracer") == "nop\n"


@pytest.mark.parametrize("file, original", [
    (f"{BASE}/current_tracer", "nop; rm -rf /\n"),
    (f"{BASE}/tracing_on", "2\n"),
    (f"{BASE}/osnoise/cpus", "0-3x\n"),
    ("etc/passwd", "root\n"),
])
def test_a_tampered_tracer_record_is_refused_with_exit_2(tree, run_cli, file, original):
    _kill_in_window(tree)
    data = json.loads((tree / STATE).read_text())
    data["bench"]["tracer"][-1] = {"file": file, "original": original}
    (tree / STATE).write_text(json.dumps(data))
    running = _files(tree)
    code, out, err = run_cli("--root", str(tree), "rollback")
    assert code == 2, err
    assert "bench.tracer" in err
    assert _files(tree) == running  # nothing written on a journal it cannot trust


def test_a_file_that_will_not_go_back_keeps_its_record_and_stops_rollback(tree):
    from kvmtune.errors import HostError
    from kvmtune.host.writable import WritableHost
    from kvmtune.tune.engine import rollback

    class Stuck(WritableHost):  # a kernel that ignores the write to current_tracer
        def write(self, rel, value, *args, **kwargs):
            if rel != f"{BASE}/current_tracer":
                return super().write(rel, value, *args, **kwargs)

    _kill_in_window(tree)
    journal = (tree / STATE).read_text()
    with pytest.raises(HostError, match="osnoise tracer could not be put back"):
        rollback(Stuck(str(tree), live=False))
    assert (tree / STATE).read_text() == journal  # rollback can be run again
