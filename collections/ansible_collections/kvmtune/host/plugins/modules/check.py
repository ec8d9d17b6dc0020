#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmtune developers
# SPDX-License-Identifier: Apache-2.0
# Licensed under the Apache License, Version 2.0 (see LICENSE in the collection root).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: check
short_description: Judge whether a host is ready to run KVM guests
version_added: "0.1.0"
description:
  - Runs kvmtune's readiness check on the managed host and returns the same facts and checks
    as C(kvmtune check --json), so that C(when) and C(assert) can use them.
  - Where C(/dev/kvm) exists it creates a VM through the KVM ioctls and runs guest code, so the
    verdict does not rest on CPU flags alone.
  - Reads only; never changes the host.
author:
  - kvmtune developers (@kvmtune)
requirements:
  - the kvmtune Python package on the managed host, for the Python that runs the module
options:
  root:
    description:
      - Read the host tree under this directory instead of C(/) (a snapshot; live-only
        checks are skipped).
    type: str
    default: /
  strict:
    description:
      - A C(warn) or C(unknown) also makes the host not ready.
    type: bool
    default: false
  only:
    description:
      - Run only these check ids or areas (for example C(kvm), C(memory.hugepages)).
      - Leaving out C(kvm.device) (on a live host, or C(kvm.functional)) leaves readiness not judged,
        so the host is not ready.
    type: list
    elements: str
    default: []
  skip:
    description:
      - Skip these check ids or areas.
    type: list
    elements: str
    default: []
  intents:
    description:
      - Also judge readiness for these workloads (C(passthrough), C(sriov)), as C(kvmtune check --for)
        does; C(general) always holds. An unknown intent fails the task.
    type: list
    elements: str
    default: []
  as_user:
    description:
      - Also check that this user (for example C(libvirt-qemu)) can open C(/dev/kvm), and its memlock limit.
    type: str
  fail_when_not_ready:
    description:
      - Fail the task when the host is not ready. Set to C(false) to decide in the play.
    type: bool
    default: true
notes:
  - Supports check mode; the module never changes the host.
"""

EXAMPLES = r"""
- name: Stop here unless the host can run KVM guests
  kvmtune.host.check:

- name: Check, and decide in the play
  kvmtune.host.check:
    strict: true
    skip: [iommu]
    as_user: libvirt-qemu
    fail_when_not_ready: false

- name: Stop here unless the host can pass PCI devices to guests
  kvmtune.host.check:
    intents: [passthrough]
  register: kvm

- name: Require two NUMA nodes and KVM that really runs guests
  ansible.builtin.assert:
    that:
      - kvm.ready
      - kvm.host.numa.nodes | length >= 2
      - (kvm.checks | selectattr('id', 'equalto', 'kvm.functional') | first).status == 'pass'
"""

RETURN = r"""
ready:
  description: Whether the host is ready (no C(fail); with I(strict), no C(warn) or C(unknown)).
  returned: success
  type: bool
  sample: true
judged:
  description: False when I(only) or I(skip) left out the checks that decide readiness (then I(ready) is false).
  returned: success
  type: bool
  sample: true
checks:
  description: One entry per check, as in C(kvmtune check --json).
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Stable check id, for example C(kvm.functional).
      type: str
    status:
      description: pass, warn, fail, info, skip or unknown.
      type: str
    title:
      description: What the check is about.
      type: str
    detail:
      description: One line saying what was found.
      type: str
    hint:
      description: How to fix it, and whether a reboot is needed.
      type: str
    data:
      description: The evidence.
      type: dict
host:
  description: The facts the checks were judged on (cpu, numa, memory, ksm, kvm).
  returned: success
  type: dict
summary:
  description: Number of checks per status.
  returned: success
  type: dict
  sample: {"pass": 9, "warn": 2, "fail": 0, "info": 6, "skip": 0, "unknown": 0}
intents:
  description: What the host was judged for, C(general) first.
  returned: success
  type: list
  elements: str
  sample: ["general", "passthrough"]
ready_for:
  description: Those of the intents the host is ready for.
  returned: success
  type: list
  elements: str
  sample: ["general"]
schema_version:
  description: Version of the result's layout.
  returned: success
  type: int
  sample: 1
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kvmtune.host.plugins.module_utils.kvmtune_lib import require_kvmtune, run_guarded


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="str", default="/"),
            strict=dict(type="bool", default=False),
            only=dict(type="list", elements="str", default=[]),
            skip=dict(type="list", elements="str", default=[]),
            intents=dict(type="list", elements="str", default=[]),
            as_user=dict(type="str"),
            fail_when_not_ready=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    require_kvmtune(module)
    from kvmtune.commands.check import CheckOptions, check_report

    p = module.params
    # intents only when asked for: a managed host whose kvmtune predates them still runs plain checks
    extra = {"intents": p["intents"]} if p["intents"] else {}
    try:
        opts = CheckOptions(root=p["root"], strict=p["strict"], only=p["only"], skip=p["skip"],
                            as_user=p["as_user"], **extra)
    except TypeError:
        module.fail_json(msg="invalid input: intents needs a newer kvmtune on the managed host", rc=2)
    report = run_guarded(module, check_report, opts)
    from kvmtune.render.json_out import report_json

    out = report_json(report)
    blocking = [f"{c['id']} {c['status']}" for c in out["checks"]
                if c["id"] != "ready" and c["status"] in (("fail", "warn", "unknown") if p["strict"] else ("fail",))]
    verdict = next((c for c in out["checks"] if c["id"] == "ready"), None)
    if not report.ready:
        msg = verdict["detail"] if verdict else f"not ready: {', '.join(blocking)}"
        if p["fail_when_not_ready"]:
            module.fail_json(msg=msg, changed=False, **out)
        module.exit_json(msg=msg, changed=False, **out)
    module.exit_json(msg="ready", changed=False, **out)


if __name__ == "__main__":
    main()
