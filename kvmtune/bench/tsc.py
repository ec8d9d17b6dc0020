"""The time-stamp counter's rate, calibrated against CLOCK_MONOTONIC, to give exits in cycles.

kvm-unit-tests' ``vmexit`` reports exits in TSC cycles; bench times them with the
monotonic clock. To compare, bench reads the TSC (``rdtsc``, machine code through
ctypes as in bench.native) and CLOCK_MONOTONIC together at the start and the end of the
exits section: rate = TSC ticks / nanoseconds between the two readings. Each reading
brackets the clock read with two TSC reads and keeps the tightest of a few tries; the
brackets over the ticks between are the calibration's uncertainty. The kernel's own
figure (``tsc: Detected ... MHz`` in its log) is not read: it may be refined later, or
absent.
"""

from __future__ import annotations

import ctypes
import time

from kvmtune.bench.hostmem import Executable

# uint64 rdtsc(void): rdtsc; shl rdx, 32; or rax, rdx; ret
RDTSC = bytes.fromhex("0f 31 48 c1 e2 20 48 09 d0 c3")
TRIES = 7


class Tsc:
    def __init__(self):
        self._read = Executable(RDTSC, ctypes.c_uint64)

    def reading(self) -> tuple[int, int, int]:
        """(CLOCK_MONOTONIC ns, the TSC at that moment, the TSC ticks the pairing spans)."""
        best = None
        for _ in range(TRIES):
            before = self._read.call()
            ns = time.monotonic_ns()
            after = self._read.call()
            if best is None or after - before < best[2]:
                best = (ns, (before + after) // 2, after - before)
        return best

    def close(self) -> None:
        self._read.free()


def calibrate(start: tuple[int, int, int], end: tuple[int, int, int]) -> dict | None:
    """The TSC rate in MHz between two readings, and how it was found; None if the TSC did not
    move forward (a TSC that stops or jumps cannot count cycles)."""
    ns, ticks = end[0] - start[0], end[1] - start[1]
    if ns <= 0 or ticks <= 0:
        return None
    ppm = (start[2] + end[2]) / ticks * 1e6
    return {"tsc_mhz": round(ticks / ns * 1e3, 3),
            "tsc_calibration": f"rdtsc against CLOCK_MONOTONIC over {ns / 1e9:.2f} s, +-{max(ppm, 1):.0f} ppm"}
