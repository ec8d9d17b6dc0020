# -*- coding: utf-8 -*-
# Copyright: kvmtune developers
# SPDX-License-Identifier: Apache-2.0
"""Shared by the kvmtune modules: import the library on the managed host, or say how to get it."""

from __future__ import annotations

import sys


def require_kvmtune(module):
    """Import kvmtune or fail the task with the install hint for this interpreter."""
    try:
        import kvmtune  # noqa: F401
    except ImportError as exc:
        module.fail_json(
            msg=(f"the kvmtune Python package is not installed for {sys.executable} on this host "
                 f"({exc}); install it first, e.g. with a task "
                 "'ansible.builtin.pip: name=kvmtune' (or the path of a kvmtune checkout), "
                 "or point ansible_python_interpreter at a Python that has it"))
    return kvmtune


# kvmtune's exit codes, as the task says them (README "Exit codes").
KINDS = {2: "invalid input", 3: "internal error", 4: "not permitted", 5: "busy"}
ADVICE = {4: " (a task that changes the host needs 'become: true')",
          5: " (set 'wait: true' to queue behind the other run; after an interrupted run, "
             "'state: absent' rolls back and 'resume: true' carries on)"}


def run_guarded(module, fn, *args):
    """Call the library: its own errors (bad profile, not root, lock held, bad root) fail the
    task cleanly, saying which kind of error it is and what to do."""
    from kvmtune.errors import KvmtuneError

    try:
        return fn(*args)
    except KvmtuneError as exc:
        code = exc.exit_code
        module.fail_json(msg=f"{KINDS.get(code, 'error')}: {exc}{ADVICE.get(code, '')}", changed=False,
                         rc=code)
