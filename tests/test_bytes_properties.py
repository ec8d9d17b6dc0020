"""Byte-exact rewriting, generated (hypothesis): lines of any bytes (control characters,
form feed, NEL, U+2028, invalid UTF-8, CRLF, no final newline, forged kvmtune markers).

apply adds kvmtune's lines and keeps every other line byte for byte, removing none it did
not write; rollback gives the file back byte-identical. Checked on the line editors
(fstab, irqbalance) and end to end on a snapshot tree (fstab, kvmtune's own drop-in).
"""

import os
import re
import shutil
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kvmtune.host.reads import exact_bytes, exact_text
from kvmtune.tune import files, fstab as fstab_lines, irqbalance
from tests.fixtures.synthetic import host as synthetic_host, write_tree

FAST = settings(max_examples=300, deadline=None)
SLOW = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

FIELDS = re.compile(rb"[ \t]+")
FSTAB_MARK = fstab_lines.MARK.encode()
IRQ_MARK = irqbalance.MARK.encode()
KVMTUNE_SHAPED = [FSTAB_MARK, b"hugetlbfs /dev/hugepages2M hugetlbfs pagesize=2M 0 0",
                  b"hugetlbfs /dev/hugepages1G hugetlbfs pagesize=1024M,size=1073741824 0 0",
                  IRQ_MARK, b"IRQBALANCE_BANNED_CPULIST=2-3", b"IRQBALANCE_BANNED_CPULIST=1",
                  b"UUID=abc / ext4 defaults 0 1", b"UUID=abc / ext4 defaults 0 1\r"]
TRICKY = [b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x85", b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9", b"\r",
          b"\x00", b"\xff", b"\xfe", b"\xed\xb3\xbf", b"\xc3", b"\x1b[2J", b"\t", b" ", b"#"]
line = st.one_of(st.sampled_from(KVMTUNE_SHAPED),
                 st.lists(st.one_of(st.sampled_from(TRICKY), st.binary(max_size=8)), max_size=6).map(b"".join)
                 .map(lambda b: b.replace(b"\n", b"")))
content = st.builds(lambda lines, final: b"\n".join(lines) + (b"\n" if final and lines else b""),
                    st.lists(line, max_size=12), st.booleans())
MOUNTS = [[("/dev/hugepages2M", "pagesize=2M")], [("/dev/hugepages1G", "pagesize=1024M,size=1073741824")],
          [("/dev/hugepages2M", "pagesize=2M"), ("/mnt/huge", "pagesize=2M,mode=1770")], []]


def lines_of(data: bytes) -> list[bytes]:
    if not data:
        return []
    return data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")


def settle(change, proof):
    """The proof the engine journals before the write, then once it is done."""
    proof = change.renewed_original(proof)
    change.status = "changed"
    return change.settled_original(proof)


def assert_only_added(original: bytes, edited: bytes, added_lines: list[bytes]):
    """The edit kept every line of the original, byte for byte and in order, and added only ``added``."""
    if not added_lines:
        assert edited == original
        return
    body = original if not original or original.endswith(b"\n") else original + b"\n"
    assert edited.startswith(body)
    assert lines_of(edited[len(body):]) == added_lines


@FAST
@given(original=content, first=st.sampled_from(MOUNTS), second=st.sampled_from(MOUNTS), admin=content)
def test_fstab_edits_keep_every_byte_and_rollback_is_exact(original, first, second, admin):
    text = exact_text(original)
    ours = lambda mounts: [l for p, o in mounts for l in (FSTAB_MARK, f"hugetlbfs {p} hugetlbfs {o} 0 0".encode())]
    # First apply: no journal record, so the file as found is the proof (its forged marks too).
    applied = fstab_lines.fstab_text(text, first, text)
    proof = settle(fstab_lines.FstabChange(text, applied, first, text), {"text": text, "added": []})
    if first:
        assert_only_added(original, exact_bytes(applied), ours(first))
    else:
        assert applied == text
    assert fstab_lines.restore_fstab(proof, applied) == (text, None)
    # A second apply with other mounts: the journal's proof tells kvmtune's lines.
    again = fstab_lines.fstab_text(applied, second, proof)
    proof = settle(fstab_lines.FstabChange(applied, again, second, proof), proof)
    if second:
        assert_only_added(original, exact_bytes(again), ours(second))
    assert fstab_lines.restore_fstab(proof, again)[0] == text
    # The administrator adds lines after kvmtune's (copies of kvmtune's too): rollback removes
    # only kvmtune's.
    edited = again + ("" if again.endswith("\n") or not again else "\n") + exact_text(admin)
    back, _ = fstab_lines.restore_fstab(proof, edited)
    kept = Counter(lines_of(exact_bytes(back or "")))
    expected = Counter(lines_of(original)) + Counter(lines_of(admin))
    assert kept == expected, "a line kvmtune did not write was removed, or one of its own stayed"



def test_an_administrators_copy_of_kvmtunes_fstab_line_stays_after_rollback():
    """The deterministic case of the property above: after two applies, the administrator
    appends an exact copy of kvmtune's marker and line; rollback removes kvmtune's only."""
    mounts = MOUNTS[0]
    line = f"hugetlbfs {mounts[0][0]} hugetlbfs {mounts[0][1]} 0 0"
    text = "UUID=1 / ext4 defaults 0 1\n"
    applied = fstab_lines.fstab_text(text, mounts, text)
    proof = settle(fstab_lines.FstabChange(text, applied, mounts, text), {"text": text, "added": []})
    again = fstab_lines.fstab_text(applied, mounts, proof)
    proof = settle(fstab_lines.FstabChange(applied, again, mounts, proof), proof)
    copy = f"{fstab_lines.MARK}\n{line}\n"
    back, _ = fstab_lines.restore_fstab(proof, again + copy)
    assert back == text + copy


@FAST
@given(original=content, cpus=st.sets(st.integers(0, 15), min_size=1), other=st.sets(st.integers(0, 15), min_size=1))
def test_irqbalance_edits_keep_every_byte_and_rollback_is_exact(original, cpus, other):
    text = exact_text(original)
    applied = irqbalance.with_ban(text, cpus, text)
    assert exact_bytes(applied).startswith(original)
    assert irqbalance.restored(text, applied) == text
    assert irqbalance.restored(text, irqbalance.with_ban(applied, other, text)) == text


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("template") / "host"
    return write_tree(str(root), synthetic_host(n_cpus=4, iommu_groups=0))


def snapshot(template, tmp_path_factory) -> str:
    dest = tmp_path_factory.mktemp("case") / "host"
    shutil.copytree(template, dest)
    return str(dest)


def put(root: str, rel: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
    with open(os.path.join(root, rel), "wb") as f:
        f.write(data)


def get(root: str, rel: str) -> bytes:
    with open(os.path.join(root, rel), "rb") as f:
        return f.read()


@SLOW
@given(fstab=content, dropin=content, mounts=st.booleans())
def test_apply_then_rollback_gives_every_file_back_byte_for_byte(fstab, dropin, mounts, template, tmp_path_factory,
                                                                 run_cli):
    root = snapshot(template, tmp_path_factory)
    put(root, "etc/fstab", fstab)
    dropin = files.HEADER.encode() + dropin  # an administrator's file that starts with kvmtune's header
    put(root, "etc/sysctl.d/99-zz-kvmtune.conf", dropin)
    profile = tmp_path_factory.mktemp("p") / "p.yaml"
    profile.write_text("sysctl:\n  vm.swappiness: 7\n" +
                       ("hugetlbfs:\n  - {path: /dev/hugepages1G, pagesize: 1G, size: 1G}\n" if mounts else ""))
    code, _, err = run_cli("--root", root, "apply", str(profile), "--json")
    assert code == 0, err
    if mounts:
        # Nothing is added where a line kvmtune does not own already mounts the path.
        already = any(FIELDS.split(l.strip(b" \t"))[1:2] == [b"/dev/hugepages1G"] and not l.startswith(b"#")
                      for l in lines_of(fstab))
        assert_only_added(fstab, get(root, "etc/fstab"), [] if already else [
            FSTAB_MARK, b"hugetlbfs /dev/hugepages1G hugetlbfs pagesize=1024M,size=1073741824 0 0"])
    else:
        assert get(root, "etc/fstab") == fstab
    code, _, err = run_cli("--root", root, "rollback", "--json")
    assert code == 0, err
    assert get(root, "etc/fstab") == fstab
    assert get(root, "etc/sysctl.d/99-zz-kvmtune.conf") == dropin
