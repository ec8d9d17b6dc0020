"""Was the host disturbed while the bench measured: steal time, other tasks, the load average.

Counters are read at the start and the end of the measuring window (``/proc/stat``'s
aggregate ``cpu`` line, ``/proc/loadavg``) and this process's own CPU time is taken out,
so what remains is what others took: the hypervisor under this host (steal) and the other
tasks on it. On two CPUs with the bench busy on one, "others" is the other CPU's busy share.
Reading changes nothing; judging is pure.
"""

from __future__ import annotations

import os

from kvmtune.errors import HostError
from kvmtune.grammar import digits


STEAL_DISTURBED_PCT = 5.0  # a hypervisor taking 1 tick in 20 moves a walk's time visibly
OTHERS_DISTURBED_PCT = 25.0  # other tasks busy a quarter of the CPUs the bench leaves them
# /proc/stat cpu fields (proc(5)): user nice system idle iowait irq softirq steal guest guest_nice;
# guest time is already counted in user, so it is left out of the total.
BUSY = (0, 1, 2, 5, 6, 7)
IDLE = (3, 4)
STEAL = 7


def parse_cpu_line(text: str) -> tuple[int, ...]:
    """The aggregate ``cpu`` line's first eight counters, in USER_HZ ticks."""
    for line in text.split("\n"):
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = tuple(int(v) for v in fields[1:9] if digits(v))
            if len(values) == 8:
                return values
    raise ValueError("no aggregate cpu line in /proc/stat")


def parse_load(text: str) -> float | None:
    fields = text.split()
    try:
        return float(fields[0]) if fields else None
    except ValueError:
        return None


class Window:
    """Counters at the start of the measuring window; ``end`` reads them again and judges."""

    def __init__(self, host):
        self.host = host
        self.cpu = self._read()
        self.own = _own_cpu_s()

    def _read(self) -> tuple[int, ...] | None:
        try:
            return parse_cpu_line(self.host.read_optional("proc/stat") or "")
        except (ValueError, HostError):  # unreadable counters: interference unknown, reported as null
            return None

    def end(self, cpus: int) -> dict:
        after = self._read()
        try:
            load = parse_load(self.host.read_optional("proc/loadavg") or "")
        except HostError:
            load = None
        own = _own_cpu_s() - self.own
        return judge(self.cpu, after, own * os.sysconf("SC_CLK_TCK"), load, cpus)


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def judge(before, after, own_ticks: float, load: float | None, cpus: int) -> dict:
    """steal_pct, others_busy_pct, load_1m, disturbed and the reasons, from two counter readings."""
    out = {"steal_pct": None, "others_busy_pct": None, "load_1m": load, "disturbed": False, "reasons": []}
    if before is not None and after is not None:
        delta = [b - a for a, b in zip(before, after)]
        total = sum(delta[i] for i in BUSY + IDLE)
        if total > 0:
            out["steal_pct"] = round(100 * delta[STEAL] / total, 1)
            busy = sum(delta[i] for i in BUSY) - delta[STEAL] - own_ticks
            left = total - delta[STEAL] - own_ticks
            out["others_busy_pct"] = round(max(0.0, 100 * busy / left), 1) if left > 0 else None
    if out["steal_pct"] is not None and out["steal_pct"] >= STEAL_DISTURBED_PCT:
        out["reasons"].append(f"the hypervisor took {out['steal_pct']:g} % of the CPU time (steal)")
    if out["others_busy_pct"] is not None and out["others_busy_pct"] >= OTHERS_DISTURBED_PCT:
        out["reasons"].append(f"other tasks kept {out['others_busy_pct']:g} % of the CPUs the bench left "
                              "them busy")
    # The bench itself is one runnable task; more than one per CPU beyond it means a queue.
    if load is not None and load - 1 >= cpus:
        out["reasons"].append(f"the load average was {load:g} on {cpus} CPUs")
    out["disturbed"] = bool(out["reasons"])
    return out


