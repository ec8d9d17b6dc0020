"""The exits section: the round trip of a VM exit handled in the kernel, a cpuid, a port write and an
MMIO write out to user space, each also in TSC cycles; and what starting a VM costs."""

from __future__ import annotations

import statistics

from kvmtune.bench.stats import cv
from kvmtune.bench.tsc import Tsc, calibrate

KINDS = ("kernel_pio", "cpuid", "user_pio", "mmio")
VM_STARTS = 20  # fresh VMs timed; the median is reported


def measure_exits(settings, result: dict, vm, progress) -> None:
    counts = settings.exit_counts
    tsc = Tsc()
    try:
        first = tsc.reading()
        samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for round_ in range(settings.exit_rounds):
            progress("VM exits", round_, settings.exit_rounds)
            if vm.kernel_irqchip:
                samples["kernel_pio"].append(vm.call("kernel_pio", counts["kernel_pio"]) / counts["kernel_pio"])
            samples["cpuid"].append(vm.call("cpuid", counts["cpuid"]) / counts["cpuid"])
            samples["user_pio"].append(vm.user_exits(counts["user_pio"]))
            samples["mmio"].append(vm.mmio_exits(counts["mmio"]))
        starts = []
        for i in range(VM_STARTS):
            progress("starting fresh VMs", i, VM_STARTS)
            starts.append(vm.start_fresh())
        clock = calibrate(first, tsc.reading())
    finally:
        tsc.close()
    exits = {}
    for name, values in samples.items():
        exits[f"{name}_us"] = round(statistics.median(values) * 1e6, 3) if values else None
        exits[f"{name}_cv"] = cv(values) if values else None
    for i, name in enumerate(("vm_create_ms", "vcpu_create_ms", "first_run_ms")):
        exits[name] = round(statistics.median(s[i] for s in starts) * 1e3, 3)
    exits["tsc_mhz"] = clock["tsc_mhz"] if clock else None
    exits["tsc_calibration"] = clock["tsc_calibration"] if clock else "the TSC did not advance: no cycles"
    exits["cycles"] = {kind: round(exits[f"{kind}_us"] * clock["tsc_mhz"])
                       if clock and exits[f"{kind}_us"] is not None else None for kind in KINDS}
    if not vm.kernel_irqchip:
        result["warnings"].append("KVM offers no in-kernel interrupt controller here: no kernel-handled "
                                  "port exit to time")
    result["exits"] = exits
