"""The collection passes Ansible's own quality gate, `ansible-test sanity`, every test."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COLLECTION = REPO / "collections" / "ansible_collections" / "kvmtune" / "host"
ANSIBLE_TEST = shutil.which("ansible-test", path=str(Path(sys.executable).parent)) or shutil.which("ansible-test")
pytestmark = pytest.mark.skipif(ANSIBLE_TEST is None, reason="ansible-core is not installed")


def _pip_version() -> str | None:
    """The pip that ansible-test bootstraps its venvs with, named in its own source."""
    import ansible_test

    source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    found = re.search(r"\bpip='([0-9.]+)'", source.read_text())
    return found.group(1) if found else None


def test_the_collection_passes_every_ansible_test_sanity_test(tmp_path, tmp_path_factory, request):
    version = _pip_version()
    if version is None:
        pytest.skip("cannot tell which pip this ansible-test bootstraps")
    # ansible-test keeps its venvs under ~; a home in pytest's cache lets later runs reuse them
    cache_plugin = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    home = Path(cache_plugin.mkdir("ansible-test-home") if cache_plugin
                else tmp_path_factory.mktemp("ansible-test-home"))
    cache = home / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    standin = cache / f"get_pip_{version.replace('.', '_')}.py"
    if not standin.exists():
        shutil.copy(REPO / "tests" / "support" / "get_pip_standin.py", standin)

    work = tmp_path / "ansible_collections" / "kvmtune" / "host"
    shutil.copytree(COLLECTION, work, ignore=shutil.ignore_patterns("output", "__pycache__", "*.tar.gz"))
    env = dict(os.environ, HOME=str(home), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([ANSIBLE_TEST, "sanity", "--local", "--python",
                           f"{sys.version_info.major}.{sys.version_info.minor}", "--color", "no"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    out = proc.stdout + proc.stderr
    if proc.returncode and "No matching distribution found" in out:
        pytest.skip("ansible-test could not install its sanity requirements: no package index reachable")
    errors = [line for line in out.splitlines() if line.startswith(("ERROR:", "FATAL:"))]
    assert proc.returncode == 0, "\n".join(errors) or out[-3000:]
    ran = re.findall(r'Running sanity test "([a-z0-9-]+)"', out)
    assert {"validate-modules", "pylint", "yamllint", "ansible-doc", "import"} <= set(ran), ran
