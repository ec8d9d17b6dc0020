"""What a --json command prints when it fails: exactly one object, the stderr message as msg."""

import json


def failure_object(code: int, out: str, err: str) -> dict:
    """The one object on stdout, checked against the exit code and the stderr message."""
    lines = out.splitlines()
    assert len(lines) == 1, out
    obj = json.loads(lines[0])
    assert obj == {"failed": True, "changed": False, "msg": obj["msg"], "rc": code}, obj
    assert obj["msg"] and obj["msg"] in err, (obj, err)
    return obj
