"""Readers of the read phase for memory under pressure: vm sysctls and zswap, free blocks by
size, the KSM policy's last decision. Same contract as kvmtune.checks.read, which takes these in."""

from __future__ import annotations


def _vm(host, got):
    from kvmtune.probe.vmem import read_vm
    return read_vm(host)


def _fragmentation(host, got):
    from kvmtune.probe.buddy import read_fragmentation
    return read_fragmentation(host, types="pagetypeinfo" in got.wanted)


def _ksm_policy(host, got):
    """The KSM policy's last decision, from the journal's validated view (None: no policy ran);
    read only where the kernel has KSM."""
    if got.ksm is None or not got.ksm.available:
        return None
    from kvmtune.tune.journal import read_ksm_policy
    decision, problem = read_ksm_policy(host)
    if problem:
        raise ValueError(problem)
    return decision


MEMORY_READERS = {
    "vm": (_vm, ()),
    "fragmentation": (_fragmentation, ()),
    "pagetypeinfo": (lambda host, got: None, ("fragmentation",)),  # a wish read by _fragmentation
    "ksm_policy": (_ksm_policy, ("ksm",)),
}
