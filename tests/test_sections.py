"""The sections of a profile, each declared once by its subsystem: build_plan and
read_for_profile only loop over the declarations, and a half-declared section is refused."""

import pytest

from kvmtune.profile import load_profile_text
from kvmtune.tune import sections
from kvmtune.tune.planner import build_plan
from kvmtune.tune.sysctl import SysctlChange
from tests.test_planners import facts, targets


@pytest.fixture
def scratch(monkeypatch):
    """The declarations as they are, restored after the test whatever it declares."""
    sections.declared()  # every subsystem's own declaration first
    monkeypatch.setattr(sections, "SECTIONS", dict(sections.SECTIONS))


def plan(profile, facts, ctx):
    return [SysctlChange("fake.knob", "0", "1")]


def reads(host, profile, persist, out):
    pass


def test_a_planner_without_its_reads_is_refused(scratch):
    with pytest.raises(TypeError):
        sections.section("fake", order=15, plan=plan)  # the declaration leaves its reads out
    with pytest.raises(TypeError, match="not the facts it needs read"):
        sections.section("fake", order=15, plan=plan, reads=None)
    with pytest.raises(TypeError, match="no planner"):
        sections.section("fake", order=15, plan=None, reads=reads)
    assert "fake" not in sections.SECTIONS


def test_a_name_is_declared_once(scratch):
    with pytest.raises(TypeError, match="already declared"):
        sections.section("sysctl", order=10, plan=plan, reads=reads)


def test_a_section_declared_elsewhere_is_planned_in_its_order(scratch):
    sections.section("fake", order=15, plan=plan, reads=reads)  # between sysctls (10) and pools (20)
    profile = load_profile_text("sysctl:\n  vm.swappiness: 10\nhugepages:\n  2M: 512\n")
    got = build_plan(profile, facts(sysctl={"vm.swappiness": "60"}), persist=False)
    assert targets(got) == ["/run/kvmtune/runtime-sysctls", "sysctl vm.swappiness", "sysctl fake.knob",
                            "hugepages 2M"]


def test_every_subsystem_declares_its_section():
    names = [s.name for s in sections.declared()]
    assert names == ["sysctl", "pools", "mounts", "ksm", "thp", "cpus", "kthreads", "irqbalance", "sriov", "power",
                     "kvm_modules", "boot", "vfio", "iommu", "files", "conflicts"]
