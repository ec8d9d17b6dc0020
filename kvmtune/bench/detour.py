"""The oslat-style detour loop: a thread per CPU reads the TSC in a tight loop and keeps every gap.

A gap between two reads longer than the threshold is time the CPU was taken from the
thread (an interrupt, another task, the hypervisor): a detour. The loop is machine code
called through ctypes (as bench.native's walks are), which releases the GIL, so each
CPU's thread runs on its own and the interpreter is not what is timed. It allocates
nothing and writes only the detour buffer (allocated and touched before the window, so no
page fault lands in it) and, after the window, five figures. It stops at a TSC deadline it
reads from memory on every turn (an L1 hit): on Ctrl-C the deadline becomes 0 and every loop
ends at its next read, so an interrupted run need not wait out the window.
"""

from __future__ import annotations

import ctypes
import threading

from kvmtune.bench.hostmem import Executable

# uint64 detour(uint64 *buf, uint64 cap, uint64 threshold, uint64 *deadline, uint64 out[5]):
# the detours recorded; out = start TSC, last TSC, ticks in detours, detours, longest gap.
# Assembled from this listing with GNU as (intel syntax); objdump shows the same bytes.
DETOUR = bytes.fromhex(
    "53 41 54 41 55 41 56 41 57"  # push rbx, r12, r13, r14, r15 (callee-saved)
    "49 89 d1"      # mov r9, rdx          ; threshold
    "49 89 ca"      # mov r10, rcx         ; where the deadline is
    "4d 31 db"      # xor r11, r11         ; detours recorded
    "4d 31 e4"      # xor r12, r12         ; ticks in detours
    "4d 31 ed"      # xor r13, r13         ; detours seen
    "4d 31 f6"      # xor r14, r14         ; longest gap
    "0f 31 48 c1 e2 20 48 09 d0"  # rdtsc; shl rdx, 32; or rax, rdx
    "49 89 c7"      # mov r15, rax         ; the previous read
    "48 89 c1"      # mov rcx, rax         ; the start
    "0f 31 48 c1 e2 20 48 09 d0"  # loop: rdtsc (now)
    "48 89 c3"      # mov rbx, rax
    "4c 29 fb"      # sub rbx, r15         ; the gap
    "49 89 c7"      # mov r15, rax
    "4c 39 f3"      # cmp rbx, r14
    "4c 0f 47 f3"   # cmova r14, rbx       ; the longest
    "4c 39 cb"      # cmp rbx, r9
    "76 12"         # jbe check            ; not a detour
    "49 01 dc"      # add r12, rbx
    "49 ff c5"      # inc r13
    "49 39 f3"      # cmp r11, rsi
    "73 07"         # jae check            ; the buffer is full: counted, not kept
    "4a 89 1c df"   # mov [rdi + r11*8], rbx
    "49 ff c3"      # inc r11
    "49 3b 02"      # check: cmp rax, [r10]
    "72 cb"         # jb loop
    "49 89 08"      # mov [r8], rcx
    "4d 89 78 08"   # mov [r8+8], r15
    "4d 89 60 10"   # mov [r8+16], r12
    "4d 89 68 18"   # mov [r8+24], r13
    "4d 89 70 20"   # mov [r8+32], r14
    "4c 89 d8"      # mov rax, r11
    "41 5f 41 5e 41 5d 41 5c 5b c3"  # pop r15, r14, r13, r12, rbx; ret
)
CAPACITY = 1 << 18  # detours kept per CPU (2 MiB): 26 k/s for 10 s; beyond it they are counted only
# Histogram bounds in µs, as oslat's buckets grow: a detour falls in the last bound it reaches.
BOUNDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000)


class Run:
    """One CPU's loop: its buffer, its thread, and what the loop wrote after the window."""

    def __init__(self, code: Executable, cpu: int):
        self.cpu = cpu
        self.code = code
        self.buffer = (ctypes.c_uint64 * CAPACITY)()
        self.out = (ctypes.c_uint64 * 5)()
        self.recorded = 0
        self.error: str | None = None
        self.ready = threading.Event()
        self.go = threading.Event()
        self.done = threading.Event()  # set when the loop has left the code page (join can be fooled)
        self.thread = threading.Thread(target=self._run, name=f"kvmtune-noise/{cpu}", daemon=True)
        self.threshold = 0
        self.deadline = None  # the loops' shared deadline (a one-word array), given with go

    def _run(self) -> None:
        import os

        try:
            try:
                os.sched_setaffinity(0, {self.cpu})  # 0: this thread alone
                ctypes.memset(self.buffer, 0xFF, ctypes.sizeof(self.buffer))  # fault every page in now
            except OSError as exc:
                self.error = f"cannot run on CPU {self.cpu}: {exc.strerror}"
                return
            finally:
                self.ready.set()
            self.go.wait()
            if self.deadline is not None:
                self.recorded = self.code.call(self.buffer, CAPACITY, self.threshold, self.deadline, self.out)
        finally:
            self.done.set()


def run_loops(cpus: list[int], threshold_ticks: int, window_ticks: int, read_tsc) -> list[Run]:
    """A loop on each CPU, all ending at the same TSC deadline; returns when all have ended."""
    u64, ptr = ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64)
    code = Executable(DETOUR, u64, ptr, u64, u64, ptr, ptr)
    deadline = (ctypes.c_uint64 * 1)(0)
    runs = [Run(code, cpu) for cpu in cpus]
    started = []
    try:
        for run in runs:
            run.thread.start()
            started.append(run)
        for run in runs:
            run.ready.wait()
        deadline[0] = read_tsc() + window_ticks
        for run in runs:
            run.threshold, run.deadline = threshold_ticks, deadline
            run.go.set()
        for run in runs:
            run.done.wait()
    finally:
        # A Ctrl-C lands here: every loop ends at its next read of the deadline. The code page is
        # freed only once no thread can be in it: freeing it after a join cut short by the signal
        # (and is_alive()) crashed a run here, so each loop's own event is waited for, and a second
        # Ctrl-C here leaves the page mapped rather than pulled from under a loop.
        deadline[0] = 0
        for run in runs:
            run.go.set()
        for run in started:
            run.done.wait()
        code.free()
    return runs


def summarise(run: Run, tsc_mhz: float, threshold_us: float) -> dict:
    """detours_us (max, p999, p9999: over the detours, the gaps above the threshold), the
    histogram, and lost_ppm: the share of the loop's time spent in detours, per million."""
    if run.error:
        return {"error": run.error}
    start, last, lost, seen, longest = (int(v) for v in run.out)
    span = max(last - start, 1)
    gaps = sorted(run.buffer[:run.recorded])
    us = [g / tsc_mhz for g in gaps]

    def pct(p: float) -> float:
        return round(us[min(len(us) - 1, int(p * len(us)))], 1) if us else 0.0

    histogram = {str(b): 0 for b in BOUNDS}
    for value in us:
        histogram[str(max((b for b in BOUNDS if b <= value), default=BOUNDS[0]))] += 1
    return {"detours_us": {"max": round(longest / tsc_mhz, 1), "p999": pct(0.999), "p9999": pct(0.9999)},
            "lost_ppm": round(lost / span * 1e6, 1), "detours": seen, "recorded": run.recorded,
            "histogram_us": histogram, "window_s": round(span / tsc_mhz / 1e6, 3), "threshold_us": threshold_us}
