"""``kvmtune cpu-models`` and ``kvmtune cpu-baseline``."""

from __future__ import annotations

from kvmtune.commands import Options
from kvmtune.errors import EXIT_NOT_READY, EXIT_OK, UsageError


class CpuModelsOptions(Options):
    def __init__(self, root: str = "/", json: bool = False, assume_undecided: bool = False,
                 source: str = "auto"):
        self.root = root
        self.json = json
        self.assume_undecided = assume_undecided
        self.source = source



def host_source(opts: CpuModelsOptions):
    """(source, cpu, why KVM was not asked): KVM's answers on a live host whose /dev/kvm this
    user may open; cpuinfo otherwise (or if asked), saying why."""
    import os

    from kvmtune.cpumodels.verdict import CpuinfoSource, KvmSource, kvm_features
    from kvmtune.errors import HostError, Refused
    from kvmtune.host.door import Host
    from kvmtune.probe.cpu import read_cpu
    from kvmtune.probe.kvm_cpuid import read_kvm_cpuid

    if opts.source not in ("auto", "kvm", "cpuinfo"):
        raise UsageError(f"--source: expected auto, kvm or cpuinfo, got {opts.source!r}")
    if not os.path.isdir(opts.root):
        raise UsageError(f"--root: {opts.root} is not a directory")
    host = Host(opts.root)
    cpu = read_cpu(host)
    if cpu.arch != "x86_64":
        return None, cpu, None  # the named models are x86's: see not_applicable
    if opts.source == "cpuinfo":
        why = "--source cpuinfo was asked for"
    elif not host.live:
        if opts.source == "kvm":
            raise UsageError("--source kvm needs the live host (not --root)")
        why = "a snapshot (--root): only the live host's KVM can be asked"
    else:
        try:
            return KvmSource(kvm_features(read_kvm_cpuid(host))), cpu, None
        except HostError as exc:
            why = f"/dev/kvm: {exc.reason}" + (f" (as uid {os.getuid()})" if exc.exit_code == 4 else "")
            if opts.source == "kvm":
                raise Refused(f"--source kvm: {why}") from None
    if not cpu.flags:
        raise UsageError(f"cannot judge CPU models: {'; '.join(cpu.problems) or 'no CPU flags'}")
    return CpuinfoSource(cpu.flags, cpu.bugs), cpu, why


def host_qemu(opts: CpuModelsOptions):
    """(what QEMU is installed, which models it has): the table of its release where there
    is one, else (live host only) the binary's own list, asked once."""
    from kvmtune.cpumodels.qemu import from_binary, from_version, releases
    from kvmtune.errors import HostError
    from kvmtune.host.door import Host
    from kvmtune.probe.qemu import ask_cpu_models, read_qemu

    host = Host(opts.root)
    install = read_qemu(host)
    label = f"{install.package} {install.version}" if install.package else None
    models = from_version(install.installed, install.series, label)
    tabulated = any(r["series"] == install.series for r in releases())
    if install.binary and host.live and not tabulated:
        try:
            return install, from_binary(ask_cpu_models(host, install), "/" + install.binary, install.series)
        except (HostError, ValueError) as exc:
            models = models._replace(source=f"{models.source}; asking QEMU failed: {exc}")
    return install, models


def models_result(opts: CpuModelsOptions) -> dict:
    from kvmtune.cpumodels import table
    from kvmtune.cpumodels.qemu import in_releases, startable
    from kvmtune.cpumodels.verdict import (best_per_vendor, evaluate, extra_features, host_pick, libvirt_cpu,
                                           next_model, present_features, qemu_cpu)

    source, cpu, kvm_unavailable = host_source(opts)
    if source is None:
        return not_applicable(cpu)
    install, qemu = host_qemu(opts)
    verdicts = evaluate(source, opts.assume_undecided)
    best = best_per_vendor(verdicts, lambda name: startable(qemu, name))
    pick = host_pick(best, cpu.vendor)
    models = []
    for v in verdicts:
        models.append({**v.to_json(), "in_qemu": qemu.has(v.name), "qemu_releases": in_releases(v.name)})
    out = {"applicable": True, "source": source.kind, "kvm_unavailable": kvm_unavailable,
           "cpu": {"vendor": cpu.vendor, "model_name": cpu.model_name},
           "qemu": {**install.to_json(), "models_from": qemu.source, "models_known": qemu.known},
           "models": models, "best": best,
           "best_verified_by_kvm": source.kind == "kvm",  # False: usable by cpuinfo's word only
           "recommended": None, "next": None,
           "table": table.source()}
    if pick:
        extras = extra_features(pick, present_features(source))
        nxt = next_model(verdicts, pick)
        out["recommended"] = {"model": pick, "extras": extras, "qemu": qemu_cpu(pick, extras),
                              "libvirt": libvirt_cpu(pick, extras), "in_qemu": qemu.has(pick),
                              "qemu_releases": in_releases(pick)}
        if nxt:
            out["next"] = {"model": nxt.name, "missing": list(nxt.missing), "undecided": list(nxt.undecided),
                           "in_qemu": qemu.has(nxt.name)}
    return out


INSTEAD = {
    "aarch64": "host-passthrough in libvirt (QEMU: -cpu host, or -cpu max, which under KVM is the host CPU)",
    "ppc64": "host-passthrough in libvirt (QEMU: -cpu host), or a POWER compatibility mode "
             "(-machine pseries,max-cpu-compat=power9)",
    "s390x": "host-passthrough in libvirt (QEMU: -cpu host); for migration, host-model or a named IBM Z "
             "model (-cpu z15) that every host of the pool offers",
}


def not_applicable(cpu) -> dict:
    """Named CPU models are judged for x86 only: say so, and what to use on this architecture."""
    use = INSTEAD.get(cpu.arch, "host-passthrough in libvirt (QEMU: -cpu host)")
    return {"applicable": False, "arch": cpu.arch,
            "cpu": {"vendor": cpu.vendor, "model_name": cpu.model_name},
            "reason": f"named CPU models are judged for x86 hosts; this host is {cpu.arch}",
            "instead": use,
            "migration": "a guest given the host CPU migrates only to hosts with the same CPU "
                         "(same core type and features); keep a pool of identical hosts"}


def run_cpu_models(opts: CpuModelsOptions) -> int:
    out = models_result(opts)
    if opts.json:
        from kvmtune.render.json_out import write_json

        write_json(out)
    else:
        from kvmtune.render.cpu_text import render_models

        render_models(out)
    return EXIT_OK


def baseline_result(paths: list[str], assume_undecided: bool) -> dict:
    from kvmtune.cpumodels.baseline import baseline
    from kvmtune.fleet.load import ALL, CPU_FIELDS, load_results

    hosts, invalid = [], []
    for item in load_results(paths, {"host": {"hostname": ALL, "cpu": CPU_FIELDS, "qemu": ALL}}):
        if item.result is None:
            invalid.append({"path": item.path, "error": item.error})
        elif item.kind == "check":  # a guests result does not describe the CPU
            hosts.append((item.result["host"].get("hostname") or item.path, item.result["host"]))
    out = baseline(hosts, assume_undecided)
    out["invalid"] = invalid
    return out


def run_cpu_baseline(opts) -> int:
    from kvmtune.fleet.load import collector_paused

    out = collector_paused(lambda: baseline_result(opts.paths, opts.assume_undecided))
    if opts.json:
        from kvmtune.render.json_out import write_json

        write_json(out)
    else:
        from kvmtune.render.cpu_text import render_baseline

        render_baseline(out)
    return EXIT_OK if out["baseline"] and not out["invalid"] else EXIT_NOT_READY
