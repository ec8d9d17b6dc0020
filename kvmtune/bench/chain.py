"""The pointer chain the guest (and the host, natively) walks: one cycle, random in pages.

Each 8-byte entry holds the offset of the next from the start of the working set, so
one chain serves every mapping of the same memory. The walk visits the pages in a
random order LINES times, each time at a different line of the page, before it
returns to where it began: every access lands on another random page (the TLB and the
page walk are what is measured) and the whole cycle is LINES x pages entries. Laying
it out takes strided slice stores, not a Python loop per entry (1 GiB in ~0.3 s).
"""

from __future__ import annotations

import random
from array import array

PAGE, LINE = 4096, 64
LINES = 4  # entries per page


def line_of(turn: int) -> int:
    """The line (0..63) used in a page on the given turn: distinct lines, spread over the page."""
    return turn * 37 % 64


class Chain:
    def __init__(self, size: int, seed: int = 1):
        self.pages = size // PAGE
        if self.pages < 2:
            raise ValueError("the working set needs at least two pages")
        order = list(range(self.pages))
        random.Random(seed).shuffle(order)
        after = [0] * self.pages
        for here, there in zip(order, order[1:]):
            after[here] = there
        self.start = order[0] * PAGE + line_of(0) * LINE
        self.length = LINES * self.pages
        # The value every page holds on each turn: the next page's entry on the same line; the
        # last page of the turn leads to the first page on the next turn's line.
        self.turns = []
        for turn in range(LINES):
            line = line_of(turn) * LINE
            values = array("Q", [page * PAGE + line for page in after])
            values[order[-1]] = order[0] * PAGE + line_of((turn + 1) % LINES) * LINE
            self.turns.append(values)

    def write(self, words: memoryview) -> None:
        """Lay the chain into memory seen as 64-bit words (a Mapping's view)."""
        for turn, values in enumerate(self.turns):
            first = line_of(turn) * LINE // 8
            words[first:first + self.pages * PAGE // 8:PAGE // 8] = values

    def checksum(self) -> int:
        """The sum (mod 2**64) of the offsets of all entries: what one full cycle adds up."""
        pages = self.pages * (self.pages - 1) // 2 * PAGE * LINES
        lines = sum(line_of(turn) * LINE for turn in range(LINES)) * self.pages
        return (pages + lines) % (1 << 64)
