"""The collection and the playbooks, run by the real ansible-playbook against localhost."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import build_root
from tests.test_apply import tree
from tests.test_live_apply import _can_run, snapshot, force_restore

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which("ansible-playbook")
pytestmark = pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason="ansible-core is not installed")


def playbook(tmp_path, tasks: str, name: str = "play.yml") -> Path:
    """A playbook beside a collections/ link to the repository's collection."""
    play_dir = tmp_path / "play"
    play_dir.mkdir(exist_ok=True)
    if not (play_dir / "collections").exists():
        (play_dir / "collections").symlink_to(REPO / "collections")
    path = play_dir / name
    path.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n" + tasks)
    return path


def run(path, *args, interpreter=sys.executable, extra_env=None):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", PYTHONPATH="", **(extra_env or {}))
    cmd = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local",
           "-e", f"ansible_python_interpreter={interpreter}", str(path), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def recap(proc) -> dict:
    line = next(l for l in proc.stdout.splitlines() if l.startswith("localhost") and "ok=" in l)
    return {k: int(v) for k, v in (p.split("=") for p in line.split()[2:])}


def dump(var: str, dest: Path) -> str:
    return (f"    - ansible.builtin.copy:\n        content: \"{{{{ {var} | to_json }}}}\"\n"
            f"        dest: {dest}\n      check_mode: false\n      changed_when: false\n")


@pytest.fixture
def root(tmp_path):
    return str(build_root("synthetic-intel-vtx", tmp_path))


def test_profile_module_changed_then_ok_and_check_mode_writes_nothing(tmp_path, root):
    out = tmp_path / "result.json"
    path = playbook(tmp_path, f"""    - kvmtune.host.profile:
        name: dense
        root: {root}
      register: tuned
""" + dump("tuned", out))
    before = tree(root)
    checked = run(path, "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    predicted = json.loads(out.read_text())
    assert predicted["changed"] is True and recap(checked)["changed"] == 1
    assert tree(root) == before  # check mode wrote nothing
    first = run(path)
    assert first.returncode == 0 and recap(first)["changed"] == 1, first.stdout
    applied = json.loads(out.read_text())
    assert applied["changed"] is True and applied["reboot_required"] is False
    assert {c["target"] for c in applied["changes"] if c["status"] == "changed"} == \
        {c["target"] for c in predicted["changes"] if c["status"] == "pending"}  # the prediction was exact
    second = run(path)
    assert second.returncode == 0 and recap(second)["changed"] == 0, second.stdout
    assert run(path, "--check").returncode == 0 and json.loads(out.read_text())["changed"] is False


def test_diff_shows_values(tmp_path, root):
    path = playbook(tmp_path, f"""    - kvmtune.host.profile:
        profile:
          sysctl: {{vm.swappiness: 10}}
          ksm: {{run: 1}}
        root: {root}
""")
    proc = run(path, "--check", "--diff")
    assert proc.returncode == 0, proc.stdout
    assert "-sysctl vm.swappiness = 60" in proc.stdout and "+sysctl vm.swappiness = 10" in proc.stdout
    assert "+w /sys/kernel/mm/ksm/run - - - - 1" in proc.stdout


def test_bad_profile_fails_with_the_validation_message(tmp_path, root):
    path = playbook(tmp_path, f"""    - kvmtune.host.profile:
        profile:
          ksm: {{pages_to_scann: 10}}
        root: {root}
""")
    before = tree(root)
    proc = run(path)
    assert proc.returncode == 2 and recap(proc)["failed"] == 1
    assert "ksm.pages_to_scann: unknown key 'pages_to_scann'; did you mean 'pages_to_scan'?" in proc.stdout
    assert tree(root) == before


def test_state_absent_rolls_back(tmp_path, root):
    before = tree(root)
    path = playbook(tmp_path, f"""    - kvmtune.host.profile: {{name: latency, root: {root}, force: true}}
    - kvmtune.host.profile: {{state: absent, root: {root}}}
""")
    proc = run(path)
    assert proc.returncode == 0 and recap(proc)["changed"] == 2, proc.stdout
    assert tree(root) == before


def test_check_module_returns_the_facts_for_assert(tmp_path, root):
    path = playbook(tmp_path, f"""    - kvmtune.host.check: {{root: {root}, skip: [iommu]}}
      register: kvm
    - ansible.builtin.assert:
        that:
          - kvm.ready
          - kvm.host.numa.nodes | length == 2
          - (kvm.checks | selectattr('id', 'equalto', 'cpu.virt') | first).status == 'pass'
          - kvm.checks | selectattr('id', 'equalto', 'iommu') | list | length == 0
""")
    proc = run(path, "--check")
    assert proc.returncode == 0, proc.stdout


def test_check_module_fails_a_host_that_is_not_ready(tmp_path):
    bad = str(build_root("synthetic-no-dev-kvm", tmp_path))
    path = playbook(tmp_path, f"    - kvmtune.host.check: {{root: {bad}}}\n")
    proc = run(path)
    assert proc.returncode == 2 and recap(proc)["failed"] == 1
    assert "not ready: kvm.device fail" in proc.stdout


def test_preflight_playbook_as_written(tmp_path, root):
    proc = run(EXAMPLES / "preflight.yml", "-e", f"kvmtune_root={root}", "-e", "kvmtune_profile=dense",
               "-i", str(EXAMPLES / "inventory.ini"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "localhost: ready (" in proc.stdout and "profile dense applied" in proc.stdout


def test_preflight_stops_a_host_that_is_not_ready(tmp_path):
    bad = str(build_root("synthetic-no-dev-kvm", tmp_path))
    before = tree(bad)
    proc = run(EXAMPLES / "preflight.yml", "-e", f"kvmtune_root={bad}", "-i", str(EXAMPLES / "inventory.ini"))
    assert proc.returncode != 0
    assert "localhost is not ready for KVM guests: kvm.device" in proc.stdout
    assert tree(bad) == before  # stopped before any tuning


def test_missing_kvmtune_on_the_target_says_how_to_install(tmp_path, root):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    path = playbook(tmp_path, f"    - kvmtune.host.check: {{root: {root}}}\n")
    proc = run(path, interpreter=str(bare / "bin" / "python"))
    assert proc.returncode == 2
    assert "the kvmtune Python package is not installed" in proc.stdout
    assert "ansible.builtin.pip: name=kvmtune" in proc.stdout


def test_plain_command_way(tmp_path, root):
    kvmtune = str(Path(sys.executable).with_name("kvmtune"))
    args = ["-i", str(EXAMPLES / "inventory.ini"), "-e", f"kvmtune={kvmtune}", "-e", f"kvmtune_root={root}",
            "-e", "kvmtune_profile=dense"]
    before = tree(root)
    checked = run(EXAMPLES / "plain-command.yml", "--check", *args)
    assert checked.returncode == 0 and recap(checked)["changed"] == 1, checked.stdout
    assert tree(root) == before
    first = run(EXAMPLES / "plain-command.yml", *args)
    assert recap(first)["changed"] == 1
    second = run(EXAMPLES / "plain-command.yml", *args)
    assert second.returncode == 0 and recap(second)["changed"] == 0


@pytest.mark.parametrize("module", ["kvmtune.host.check", "kvmtune.host.profile"])
def test_ansible_doc(module):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"))
    doc = shutil.which("ansible-doc", path=str(Path(ANSIBLE_PLAYBOOK).parent))
    proc = subprocess.run([doc, "--json", "-t", "module", module], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)[module]
    assert data["doc"]["short_description"] and data["examples"] and data["return"]
    assert "root" in data["doc"]["options"]
    assert own_complaints(proc.stderr) == []


def own_complaints(stderr: str) -> list[str]:
    """The stderr lines that speak of kvmtune or of ansible's view of its modules.

    A library's Python warning raised from its own file (cryptography deprecating DSA inside
    ansible's ssh agent) is not a fault of this collection; the same warning raised from our
    files, or any line ansible prints itself ([WARNING], [ERROR], [DEPRECATION WARNING]), is.
    """
    lines, kept, skip_source = stderr.splitlines(), [], False
    for line in lines:
        if skip_source and line.startswith("  "):
            skip_source = False
            continue
        skip_source = False
        match = re.match(r"^(/\S+?):\d+: \w*Warning: ", line)
        if match and not _is_ours(match.group(1)):
            skip_source = True
            continue
        if line.strip():
            kept.append(line)
    return kept


def _is_ours(path: str) -> bool:
    """The collection's files or the kvmtune package, wherever it is installed."""
    return path.startswith(str(REPO / "collections")) or "/kvmtune/" in path.replace(str(REPO), "", 1) \
        or path.startswith(str(REPO / "kvmtune"))


def test_own_complaints_keeps_what_is_ours():
    lib = "/usr/lib/python3/dist-packages/ansible/x.py:18: CryptographyDeprecationWarning: DSA is deprecated\n  from x import (\n"
    assert own_complaints(lib) == []
    venv = f"{REPO}/.venv/lib/python3.11/site-packages/ansible/_internal/_ssh/_ssh_agent.py:18: CryptographyDeprecationWarning: DSA\n  from c import (\n"
    assert own_complaints(venv) == []
    installed = "/x/.venv/lib/python3.11/site-packages/kvmtune/host.py:9: DeprecationWarning: old\n  import y\n"
    assert len(own_complaints(installed)) == 2
    ours = f"{REPO}/collections/plugins/modules/check.py:3: DeprecationWarning: old\n  import imp\n"
    assert len(own_complaints(ours)) == 2
    assert own_complaints("[WARNING]: kvmtune.host.check: invalid YAML in DOCUMENTATION\n") != []


def test_collection_builds(tmp_path):
    galaxy = shutil.which("ansible-galaxy", path=str(Path(ANSIBLE_PLAYBOOK).parent))
    proc = subprocess.run([galaxy, "collection", "build", str(REPO / "collections/ansible_collections/kvmtune/host"),
                           "--output-path", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "kvmtune-host-0.1.0.tar.gz").exists()


@pytest.mark.live
@pytest.mark.skipif(_can_run() is not None, reason=_can_run() or "")
def test_live_kernel_apply_and_rollback(tmp_path):
    mount_dir = str(tmp_path / "h")
    saved = snapshot(mount_dir)
    out = tmp_path / "r.json"
    try:
        path = playbook(tmp_path, """    - kvmtune.host.profile:
        profile:
          hugepages: {2M: 3}
          ksm: {run: 1, sleep_millisecs: 40}
      register: tuned
""" + dump("tuned", out) + """    - kvmtune.host.profile:
        profile:
          hugepages: {2M: 3}
          ksm: {run: 1, sleep_millisecs: 40}
      register: again
    - ansible.builtin.assert: {that: [not again.changed]}
    - kvmtune.host.profile: {state: absent}
""")
        proc = run(path)
        assert proc.returncode == 0, proc.stdout
        assert json.loads(out.read_text())["changed"] is True
        assert recap(proc)["changed"] == 2
    finally:
        if snapshot(mount_dir) != saved:
            force_restore(saved, mount_dir)
    assert snapshot(mount_dir) == saved


def readme_commands(prefix: str) -> list[str]:
    """The command lines of the README's shell blocks that start with ``prefix``, comments cut."""
    lines, inside = [], False
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```sh"
        elif inside and line.startswith(prefix):
            lines.append(line.split("  #", 1)[0].strip())
    return lines


@pytest.mark.live
@pytest.mark.skipif(_can_run() is not None, reason=_can_run() or "")
def test_the_readme_ansible_commands_run_as_printed(tmp_path):
    """Every ansible-playbook line the README shows, exactly as printed, from the checkout, on
    this machine: check mode passes and changes nothing, a real run tunes, a second run
    changes nothing, the fleet report names this host. The tuning is rolled back after."""
    commands = readme_commands("ansible-playbook ")
    assert len(commands) >= 3, commands
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", PYTHONPATH="",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    kvmtune = [sys.executable, "-m", "kvmtune"]
    before = snapshot(str(tmp_path / "none"))
    results_existed = os.path.exists("/tmp/kvm-results")  # fleet-report.yml's default
    outputs = {}
    try:
        for command in commands:
            for attempt in ("first", "second") if "--check" not in command else ("first",):
                proc = subprocess.run(command, shell=True, cwd=REPO, env=env, capture_output=True, text=True,
                                      timeout=600)
                assert proc.returncode == 0, (command, proc.stdout[-3000:], proc.stderr[-2000:])
                outputs[(command, attempt)] = proc.stdout
                if "--check" in command:
                    assert snapshot(str(tmp_path / "none")) == before, "check mode changed the host"
                    assert "would be applied" in proc.stdout or "already in place" in proc.stdout
        preflight = next(c for c in commands if "preflight" in c and "--check" not in c)
        assert recap(subprocess.CompletedProcess([], 0, outputs[(preflight, "second")], ""))["changed"] == 0
        report = next(out for (c, _), out in outputs.items() if "fleet-report" in c)
        assert "1 host: " in report
    finally:
        subprocess.run(kvmtune + ["rollback", "--json"], capture_output=True)
        if not results_existed:
            shutil.rmtree("/tmp/kvm-results", ignore_errors=True)
        if snapshot(str(tmp_path / "none")) != before:
            force_restore(before, str(tmp_path / "none"))
    assert snapshot(str(tmp_path / "none")) == before
