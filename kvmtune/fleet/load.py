"""Many hosts' collected results, read fast: the input of report, migration and cpu-baseline.

Accepted inputs, file by file: a ``kvmtune check --json`` object; a ``kvmtune guests
--json`` object; the result of the kvmtune.host.check Ansible module (``ansible ... --tree
DIR`` writes one such file per host); or a ``command`` task's result whose ``stdout`` holds
the JSON. Directories are walked. A file that cannot be read or understood is answered with
the reason, never dropped.

Speed (10,000 whole live results, about 17 KB each, in under 2 s on two CPUs): parsing is
most of the work, so the files are shared over the CPUs (fleet.fanout), and each command
keeps only the fields it reads (a FIELDS spec): the rest of a parsed result is freed at once.
The cyclic garbage collector is paused while parsing and, by the commands, for their whole
run (collector_paused: JSON makes no cycles).
"""

from __future__ import annotations

import gc

from kvmtune.fastjson import loads
from kvmtune.fleet.fanout import cpus, fan_out
from kvmtune.record import record

MAX_RESULT = 64 << 20  # a check --json of a 1024-CPU host is under 2 MiB; a guests result more
MIN_PER_WORKER = 256  # fewer files than this per CPU: one process (a fork costs more than it saves)
ALL = True  # in a FIELDS spec: keep the value whole
SHARED = "shared"  # keep a list whole, one object for equal lists (every host's CPU flags)
EACH = "*"  # a FIELDS key: this spec for every key of a mapping
# What is read of a host's CPU to judge named models (cpumodels.baseline): its sources.
CPU_FIELDS = {"vendor": ALL, "arch": ALL, "flags": SHARED, "bugs": SHARED, "kvm_features": SHARED}


@record
class Loaded:
    path: str
    kind: str | None  # "check" or "guests"
    result: object  # the result cut to the fields asked for (or what post made of it); None if none
    error: str | None  # why the file is not a result
    stamp: int  # modification time (ns); 0 where the file could not be read
    hostname: str | None = None  # host.hostname, where it is a name


def judge(obj) -> tuple[dict | None, str | None]:
    """(check or guests result, None) or (None, why it is not one)."""
    if isinstance(obj, dict) and "checks" not in obj and isinstance(obj.get("stdout"), str):
        try:
            obj = loads(obj["stdout"])
        except ValueError:
            return None, "a command result whose stdout is not kvmtune's JSON"
    if isinstance(obj, dict) and isinstance(obj.get("guests"), list) and isinstance(obj.get("findings"), list) \
            and isinstance(obj.get("host"), dict):
        if obj.get("schema_version") != 1:
            return None, f"schema_version {obj.get('schema_version')!r}, expected 1"
        return obj, None  # a kvmtune guests result
    if not isinstance(obj, dict) or not isinstance(obj.get("checks"), list) or not isinstance(obj.get("host"), dict):
        return None, "not a kvmtune check or guests result (no checks or guests, and no host)"
    if obj.get("schema_version") != 1:
        return None, f"schema_version {obj.get('schema_version')!r}, expected 1"
    return obj, None


def cutter(spec):
    """A function ``(value, memo) -> value cut to spec``, made once per spec (a walk of the
    spec per file would cost as much as the parse). ALL keeps a value, a dict keeps its keys
    (EACH: every key, by one spec), a one-item list applies its spec to every element. A
    value of another shape than the spec expects is kept as it is, for the command to judge."""
    if spec is ALL:
        return lambda value, memo: value
    if spec == SHARED:
        def shared(value, memo):
            if type(value) is not list:
                return value
            try:
                return memo.setdefault(tuple(value), value)
            except TypeError:  # an unhashable element: not a list of names
                return value
        return shared
    if isinstance(spec, list):
        inner = cutter(spec[0])
        return lambda value, memo: [inner(v, memo) for v in value] if type(value) is list else value
    if EACH in spec:
        each = cutter(spec[EACH])
        return lambda value, memo: {k: each(v, memo) for k, v in value.items()} if type(value) is dict else value
    keys = [(k, cutter(s)) for k, s in spec.items()]
    return lambda value, memo: {k: cut(value[k], memo) for k, cut in keys if k in value} \
        if type(value) is dict else value


def load_result(path: str, cut=None, memo: dict | None = None, post=None) -> Loaded:
    """One file, its result cut by ``cut`` (a cutter) where one is given, then made into what
    ``post(path, kind, result, memo)`` returns (a command's own compact record, made where
    the file was parsed, so that less crosses back from a worker)."""
    from kvmtune.host.inputs import read_input_stamped

    try:
        data, stamp = read_input_stamped(path, MAX_RESULT)
    except OSError as exc:
        return Loaded(path, None, None, f"unreadable: {exc.strerror or exc}", 0)
    try:
        obj = loads(data.decode())
    except ValueError as exc:  # UnicodeDecodeError is one
        return Loaded(path, None, None, f"not JSON: {exc}", stamp)
    result, why = judge(obj)
    if result is None:
        return Loaded(path, None, None, why, stamp)
    kind = "check" if "checks" in result else "guests"
    name = result["host"].get("hostname")
    name = name if isinstance(name, str) and name else None
    memo = {} if memo is None else memo
    if cut is not None:
        result = cut(result, memo)
    if post is not None:
        result = post(path, kind, result, memo)
    return Loaded(path, kind, result, None, stamp, name)


def _load_share(spec, post=None):
    cut = None if spec is ALL else cutter(spec)

    def work(paths: list[str]) -> list[Loaded]:
        memo: dict = {}
        return collector_paused(lambda: [load_result(p, cut, memo, post) for p in paths])
    return work


def collector_paused(fn):
    """``fn()`` with the cyclic garbage collector paused. The fleet commands run under it
    (report, migration, cpu-baseline): what they make holds no cycles, and with 10,000
    results alive the collector would walk them all again each time a million objects
    more are made, for nothing (0.3 s of 1 s)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return fn()
    finally:
        if paused:
            gc.enable()


def load_results(paths: list[str], spec=ALL, workers: int | None = None,
                 min_per_worker: int | None = None, post=None) -> list[Loaded]:
    """Every file under ``paths`` (kvmtune.host.inputs.collect_inputs), loaded and cut to
    ``spec`` (and made a record by ``post``: see load_result), in order; over the CPUs when
    there are enough files to pay for a fork."""
    from kvmtune.host.inputs import collect_inputs

    files = collect_inputs(paths)
    workers = cpus() if workers is None else workers
    least = MIN_PER_WORKER if min_per_worker is None else min_per_worker
    workers = max(1, min(workers, len(files) // max(1, least)))
    return fan_out(_load_share(spec, post), files, workers)


def newest_per_host(loaded: list[Loaded]) -> tuple[list[Loaded], list[dict]]:
    """One result per host and kind (check or guests): the newest file (by modification time,
    a later path on a tie) counts, the others are named in ``duplicates``. A result without a
    hostname is its own host."""
    newest: dict[tuple, tuple[int, int]] = {}
    keys = []
    for i, item in enumerate(loaded):
        key = (item.kind, item.hostname) if item.hostname else None
        keys.append(key)
        if key is not None and (key not in newest or (item.stamp, i) >= newest[key]):
            newest[key] = (item.stamp, i)
    kept, dropped = [], {}
    for i, (item, key) in enumerate(zip(loaded, keys)):
        if key is not None and newest[key][1] != i:
            dropped.setdefault(key, []).append(item.path)
        else:
            kept.append(item)
    duplicates = [{"host": key[1], "kind": key[0], "kept": loaded[newest[key][1]].path,
                   "left_out": paths} for key, paths in dropped.items()]
    return kept, duplicates
