"""Golden ``check --json`` output for every fixture host, validated against the schema.

Regenerate after an intended change with KVMTUNE_UPDATE_GOLDEN=1 and read the diff.
"""

import json
import os
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import ALL_HOSTS

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = json.loads((Path(__file__).parent.parent / "kvmtune" / "schema" /
                     "check-report.schema.json").read_text())


def normalise(report: dict) -> dict:
    report["host"]["root"] = "<root>"
    return report


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_check_json_matches_golden_and_schema(name, host_roots, check_json):
    code, report = check_json(host_roots[name])
    jsonschema.validate(report, SCHEMA)
    assert code == (0 if report["ready"] else 1)
    report = normalise(report)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("KVMTUNE_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    assert report == expected


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_snapshot_never_runs_live_probes(name, host_roots, check_json):
    _, report = check_json(host_roots[name])
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["kvm.functional"]["status"] == "skip"
    assert checks["kvm.functional"]["detail"] == "not available in a snapshot"
    assert report["host"]["live"] is False
