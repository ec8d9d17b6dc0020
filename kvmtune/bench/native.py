"""The same chase and ALU loop run by this process on the host CPU, for the ratio to the guest.

Machine code, called through ctypes (System V ABI), because a Python loop would time
the interpreter, not the memory. The chase loop is byte for byte the guest's.
"""

from __future__ import annotations

import ctypes

from kvmtune.bench.hostmem import Executable

# uint64 chase(uint64 *base, uint64 start, uint64 count, uint64 *checksum): the offset it stopped at
CHASE = bytes.fromhex(
    "49 89 c9"      # mov r9, rcx          ; where the checksum goes
    "48 89 d1"      # mov rcx, rdx         ; count
    "48 89 f0"      # mov rax, rsi         ; first offset
    "31 d2"         # xor edx, edx
    "48 01 c2"      # loop: add rdx, rax
    "48 8b 04 07"   # mov rax, [rdi+rax]   ; the dependent load measured
    "48 ff c9"      # dec rcx
    "75 f4"         # jnz loop
    "49 89 11"      # mov [r9], rdx
    "c3"            # ret
)
# void alu(uint64 count)
ALU = bytes.fromhex(
    "48 89 f9"      # mov rcx, rdi
    "48 ff c9"      # loop: dec rcx
    "75 fb"         # jnz loop
    "c3"            # ret
)


class Native:
    def __init__(self):
        u64 = ctypes.c_uint64
        self._chase = Executable(CHASE, u64, u64, u64, u64, ctypes.POINTER(u64))
        self._alu = Executable(ALU, None, u64)
        self._sum = u64()

    def chase(self, base: int, start: int, count: int) -> tuple[int, int]:
        end = self._chase.call(base, start, count, ctypes.byref(self._sum))
        return end, self._sum.value

    def alu(self, count: int) -> None:
        self._alu.call(count)

    def close(self) -> None:
        self._chase.free()
        self._alu.free()
