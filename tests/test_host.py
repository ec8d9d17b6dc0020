import os

import pytest

from kvmtune.errors import HostError, NotLive
from kvmtune.host.writable import WritableHost as Host


def test_paths_stay_inside_the_root(tmp_path):
    host = Host(str(tmp_path))
    for bad in ("/proc/meminfo", "../etc/passwd", "sys/../../x"):
        with pytest.raises(ValueError):
            host.path(bad)


def test_read_missing_and_optional(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("MemTotal: 1 kB\n")
    host = Host(str(tmp_path))
    assert host.read("proc/meminfo") == "MemTotal: 1 kB\n"
    assert host.read_optional("proc/nothing") is None
    with pytest.raises(HostError) as err:
        host.read("proc/nothing")
    assert "No such file" in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_an_error_not_absent(tmp_path):
    f = tmp_path / "secret"
    f.write_text("x")
    f.chmod(0)
    with pytest.raises(HostError):
        Host(str(tmp_path)).read_optional("secret")


def test_snapshot_refuses_live_operations(tmp_path):
    host = Host(str(tmp_path))
    assert not host.live
    with pytest.raises(NotLive, match="not available in a snapshot"):
        host.open_device("dev/kvm")
    with pytest.raises(NotLive):
        host.access("dev/kvm", os.R_OK)


def test_root_slash_is_live():
    assert Host("/").live
    assert not Host("/", live=False).live
