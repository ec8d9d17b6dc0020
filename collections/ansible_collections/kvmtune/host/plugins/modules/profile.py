#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmtune developers
# SPDX-License-Identifier: Apache-2.0
# Licensed under the Apache License, Version 2.0 (see LICENSE in the collection root).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: profile
short_description: Tune a KVM host with a kvmtune profile (sysctl, huge pages, hugetlbfs, KSM, THP)
version_added: "0.1.0"
description:
  - Makes the managed host match a kvmtune profile, now and after reboot, writing only what
    differs and reading every value back from the kernel.
  - Check mode plans and writes nothing, and predicts C(changed) exactly.
  - With C(--diff), returns the before and after of every value and persisted file.
  - C(state=absent) rolls back everything kvmtune changed on the host.
author:
  - kvmtune developers (@kvmtune)
requirements:
  - the kvmtune Python package on the managed host, for the Python that runs the module
options:
  name:
    description:
      - A shipped profile name (C(kvm-host), C(dense), C(latency)) or the path of a profile
        file on the managed host.
      - Mutually exclusive with I(profile).
    type: str
  profile:
    description:
      - The profile inline, as a mapping with the sections of a profile file
        (C(extends), C(sysctl), C(hugepages), C(hugetlbfs), C(ksm), C(thp)).
      - Mutually exclusive with I(name).
    type: dict
  state:
    description:
      - C(present) applies the profile; C(absent) restores what was there before kvmtune.
    type: str
    choices: [present, absent]
    default: present
  root:
    description:
      - Apply to the host tree under this directory instead of C(/) (a snapshot).
    type: str
    default: /
  persist:
    description:
      - Also write the boot-time files (sysctl.d, tmpfiles.d, fstab, GRUB drop-in).
    type: bool
    default: true
  force:
    description:
      - Allow huge pages to eat into the safe memory reserve (10% or 2 GiB).
    type: bool
    default: false
  keep_partial:
    description:
      - If a change fails, keep the changes made before it instead of undoing them.
    type: bool
    default: false
  wait:
    description:
      - Wait for another kvmtune apply or rollback on the host instead of failing.
    type: bool
    default: false
  resume:
    description:
      - Carry on after an interrupted apply (a killed run leaves its journal marked as such;
        without this, or I(state=absent) to roll back, the task fails saying so).
    type: bool
    default: false
notes:
  - Supports check mode and diff mode.
"""

EXAMPLES = r"""
- name: Tune the hypervisor with a shipped profile
  kvmtune.host.profile:
    name: dense
  register: tuning

- name: Reboot when boot-time settings changed
  ansible.builtin.reboot:
  when: tuning.reboot_required

- name: An inline profile built on a shipped one
  kvmtune.host.profile:
    profile:
      extends: kvm-host
      sysctl:
        vm.swappiness: 5
      hugepages:
        1G: {per_node: {0: 8, 1: 8}, boot: true}

- name: Put the host back as it was before kvmtune
  kvmtune.host.profile:
    state: absent
"""

RETURN = r"""
changed:
  description: Whether anything was changed (in check mode, whether anything would be).
  returned: always
  type: bool
msg:
  description: One line on what happened.
  returned: always
  type: str
changes:
  description: Every setting of the profile with its before, after and status.
  returned: success
  type: list
  elements: dict
  contains:
    target:
      description: What the setting is, for example C(sysctl vm.swappiness) or C(/etc/fstab).
      type: str
    before:
      description: The value before.
      type: str
    after:
      description: The wanted value.
      type: str
    status:
      description: ok, pending, changed, failed, blocked, pending-reboot, pending-restart or undone.
      type: str
    detail:
      description: Why, when it is not plain.
      type: str
    when:
      description: When it takes effect (now, restart, reboot).
      type: str
reboot_required:
  description: Whether a setting takes effect only after a reboot.
  returned: success
  type: bool
restart_required:
  description: Services to restart to see a change (for example libvirtd after a new mount).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kvmtune.host.plugins.module_utils.kvmtune_lib import require_kvmtune, run_guarded


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str"),
            profile=dict(type="dict"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            root=dict(type="str", default="/"),
            persist=dict(type="bool", default=True),
            force=dict(type="bool", default=False),
            keep_partial=dict(type="bool", default=False),
            wait=dict(type="bool", default=False),
            resume=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("name", "profile")],
        required_if=[("state", "present", ("name", "profile"), True)],
        supports_check_mode=True,
    )
    require_kvmtune(module)
    from kvmtune.commands.apply import ApplyOptions, apply_result, rollback_result

    p = module.params
    opts = ApplyOptions(profile=p["name"], root=p["root"], check=module.check_mode, persist=p["persist"],
                        force=p["force"], keep_partial=p["keep_partial"], wait=p["wait"], resume=p["resume"])
    if p["profile"] is not None:
        import yaml

        opts.profile_text = yaml.safe_dump(p["profile"], sort_keys=False)
    out, _rc = run_guarded(module, rollback_result if p["state"] == "absent" else apply_result, opts)
    for warning in out.pop("warnings"):
        module.warn(warning)
    diff = out.pop("diff")
    if module._diff:
        out["diff"] = dict(before=diff["before"], after=diff["after"],
                           before_header="host", after_header=p["name"] or "profile")
    if out.pop("failed"):
        module.fail_json(**out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
