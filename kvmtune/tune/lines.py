"""kvmtune's lines in a file it shares with the system (fstab, irqbalance's environment file).

Such a file is edited as exact text (kvmtune.host.reads: every byte kept) split on "\\n"
only: form feed, NEL, U+2028, CR and bytes that are not UTF-8 are not line ends and
come back as they were. kvmtune appends its lines as pairs, a marker comment and the
line it manages. Which pairs are kvmtune's is proven by the journal, never by the
marker, which an administrator can copy or an old copy of the file can hold. The
journal's proof is ``{"text": the file before kvmtune's first edit, "added": the lines
kvmtune has added}``: kvmtune's pairs are those beyond the ones the original already
had, and at most as many of each line as it added (a copy an administrator made later
stays). A file with no journal record has no kvmtune lines: its caller passes the
file as it is now as the proof. A bare text (a journal of an older kvmtune) proves the
original without the count.
"""

from __future__ import annotations

from collections import Counter

from kvmtune.tune.change import exact_original


def split_lines(text: str | None) -> list[str]:
    """Lines on "\\n" only, each with its "\\n" (the last may have none): joined, ``text`` again."""
    if not text:
        return []
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def pairs(lines: list[str], mark: str, managed) -> list[int]:
    """Where a marker line is followed by a line of the form kvmtune writes."""
    return [i for i in range(len(lines) - 1) if lines[i] == mark + "\n" and managed(lines[i + 1])]


def text_of(proof) -> str | None:
    """The original text a proof holds."""
    return proof["text"] if isinstance(proof, dict) else proof


def ours(lines: list[str], proof, mark: str, managed) -> set[int]:
    """Indices of kvmtune's lines: the marked pairs beyond those the original already held
    (the original's own come first in the file; kvmtune only ever appends), no more of
    each than the journal says kvmtune added."""
    original = text_of(proof)
    # Its last line ends with the "\n" kvmtune adds before its own lines, if it had none.
    base = split_lines(original + "\n" if original and not original.endswith("\n") else original)
    had = Counter(base[i + 1] for i in pairs(base, mark, managed))
    cap = Counter(line + "\n" for line in proof["added"]) if isinstance(proof, dict) else None
    out: set[int] = set()
    for i in pairs(lines, mark, managed):
        entry = lines[i + 1]
        if had[entry] > 0:
            had[entry] -= 1
        elif cap is None or cap[entry] > 0:
            if cap is not None:
                cap[entry] -= 1
            out |= {i, i + 1}
    return out


def journaled(current: str | None, proof, mark: str, managed, managed_lines: list[str]) -> dict:
    """The proof to journal before a run writes ``managed_lines``: the original as first
    recorded, and every line kvmtune has in the file now or will have once this run is done."""
    found = split_lines(current)
    mine = Counter(found[i].rstrip("\n") for i in ours(found, proof, mark, managed) if found[i] != mark + "\n")
    return {"text": text_of(proof), "added": sorted((mine | Counter(managed_lines)).elements())}


def parse_proof(value, managed) -> dict | str | None:
    """A journaled proof as kvmtune writes it (ValueError if not): the text apply read, and
    lines of the form kvmtune writes."""
    if not isinstance(value, dict):
        return None if value is None else exact_original(value)
    added = value.get("added")
    if set(value) != {"text", "added"} or not isinstance(added, list) \
            or any(not isinstance(line, str) or not managed(line + "\n") for line in added):
        raise ValueError("a shared file's original is {text, added: [kvmtune's lines]}")
    if value["text"] is not None:
        exact_original(value["text"])
    return value


def without_ours(current: str | None, proof, mark: str, managed) -> str | None:
    """``current`` without kvmtune's lines, every other byte kept. When the original's last
    line had no "\\n", the one kvmtune added before its lines goes again."""
    if current is None:
        return None
    lines = split_lines(current)
    drop = ours(lines, proof, mark, managed)
    original = text_of(proof)
    kept = "".join(line for i, line in enumerate(lines) if i not in drop)
    if original and not original.endswith("\n") and kept == original + "\n":
        return original
    return kept


def with_ours(current: str | None, proof, mark: str, managed, managed_lines: list[str]) -> str:
    """``current`` with kvmtune's lines replaced by ``managed_lines``, each under the marker."""
    base = without_ours(current, proof, mark, managed) or ""
    if base and not base.endswith("\n"):
        base += "\n"  # a line is appended after the last, not joined to it
    return base + "".join(f"{mark}\n{line}\n" for line in managed_lines)


def restored(proof, current: str | None, mark: str, managed) -> tuple[str | None, bool]:
    """(text to put back, whether someone else changed the file): the original, byte for
    byte, when kvmtune's lines are all that differ; else the current file without them."""
    stripped = without_ours(current, proof, mark, managed)
    original = text_of(proof)
    if stripped == original or (original is None and stripped == ""):
        return original, False
    return stripped, True
