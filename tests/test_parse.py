import pytest

from kvmtune.probe import parse
from kvmtune.probe.cpu import parse_cpuinfo


@pytest.mark.parametrize("text, cpus", [
    ("0-3,8,10-11\n", [0, 1, 2, 3, 8, 10, 11]),
    ("", []),
    ("5", [5]),
])
def test_cpulist(text, cpus):
    assert parse.cpulist(text) == cpus
    assert parse.cpulist(parse.format_cpulist(cpus)) == cpus


@pytest.mark.parametrize("bad", ["0-", "a-b", "3-1", "1,,2"])
def test_cpulist_rejects_garbage(bad):
    with pytest.raises(parse.ParseError):
        parse.cpulist(bad)


def test_cpumask_words_most_significant_first():
    assert parse.cpumask("00000000,00000101\n") == [0, 8]
    assert parse.cpumask("00000001,00000000") == [32]


def test_meminfo_and_node_meminfo():
    assert parse.kv_kb("MemTotal:  100 kB\nHugePages_Total:   4\n") == {"MemTotal": 100, "HugePages_Total": 4}
    assert parse.kv_kb("Node 1 MemTotal:  77 kB\n")["MemTotal"] == 77
    assert parse.kv_kb("MemTot") == {}


def test_bracketed_selector():
    assert parse.bracketed("always [madvise] never\n") == "madvise"
    assert parse.bracketed("[none] scan-time") == "none"
    assert parse.bracketed("garbage words") is None


def test_cmdline_stops_at_double_dash():
    words = parse.cmdline("ro quiet hugepagesz=1G hugepages=4 -- init=x")
    assert words == [("ro", None), ("quiet", None), ("hugepagesz", "1G"), ("hugepages", "4")]


def test_cpuinfo_counts_sockets_and_keeps_first_block():
    text = ("processor\t: 0\nvendor_id\t: GenuineIntel\nphysical id\t: 0\nflags\t\t: fpu vmx\n\n"
            "processor\t: 1\nvendor_id\t: GenuineIntel\nphysical id\t: 1\nflags\t\t: fpu vmx\n\n")
    info = parse_cpuinfo(text)
    assert info.processors() == (0, 1)
    assert info.physical_ids == {"0", "1"}
    assert info.first["flags"] == "fpu vmx"
    assert info.complete


def test_truncated_cpuinfo_is_flagged():
    info = parse_cpuinfo("processor\t: 0\nvendor_id\t: Genu")
    assert not info.complete


def test_records_are_immutable_tuples_with_fields_defaults_and_replace():
    import pytest

    from kvmtune.record import record

    @record
    class Point:
        x: int
        y: int = 0

        @property
        def norm(self) -> int:
            return abs(self.x) + abs(self.y)

    p = Point(3, y=-4)
    assert (p.x, p.y, p.norm) == (3, -4, 7) and p == (3, -4) and Point(1) == Point(1, 0)
    assert p._replace(y=1) == Point(3, 1) and p._asdict() == {"x": 3, "y": -4}
    assert repr(p) == "Point(x=3, y=-4)" and hash(p) == hash((3, -4))
    for bad in (lambda: Point(), lambda: Point(1, 2, 3), lambda: Point(1, z=2), lambda: p._replace(z=1)):
        with pytest.raises(TypeError):
            bad()
    with pytest.raises(AttributeError):
        p.x = 5
