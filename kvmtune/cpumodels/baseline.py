"""The newest named model every given host can run: the safe CPU for live migration.

Hosts are judged from their check results (KVM's answers where the result
carries them, cpuinfo otherwise). A fleet is mostly identical machines, so
verdicts are computed once per distinct feature source. The model must also be one
every host's QEMU has (host.qemu of the result, judged by the table of its release);
a result that does not say which QEMU it has allows only models some QEMU release has.
"""

from __future__ import annotations

from kvmtune.cpumodels import table
from kvmtune.cpumodels.qemu import from_version, startable
from kvmtune.cpumodels.verdict import (USABLE, KvmSource, evaluate, extra_features,
                                        libvirt_cpu, model_family, present_features, qemu_cpu,
                                        source_from_facts)


def _signature(source) -> tuple:
    if isinstance(source, KvmSource):
        return ("kvm", source.present)
    return ("cpuinfo", source.flags, source.bugs)


def baseline(hosts: list[tuple[str, dict]], assume_undecided: bool = False) -> dict:
    """hosts: (name, host facts as in check --json). The baseline and who holds it back."""
    if not hosts:
        return {"baseline": None, "hosts": 0, "warnings": ["no hosts"]}
    by_vendor_string = {v: k for k, v in table.vendors().items()}
    cache: dict[tuple, tuple] = {}
    judged = []
    for name, facts in hosts:
        cpu = facts.get("cpu") or {}
        source = source_from_facts(cpu)
        key = _signature(source)
        if key not in cache:
            cache[key] = (source, {v.name: v for v in evaluate(source, assume_undecided)})
        judged.append((name, by_vendor_string.get(cpu.get("vendor")), cache[key]))
    qemus, counts = {}, {}  # one judgement per distinct QEMU release series
    for _, facts in hosts:
        q = facts.get("qemu") if isinstance(facts.get("qemu"), dict) else {}
        key = (q.get("installed"), q.get("series"))
        if key not in qemus:
            qemus[key] = from_version(*key)
        counts[key] = counts.get(key, 0) + 1
    vendors = {vendor for _, vendor, _ in judged}
    warnings = []
    for key, q in qemus.items():
        # A host with no QEMU is no doubt about QEMU; one whose QEMU's models are not known is.
        if q.installed is not False and not q.known:
            n = counts[key]
            warnings.append(f"{n} host{'s' if n > 1 else ''}: {q.source}: the baseline is a model some QEMU "
                            "release has, not one proven there")
    if len(vendors) > 1:
        warnings.append(f"mixed CPU vendors ({', '.join(sorted(str(v) for v in vendors))}): only the "
                        "vendor-neutral models can move between them")
        allowed = {None}
    else:
        allowed = {None} | vendors
    order = [m for m in table.models() if m["vendor"] in allowed]
    distinct = list(cache.values())  # one verdict map per distinct feature source, not per host
    best = None
    for model in order:
        if all(verdicts[model["name"]].status == USABLE for _, verdicts in distinct) \
                and all(startable(q, model["name"]) for q in qemus.values()):
            best = model
    sources = {"kvm": 0, "cpuinfo": 0}
    for _, _, (source, _) in judged:
        sources[source.kind] += 1
    out = {"baseline": best["name"] if best else None, "vendor": best["vendor"] if best else None,
           "hosts": len(judged), "sources": sources, "warnings": warnings, "extras": [], "held_back": None}
    if best is None:
        out["warnings"].append("no named model runs on every host")
        return out
    shared = None
    for source, _ in distinct:
        present = present_features(source)
        shared = present if shared is None else shared & present
    extras = extra_features(best["name"], shared or set())
    out.update(extras=extras, qemu=qemu_cpu(best["name"], extras), libvirt=libvirt_cpu(best["name"], extras),
               qemu_models_from=sorted({q.source for q in qemus.values()}))
    runnable = [m for m in order if all(startable(q, m["name"]) for q in qemus.values())]
    out["held_back"] = _held_back(judged, distinct, runnable, best["name"])
    return out


def _held_back(judged, distinct, order, best: str):
    """The next newer model some host can run (of those every host's QEMU has), and what each
    host that cannot run it lacks."""
    names = [m["name"] for m in order]
    for model in order[names.index(best) + 1:]:
        if model_family(model["name"]) == model_family(best):
            continue
        if any(verdicts[model["name"]].status == USABLE for _, verdicts in distinct):
            statuses = [(name, verdicts[model["name"]]) for name, _, (_, verdicts) in judged]
            return {"model": model["name"],
                    "hosts": [{"name": name, "missing": list(v.missing), "undecided": list(v.undecided)}
                              for name, v in statuses if v.status != USABLE]}
    return None

