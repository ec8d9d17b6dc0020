"""``kvmtune bench``: measure through KVM what the tuning buys here; ``--compare`` two results."""

from __future__ import annotations

import re

from kvmtune.commands import Options
from kvmtune.errors import EXIT_OK, UsageError
from kvmtune.grammar import digits

SIZE = re.compile(r"([1-9][0-9]{0,6})([MG])")
MIN_SIZE = 16 << 20
SECTION_NAMES = ("memory", "exits", "native", "ksm", "noise")
DURATION = re.compile(r"[0-9]{1,4}(?:\.[0-9]{1,3})?")
EXIT_INTERRUPTED = 130


class BenchOptions(Options):
    def __init__(self, only: list[str] | None = None, quick: bool = False, size: str | None = None,
                 rounds: str | None = None, grow_pools: bool = False, ksm: bool = False, format: str = "text",
                 output: str | None = None, compare: str | None = None, after: str | None = None,
                 root: str = "/", cpus: str | None = None, duration: str | None = None):
        self.only = only or []
        self.quick = quick
        self.size = size
        self.rounds = rounds
        self.grow_pools = grow_pools
        self.ksm = ksm
        self.format = format
        self.output = output
        self.compare = compare
        self.after = after
        self.root = root
        self.cpus = cpus
        self.duration = duration


def parse_size(text: str) -> int:
    match = SIZE.fullmatch(text)
    if not match:
        raise UsageError(f"--size: expected a size like 512M or 2G, got {text[:40]!r}")
    size = int(match.group(1)) << (20 if match.group(2) == "M" else 30)
    if size < MIN_SIZE or size % (2 << 20) or size > 1 << 40:
        raise UsageError("--size: a multiple of 2M, from 16M to 1024G")
    return size


def sections(opts: BenchOptions) -> tuple[str, ...]:
    chosen = []
    for item in opts.only:
        for name in filter(None, item.split(",")):
            if name not in SECTION_NAMES:
                raise UsageError(f"--only: unknown section {name[:40]!r} (expected {', '.join(SECTION_NAMES)})")
            chosen.append(name)
    if not chosen:
        chosen = ["memory", "exits", "native"] + (["ksm"] if opts.ksm else []) + ["noise"]
    if "ksm" in chosen and not opts.ksm:
        raise UsageError("the ksm section changes KSM for the run: add --ksm to allow it")
    return tuple(dict.fromkeys(chosen))


def settings_of(opts: BenchOptions):
    from kvmtune.bench.run import Settings

    rounds = None
    if opts.rounds is not None:
        if not digits(opts.rounds) or not 1 <= int(opts.rounds) <= 100:
            raise UsageError(f"--rounds: expected a number from 1 to 100, got {opts.rounds[:40]!r}")
        rounds = int(opts.rounds)
    size = parse_size(opts.size) if opts.size is not None else None
    return Settings(quick=opts.quick, size=size, rounds=rounds, sections=sections(opts), grow_pools=opts.grow_pools,
                    cpus=parse_cpus(opts.cpus), duration=parse_duration(opts.duration))


def parse_cpus(text: str | None) -> list[int] | None:
    if text is None:
        return None
    from kvmtune.host.cpulist import ParseError, cpulist

    try:
        cpus = cpulist(text)
    except ParseError:
        cpus = []
    if not cpus:
        raise UsageError(f"--cpus: expected a CPU list like 2-5,8, got {text[:40]!r}")
    return cpus


def parse_duration(text: str | None) -> float | None:
    if text is None:
        return None
    if not DURATION.fullmatch(text) or not 0.1 <= float(text) <= 3600:
        raise UsageError(f"--duration: expected seconds from 0.1 to 3600, got {text[:40]!r}")
    return float(text)


def run_bench_command(opts: BenchOptions) -> int:
    if opts.compare is not None or opts.after is not None:
        return _compare(opts)
    if opts.root != "/":
        raise UsageError("bench measures the running kernel through /dev/kvm; a snapshot (--root) has no "
                         "kernel to measure: run it on the host itself")
    settings = settings_of(opts)
    from kvmtune.bench.run import BenchInterrupted, run_bench
    from kvmtune.host.writable import WritableHost
    from kvmtune.render.progress import bar_progress

    host = WritableHost("/")
    refuse_foreign_arch(host)
    _may_open_kvm(host, settings.sections)
    try:
        with bar_progress() as progress, _term_as_interrupt():
            result = run_bench(host, settings, progress)
    except BenchInterrupted as stop:
        import sys

        state = ("the host reads back as before" if not stop.problems
                 else "restoring the host found: " + "; ".join(stop.problems))
        sys.stderr.write(f"kvmtune: bench interrupted; {state}\n")
        return EXIT_INTERRUPTED
    from kvmtune.bench.judge import conclusion

    result["conclusion"] = conclusion(result)
    _emit(opts, result)
    return EXIT_OK


def _may_open_kvm(host, chosen) -> None:
    """Refused (exit 4) before anything is measured when the guest sections cannot open /dev/kvm:
    a run that measures none of what it was asked for is not a success. Only the host-side walk
    (--only native) needs no KVM. A host without /dev/kvm is left to the run, which says so."""
    import os

    from kvmtune.errors import EXIT_REFUSED, HostError, Refused

    if not {"memory", "exits", "ksm"} & set(chosen):
        return
    try:
        os.close(host.open_device("dev/kvm"))
    except HostError as exc:
        if exc.exit_code == EXIT_REFUSED:
            raise Refused(f"/dev/kvm: {exc.reason}: bench runs its guests through it, so nothing would be "
                          "measured; run it as root (or as a user /dev/kvm lets in), or '--only native' for "
                          "the host-side walk alone") from None


def refuse_foreign_arch(host) -> None:
    """bench's guest is x86 machine code: on any other architecture it cannot run (exit 4)."""
    from kvmtune.errors import Refused
    from kvmtune.probe.cpu import read_cpu

    arch = read_cpu(host).arch
    if arch != "x86_64":
        raise Refused(f"bench runs x86 guest code through /dev/kvm, and this host is {arch}: "
                      "it cannot be measured here")


def _term_as_interrupt():
    """SIGTERM (systemd, a CI timeout) ends a run the way Ctrl-C does: through the finally blocks
    that put the host back."""
    import contextlib
    import signal

    @contextlib.contextmanager
    def handler():
        def interrupt(signum, frame):
            raise KeyboardInterrupt

        old = signal.signal(signal.SIGTERM, interrupt)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, old)

    return handler()


def _emit(opts: BenchOptions, result: dict) -> None:
    """stdout in the chosen format; -o PATH gets JSON (what --compare reads), or the metrics for
    --format prometheus, which then print nowhere else (as check's do)."""

    from kvmtune.commands.check import write_output
    from kvmtune.fastjson import dumps

    if opts.format == "prometheus":
        from kvmtune.render.bench_prometheus import render_bench_prometheus

        text = render_bench_prometheus(result)
        if opts.output is not None:
            write_output(opts.output, text)
        else:
            print(text, end="")
        return
    if opts.output is not None:
        write_output(opts.output, dumps(result, indent=2) + "\n")
    if opts.format == "json":
        from kvmtune.render.json_out import write_json

        write_json(result)
    else:
        from kvmtune.render.bench_text import render_bench

        render_bench(result)


def _compare(opts: BenchOptions) -> int:
    if opts.compare is None or opts.after is None:
        raise UsageError("compare two results: kvmtune bench --compare BEFORE.json AFTER.json")
    from kvmtune.bench.judge import compare

    from kvmtune.bench.schema import load

    comparison = compare(load(opts.compare), load(opts.after))
    if opts.format == "json":
        from kvmtune.render.json_out import write_json

        write_json(comparison)
    else:
        from kvmtune.render.bench_text import render_compare

        render_compare(comparison)
    return EXIT_OK
