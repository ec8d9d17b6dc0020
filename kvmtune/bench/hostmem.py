"""Host memory backed each way a VMM can back guest RAM: 4K pages, THP, hugetlb 2M and 1G.

libc's mmap through ctypes, because Python's mmap cannot ask for an aligned address
or for MAP_HUGETLB with a page size. KVM maps a large page into the guest only when
the host address and the guest-physical address agree modulo that page size, so
every mapping is aligned to its page size (1 GiB guest slots do the rest).
"""

from __future__ import annotations

import ctypes
import os

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE, MAP_FIXED, MAP_HUGETLB = (
    0x01, 0x02, 0x20, 0x4000, 0x10, 0x40000)
MAP_HUGE_SHIFT = 26
MADV_MERGEABLE, MADV_HUGEPAGE, MADV_NOHUGEPAGE = 12, 14, 15
MAP_FAILED = ctypes.c_void_p(-1).value
MiB, GiB = 1 << 20, 1 << 30
BACKINGS = ("4k", "thp", "hugetlb-2M", "hugetlb-1G")
PAGE = {"4k": 4096, "thp": 2 * MiB, "hugetlb-2M": 2 * MiB, "hugetlb-1G": GiB}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def _check(result, what: str):
    if result in (MAP_FAILED, -1) or result is None:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def mmap(length: int, prot: int, flags: int, address: int = 0) -> int:
    return _check(_libc.mmap(address, length, prot, flags, -1, 0), "mmap")


def munmap(address: int, length: int) -> None:
    _check(_libc.munmap(address, length), "munmap")


def madvise(address: int, length: int, advice: int) -> None:
    _check(_libc.madvise(address, length, advice), "madvise")


class Mapping:
    """``size`` bytes of anonymous memory backed as ``kind``; free() gives it back."""

    def __init__(self, kind: str, size: int):
        self.kind, self.size = kind, size
        page = PAGE[kind]
        self.length = -(-size // page) * page  # hugetlb munmap needs whole pages
        rw = PROT_READ | PROT_WRITE
        if kind.startswith("hugetlb"):
            shift = page.bit_length() - 1
            self.address = mmap(self.length, rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | shift << MAP_HUGE_SHIFT)
            self._reserved = None
            return
        # Reserve length + 2 MiB, then map the aligned part over it.
        span = self.length + 2 * MiB
        base = mmap(span, 0, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
        self._reserved = (base, span)
        self.address = -(-base // (2 * MiB)) * 2 * MiB
        mmap(self.length, rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, self.address)
        madvise(self.address, self.length, MADV_HUGEPAGE if kind == "thp" else MADV_NOHUGEPAGE)

    def view(self) -> memoryview:
        """The memory as unsigned 64-bit words."""
        return memoryview((ctypes.c_char * self.length).from_address(self.address)).cast("B").cast("Q")

    def free(self) -> None:
        if self._reserved:
            munmap(*self._reserved)
        else:
            munmap(self.address, self.length)
        self._reserved = self.address = None


class Executable:
    """A page of host machine code callable through ctypes (for the native chase)."""

    def __init__(self, code: bytes, restype, *argtypes):
        self.length = -(-len(code) // 4096) * 4096
        self.address = mmap(self.length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        ctypes.memmove(self.address, code, len(code))
        if _libc.mprotect(ctypes.c_void_p(self.address), ctypes.c_size_t(self.length), PROT_READ | PROT_EXEC):
            err = ctypes.get_errno()
            munmap(self.address, self.length)
            raise OSError(err, f"mprotect: {os.strerror(err)}")
        self.call = ctypes.CFUNCTYPE(restype, *argtypes)(self.address)

    def free(self) -> None:
        munmap(self.address, self.length)
