"""What a person sees at an 80-column terminal: every target, path, guest name and quoted command
an operator copies stays whole on one line (never cut with '…', never folded), and --diff is
coloured as git diff colours it, on a terminal only.

Run through a real pseudo-terminal of the given size, as a person would meet it."""

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from tests.fixtures.guests import guest, write_links
from tests.fixtures.synthetic import host, write_tree

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROFILE = """sysctl:
  vm.swappiness: 10
  vm.dirty_background_ratio: 5
  kernel.numa_balancing: 0
hugepages:
  2M: 64
thp: {enabled: never, defrag: defer}
ksm: {run: 1, pages_to_scan: 500}
"""


def in_pty(argv, cols=80):
    """(exit code, raw output) of kvmtune under a pseudo-terminal of ``cols`` columns."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(TERM="xterm-256color", PYTHONPATH=HERE)
    proc = subprocess.Popen([sys.executable, "-m", "kvmtune", *argv], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=HERE, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=60)
    return code, b"".join(chunks).decode()


def lines_of(raw: str) -> list[str]:
    return [ANSI.sub("", line) for line in raw.replace("\r\n", "\n").split("\n")]


def whole_words(text: str) -> list[str]:
    """What an operator copies out of prose: quoted commands and absolute paths."""
    quoted = re.findall(r"'([^']+)'", text)
    paths = [w.rstrip(".,;:)") for w in re.split(r"\s+", text) if w.startswith("/")]
    return quoted + [p for p in paths if len(p) > 1]


def assert_whole(tokens, raw):
    lines = lines_of(raw)
    assert "…" not in raw
    for token in tokens:
        assert any(token in line for line in lines), f"{token!r} is cut or folded:\n" + "\n".join(lines)


@pytest.fixture
def root(tmp_path):
    files = host()
    files.update({"proc/sys/vm/swappiness": "60\n", "proc/sys/vm/dirty_background_ratio": "10\n",
                  "proc/sys/kernel/numa_balancing": "1\n", "etc/fstab": "# fstab\n"})
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE)
    return write_tree(str(tmp_path / "host"), files), str(path)


def _json(*argv):
    proc = subprocess.run([sys.executable, "-m", "kvmtune", *argv, "--json"], capture_output=True, text=True,
                          cwd=HERE, env={**os.environ, "PYTHONPATH": HERE})
    return json.loads(proc.stdout)


def _targets(out):
    tokens = [c["target"] for c in out["changes"]]
    for text in [c["detail"] or "" for c in out["changes"]] + out["warnings"]:
        tokens += whole_words(text)
    return tokens


@pytest.mark.parametrize("cols", [80, 60])
def test_apply_plan_and_rollback_never_cut_a_target(root, cols):
    tree, profile = root
    plan = _json("--root", tree, "plan", profile)
    assert any(len(t) > 28 for t in _targets(plan))  # long enough that a table at 80 columns cut them
    code, raw = in_pty(["--root", tree, "plan", profile], cols)
    assert code == 0, raw
    assert_whole(_targets(plan), raw)
    code, raw = in_pty(["--root", tree, "apply", profile], cols)
    assert code == 0, raw
    assert_whole([c["target"] for c in plan["changes"]], raw)
    rollback = _json("--root", tree, "rollback", "--check")
    code, raw = in_pty(["--root", tree, "rollback"], cols)
    assert code == 0, raw
    assert_whole(_targets(rollback), raw)


def test_diff_is_coloured_as_git_colours_it_on_a_terminal_only(root):
    tree, profile = root
    _, raw = in_pty(["--root", tree, "plan", profile, "--diff"])
    assert "\x1b[31m-sysctl vm.swappiness = 60" in raw and "\x1b[32m+sysctl vm.swappiness = 10" in raw
    assert re.search(r"\x1b\[36m@@ [-+0-9, ]+ @@", raw)
    proc = subprocess.run([sys.executable, "-m", "kvmtune", "--root", tree, "plan", profile, "--diff"],
                          capture_output=True, text=True, cwd=HERE, env={**os.environ, "PYTHONPATH": HERE})
    assert "-sysctl vm.swappiness = 60" in proc.stdout and "\x1b[" not in proc.stdout


@pytest.mark.parametrize("cols", [80, 120])
def test_guests_keep_names_and_qemu_options_whole(tmp_path, cols):
    base = host(n_cpus=8, sockets=2, nodes=2)
    base["sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"] = "1024\n"
    base["sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"] = "1000\n"
    files, links = dict(base), {}
    for f, l in (guest(6000, "db-primary-with-a-long-name", 2048, backing="thp", small_kb=512 << 10),
                 guest(4242, "far", 1024, backing="thp", vcpus=((0, (0, 1, 2, 3)),), nodes_kb={1: 1024 << 10})):
        files.update(f)
        links.update(l)
    tree = str(tmp_path / "host")
    write_tree(tree, files)
    write_links(tree, links)
    report = _json("--root", tree, "guests")
    tokens = [f"{g['name']} ({g['pid']})" for g in report["guests"]]
    for f in report["findings"]:
        tokens += whole_words(f["detail"]) + whole_words(f["hint"] or "")
    assert any(t.startswith("-object memory-backend-file") for t in tokens)
    code, raw = in_pty(["--root", tree, "guests"], cols)
    assert code == 0, raw
    assert_whole(tokens, raw)


@pytest.mark.parametrize("cols", [80, 60])
@pytest.mark.parametrize("name", ["synthetic-no-dev-kvm", "intel-gold6230-80c-4n-snc"])
def test_check_keeps_paths_and_commands_whole(host_roots, name, cols):
    root = str(host_roots[name])
    report = _json("--root", root, "check")
    tokens = []
    for c in report["checks"]:
        tokens += whole_words(c["detail"]) + whole_words(c["hint"] or "")
    assert tokens
    code, raw = in_pty(["--root", root, "check"], cols)
    assert code in (0, 1), raw
    assert_whole(tokens, raw)
