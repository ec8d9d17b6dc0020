"""verify's targets and owners, its metrics, and watch (--once, --reapply, --install) on trees."""

import json
import os

import pytest

from tests.fixtures.synthetic import host as synthetic_host, write_tree


def test_a_profile_keeps_its_own_name_whatever_its_sysctls():
    """The journal's profiles (verify's and watch's default) are the names profiles load as."""
    from kvmtune.profile import load_profile, load_profile_text

    assert load_profile("dense").name == "dense"
    assert load_profile("latency").name == "latency"
    assert load_profile_text("sysctl: {vm.swappiness: 10}\n").name != "vm.swappiness"
