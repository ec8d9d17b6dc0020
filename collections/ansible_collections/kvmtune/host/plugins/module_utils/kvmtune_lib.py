# -*- coding: utf-8 -*-
# Copyright: kvmtune developers
# Apache-2.0
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


def run_guarded(module, fn, *args):
    """Call the library: its own errors (bad profile, lock held, bad root) fail the task cleanly."""
    from kvmtune.errors import KvmtuneError

    try:
        return fn(*args)
    except KvmtuneError as exc:
        module.fail_json(msg=str(exc), changed=False)
