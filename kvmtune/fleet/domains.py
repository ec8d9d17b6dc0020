"""The partition of a fleet into migration domains: sets of hosts among which a guest moves
both ways. Pure: records in, groups out.

What a guest needs of the hosts it moves between (issue #21):
- one CPU vendor: Intel and AMD hosts never share a domain (their named models differ);
- one TSC frequency: a guest keeps the TSC frequency it was given. KVM runs it unscaled on a
  host within 250 ppm of that frequency (kvm's tsc_tolerance_ppm; KubeVirt's tolerance too),
  and anywhere else only with TSC scaling. A domain therefore has a frequency F, which its
  guests are given (libvirt's <timer name='tsc' frequency=...>), and every member is within
  250 ppm of F or scales. Two members may then be up to 500 ppm apart, and each runs F;
- one QEMU release series: a newer QEMU takes a guest from an older one, never the reverse,
  so hosts of different series can only move guests one way.
The CPU model is not a partition key: a domain's model is the newest one all its members
run (cpu-baseline's answer for them), so an older CPU lowers the model and does not split.

The partition, deterministic for a given set of hosts (the order of the files does not
matter): vendors are taken in name order. Within a vendor, the largest domain possible is
taken first, then the largest among the hosts left, and so on while one has two hosts or
more. A candidate domain is a (QEMU series, F) pair, with F one of the hosts' own
frequencies; its members are the hosts of that series within 250 ppm of F or with TSC
scaling. Ties go to the newer series, then to the F that most hosts have exactly, then to
the lower F. A host left alone belongs to no domain: migration says what excludes it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

TOLERANCE_PPM = 250


def within(khz: int | None, domain_khz: int | None) -> bool:
    """Whether a host of ``khz`` runs a guest given ``domain_khz`` without TSC scaling."""
    if khz is None or domain_khz is None:
        return False
    return abs(khz - domain_khz) * 1_000_000 <= TOLERANCE_PPM * domain_khz


def ppm(khz: int, domain_khz: int) -> int:
    return round(abs(khz - domain_khz) * 1_000_000 / domain_khz)


def partition(hosts: list) -> list[dict]:
    """hosts: FleetHost records fit to be judged (kvmtune.fleet.hosts.unfit says none).
    Domains, each {"vendor", "series", "tsc_khz", "hosts": [records sorted by name]}."""
    by_vendor: dict[str, list] = {}
    for h in sorted(hosts, key=lambda h: h.name):
        by_vendor.setdefault(h.vendor, []).append(h)
    domains = []
    for vendor in sorted(by_vendor):
        left = by_vendor[vendor]
        while len(left) >= 2:
            best = _largest(left)
            if best is None:
                break
            series, khz, members = best
            domains.append({"vendor": vendor, "series": series, "tsc_khz": khz,
                            "hosts": sorted(members, key=lambda h: h.name)})
            taken = {id(h) for h in members}
            left = [h for h in left if id(h) not in taken]
    return domains


def _largest(hosts: list):
    """(series, F, members) of the largest candidate domain among ``hosts`` (ties as the
    module says), or None if no candidate holds two hosts."""
    best_key, best = None, None
    for series in sorted({h.series for h in hosts}):
        group = [h for h in hosts if h.series == series]
        scaling = [h for h in group if h.tsc_scaling]
        fixed = sorted((h.tsc_khz, h.name, i) for i, h in enumerate(group)
                       if not h.tsc_scaling and h.tsc_khz is not None)
        freqs = [f for f, _, _ in fixed]
        at: dict[int, int] = {}  # hosts at exactly each frequency, scaling or not
        for h in group:
            if h.tsc_khz is not None:
                at[h.tsc_khz] = at.get(h.tsc_khz, 0) + 1
        candidates = sorted(at) or [None]
        for khz in candidates:
            if khz is None:
                lo = hi = 0
            else:
                span = TOLERANCE_PPM * khz // 1_000_000
                lo, hi = bisect_left(freqs, khz - span), bisect_right(freqs, khz + span)
            count = len(scaling) + hi - lo
            key = (count, series, at.get(khz, 0), -(khz or 0))
            if count >= 2 and (best_key is None or key > best_key):
                best_key, best = key, (series, khz, scaling, group, fixed, lo, hi)
    if best is None:
        return None
    series, khz, scaling, group, fixed, lo, hi = best  # members made once, for the winner only
    return series, khz, scaling + [group[i] for _, _, i in fixed[lo:hi] if within(group[i].tsc_khz, khz)]
