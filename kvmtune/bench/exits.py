"""The exits section: the round trip of a VM exit handled in the kernel, a cpuid, and one to user space."""

from __future__ import annotations

import statistics

from kvmtune.bench.stats import cv


def measure_exits(settings, result: dict, vm, progress) -> None:
    counts = settings.exit_counts
    samples: dict[str, list[float]] = {"kernel_pio": [], "cpuid": [], "user_pio": []}
    for round_ in range(settings.rounds):
        progress("VM exits", round_, settings.rounds)
        if vm.kernel_irqchip:
            samples["kernel_pio"].append(vm.call("kernel_pio", counts["kernel_pio"]) / counts["kernel_pio"])
        samples["cpuid"].append(vm.call("cpuid", counts["cpuid"]) / counts["cpuid"])
        samples["user_pio"].append(vm.user_exits(counts["user_pio"]))
    exits = {}
    for name, values in samples.items():
        exits[f"{name}_us"] = round(statistics.median(values) * 1e6, 3) if values else None
        exits[f"{name}_cv"] = cv(values) if values else None
    if not vm.kernel_irqchip:
        result["warnings"].append("KVM offers no in-kernel interrupt controller here: no kernel-handled "
                                  "port exit to time")
    result["exits"] = exits
