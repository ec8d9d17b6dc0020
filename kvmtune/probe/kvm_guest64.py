"""A 64-bit guest whose code runs at CPL3: page tables, segments and the machine code.

Why CPL3 long mode: on paravirtual KVM (kvm_pvm) only 64-bit user-mode code runs
natively; real mode, 32-bit and ring-0 code are emulated about 1000 times slower, and
paging outside long mode is refused. VT-x and AMD-V run CPL3 code natively too, so it
is the portable choice. I/O instructions at CPL3 need IOPL=3 in RFLAGS.

Guest-physical layout (system memory at 0, data regions from 1 GiB up):

    0x1000 PML4   0x2000 PDPT (identity)   0x3000 PDPT (4K alias)   0x4000 code
    0x5000 mailbox   0x6000 GDT   0x10000.. page directories and page tables
    system size.. +2 MiB: mapped, but no memory slot: MMIO

Every data region is mapped twice: at its guest-physical address with 2 MiB pages,
and at ALIAS_4K + that address with 4 KiB pages, so one VM measures both guest page
sizes over the same memory. Every table entry has U/S set: CPL3 code may use it.

The guest sits in one loop: ``out 0xF0`` tells the host it is ready; the host writes
a routine's address and its arguments into the mailbox and runs the vCPU again; the
routine writes its answers back and returns to the loop.
"""

from __future__ import annotations

import struct

GiB, MiB = 1 << 30, 1 << 20
PML4, PDPT_IDENTITY, PDPT_ALIAS, CODE, MAILBOX, GDT = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000
TABLES = 0x10000
DATA_BASE = GiB
ALIAS_4K = 512 * GiB  # PML4 slot 1
READY_PORT, USER_PORT, KERNEL_PORT = 0xF0, 0xF1, 0x21  # 0x21: the in-kernel PIC's mask register
PRESENT_RW_USER, LARGE = 0x7, 0x80
# Mailbox slots (u64): what the routine is, its arguments, its answers.
OP, BASE, START, COUNT, RESULT, CHECKSUM = (MAILBOX + 8 * i for i in range(6))


class Asm:
    """Just enough of an assembler: bytes with a comment each, labels and rel32 jumps."""

    def __init__(self, origin: int):
        self.origin = origin
        self.code = bytearray()
        self.labels: dict[str, int] = {}
        self.fixups: list[tuple[int, str]] = []
        self.listing: list[tuple[int, str, str]] = []

    def emit(self, code: bytes, comment: str) -> None:
        self.listing.append((self.origin + len(self.code), code.hex(" "), comment))
        self.code += code

    def label(self, name: str) -> None:
        self.labels[name] = self.origin + len(self.code)

    def jump(self, opcode: bytes, target: str, comment: str) -> None:
        self.emit(opcode + b"\0\0\0\0", comment)
        self.fixups.append((len(self.code) - 4, target))

    def count_down(self, loop: str, register: str = "rcx") -> None:
        """``dec register; jnz loop``: the end of every counted loop."""
        self.emit({"rcx": b"\x48\xff\xc9", "rsi": b"\x48\xff\xce"}[register], f"dec {register}")
        self.jump(b"\x0f\x85", loop, f"jnz {loop}")

    def back_to_top(self) -> None:
        self.jump(b"\xe9", "top", "jmp top              ; report to the host, wait for the next call")

    def address(self, name: str) -> int:
        return self.labels[name]

    def assemble(self) -> bytes:
        for at, target in self.fixups:
            struct.pack_into("<i", self.code, at, self.labels[target] - (self.origin + at + 4))
        return bytes(self.code)


def _abs32(address: int) -> bytes:
    return struct.pack("<i", address)


def guest_program() -> Asm:
    """The loop and its routines; arguments and answers travel through the mailbox."""
    a = Asm(CODE)
    a.label("top")
    a.emit(bytes([0xE6, READY_PORT]), "out 0xF0, al        ; ready: the host fills the mailbox")
    a.emit(b"\x48\x8b\x04\x25" + _abs32(OP), "mov rax, [OP]        ; the routine's address")
    a.emit(b"\x48\x8b\x1c\x25" + _abs32(BASE), "mov rbx, [BASE]")
    a.emit(b"\x48\x8b\x34\x25" + _abs32(START), "mov rsi, [START]")
    a.emit(b"\x48\x8b\x0c\x25" + _abs32(COUNT), "mov rcx, [COUNT]     ; never 0: the loops test after dec")
    a.emit(b"\xff\xe0", "jmp rax")

    # Pointer chase: each 8-byte entry holds the offset (from BASE) of the next one.
    a.label("chase")
    a.emit(b"\x48\x89\xf0", "mov rax, rsi         ; offset of the first entry")
    a.emit(b"\x31\xd2", "xor edx, edx         ; checksum of the offsets visited")
    a.label("chase_loop")
    a.emit(b"\x48\x01\xc2", "add rdx, rax")
    a.emit(b"\x48\x8b\x04\x03", "mov rax, [rbx+rax]   ; the dependent load measured")
    a.count_down("chase_loop")
    a.emit(b"\x48\x89\x04\x25" + _abs32(RESULT), "mov [RESULT], rax    ; where the chase ended")
    a.emit(b"\x48\x89\x14\x25" + _abs32(CHECKSUM), "mov [CHECKSUM], rdx")
    a.back_to_top()

    # First touch: a write to every 4 KiB page that keeps its contents.
    a.label("touch")
    a.emit(b"\x80\x0b\x00", "or byte [rbx], 0     ; a write fault, the byte unchanged")
    a.emit(b"\x48\x81\xc3\x00\x10\x00\x00", "add rbx, 4096")
    a.count_down("touch")
    a.back_to_top()

    # An ALU loop: native speed here means the guest is not being emulated.
    a.label("alu")
    a.count_down("alu")
    a.back_to_top()

    # Exits the kernel handles: a write to the in-kernel PIC's mask register.
    a.label("kernel_pio")
    a.emit(b"\xb0\xff", "mov al, 0xff         ; mask every PIC interrupt")
    a.label("kernel_pio_loop")
    a.emit(bytes([0xE6, KERNEL_PORT]), "out 0x21, al")
    a.count_down("kernel_pio_loop")
    a.back_to_top()

    # cpuid always exits to the hypervisor; it clobbers rcx, so rsi counts.
    a.label("cpuid")
    a.emit(b"\x48\x89\xce", "mov rsi, rcx")
    a.label("cpuid_loop")
    a.emit(b"\x31\xc0", "xor eax, eax")
    a.emit(b"\x0f\xa2", "cpuid")
    a.count_down("cpuid_loop", "rsi")
    a.back_to_top()

    # Exits to user space: the host counts them and resumes the guest each time.
    a.label("user_pio")
    a.emit(bytes([0xE6, USER_PORT]), "out 0xF1, al")
    a.count_down("user_pio")
    a.back_to_top()

    # MMIO exits: a write to a guest-physical address no memory slot backs (BASE: mmio_address).
    a.label("mmio")
    a.emit(b"\x88\x03", "mov [rbx], al        ; no slot there: KVM_EXIT_MMIO to the host")
    a.count_down("mmio")
    a.back_to_top()
    return a


def mmio_address(system_size: int) -> int:
    """The guest address (identity-mapped) of the 2 MiB just past system memory: mapped in the
    guest's page tables, backed by no memory slot, below the data regions."""
    return system_size


def layout(region_sizes: list[int]) -> tuple[list[int], int]:
    """Guest-physical addresses of the data regions (1 GiB aligned, so any host page size maps
    them whole) and the size of the system memory that holds the tables for them."""
    addresses, at = [], DATA_BASE
    tables = 0
    for size in region_sizes:
        addresses.append(at)
        gigs = -(-size // GiB)
        tables += gigs * 2 + (size >> 21)  # a PD per GiB per mapping, a PT per 2 MiB (4K alias)
        at += gigs * GiB
    system = TABLES + (tables + 2) * 4096
    return addresses, -(-system // (2 * MiB)) * 2 * MiB


def build_system_memory(memory, system_size: int, regions: list[tuple[int, int]], program: bytes) -> None:
    """Write the page tables, GDT and code into ``memory`` (a writable buffer at guest-physical 0)."""
    next_table = TABLES

    def table() -> int:
        nonlocal next_table
        at, next_table = next_table, next_table + 4096
        if next_table > system_size:
            raise ValueError("system memory too small for the page tables")
        return at

    def entry(table_at: int, index: int, value: int) -> None:
        struct.pack_into("<Q", memory, table_at + 8 * index, value)

    entry(PML4, 0, PDPT_IDENTITY | PRESENT_RW_USER)
    entry(PML4, 1, PDPT_ALIAS | PRESENT_RW_USER)
    # The system memory itself: identity-mapped with 2 MiB pages.
    pd = table()
    entry(PDPT_IDENTITY, 0, pd | PRESENT_RW_USER)
    for i in range(system_size >> 21):
        entry(pd, i, (i << 21) | PRESENT_RW_USER | LARGE)
    # One more 2 MiB page with no memory slot behind it: guest accesses there are MMIO.
    entry(pd, system_size >> 21, mmio_address(system_size) | PRESENT_RW_USER | LARGE)
    directories: dict[tuple[int, int], int] = {}
    for address, size in regions:
        for offset in range(0, size, 2 * MiB):
            gpa = address + offset
            gig, slot = gpa >> 30, (gpa >> 21) & 511
            if (PDPT_IDENTITY, gig) not in directories:
                directories[PDPT_IDENTITY, gig] = table()
                entry(PDPT_IDENTITY, gig, directories[PDPT_IDENTITY, gig] | PRESENT_RW_USER)
                directories[PDPT_ALIAS, gig] = table()
                entry(PDPT_ALIAS, gig, directories[PDPT_ALIAS, gig] | PRESENT_RW_USER)
            entry(directories[PDPT_IDENTITY, gig], slot, gpa | PRESENT_RW_USER | LARGE)
            pt = table()
            entry(directories[PDPT_ALIAS, gig], slot, pt | PRESENT_RW_USER)
            # 512 consecutive 4 KiB pages: a range with the flags folded into its start.
            struct.pack_into("<512Q", memory, pt, *range(gpa | PRESENT_RW_USER, gpa + 2 * MiB, 4096))
    # GDT: null, ring-0 code and data, a 64-bit TSS (two slots), ring-3 data (0x2b) and code (0x33).
    descriptors = [0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF, 0x0000890000000067, 0,
                   0x00CFF2000000FFFF, 0x00AFFA000000FFFF]
    struct.pack_into(f"<{len(descriptors)}Q", memory, GDT, *descriptors)
    memory[CODE:CODE + len(program)] = program


def _segment(sregs: bytearray, index: int, selector: int, type_: int, dpl: int, s: int, l: int, db: int,
             limit: int = 0xFFFFFFFF, g: int = 1, unusable: int = 0) -> None:
    # struct kvm_segment: base u64, limit u32, selector u16, type present dpl db s l g avl unusable pad (u8)
    struct.pack_into("=QIHBBBBBBBBBx", sregs, 24 * index, 0, limit, selector, type_, 0 if unusable else 1,
                     dpl, db, s, l, g, 0, unusable)


def long_mode_sregs(sregs: bytearray) -> bytearray:
    """kvm_sregs for 64-bit paging with CPL3 segments (the layout KVM_GET_SREGS filled)."""
    # Segment order in kvm_sregs: cs ds es fs gs ss tr ldt.
    _segment(sregs, 0, 0x33, 0xB, 3, 1, 1, 0)  # code, execute/read, accessed, 64-bit
    for index in (1, 2, 3, 4, 5):
        _segment(sregs, index, 0x2B, 0x3, 3, 1, 0, 1)  # data, read/write, accessed
    _segment(sregs, 6, 0x18, 0xB, 0, 0, 0, 0, limit=0x67, g=0)  # a busy 64-bit TSS
    _segment(sregs, 7, 0, 0x2, 0, 0, 0, 0, limit=0xFFFF, g=0, unusable=1)  # no LDT
    struct.pack_into("=QH", sregs, 192, GDT, 7 * 8 - 1)  # gdt base, limit
    struct.pack_into("=QH", sregs, 208, 0, 0)  # no IDT: a fault ends in a shutdown exit
    cr0 = 0x80000033  # PG, NE, ET, MP, PE
    cr4 = 0x20  # PAE
    efer = 0x500  # LMA, LME
    struct.pack_into("=QQQQ", sregs, 224, cr0, 0, PML4, cr4)  # cr0, cr2, cr3, cr4
    struct.pack_into("=Q", sregs, 264, efer)
    return sregs


RFLAGS = 0x3002  # IOPL=3 (port I/O allowed at CPL3), reserved bit 1; interrupts off
