"""Capture what check and plan read of this host, so it can be judged elsewhere (``--root DIR``).

The capture is the read phases themselves (check's, and plan's for every shipped profile),
run on a Host that notes every path it reads, lists or looks at: exactly those are copied,
nothing else (no /etc/shadow, no process data). A file only looked at (a boot loader's tool
on PATH, an ACPI table) is captured empty: its presence is the fact. Files are copied as
read; directories that were listed get their subdirectories (empty unless something in them
was read); device nodes, which a copy cannot hold, go to the manifest with their type,
numbers, mode, owner and ACL, as does every path that could not be read and why. What only
a live kernel answers (the guest run, the invoking user's access) is not captured: a
snapshot says "not available in a snapshot".

Layout of DIR: the host's paths under DIR (``proc/cpuinfo``, ``sys/...``, ``etc/...``),
and ``kvmtune-snapshot.json``: {format, kvmtune, captured_at, hostname, kernel, files,
bytes, nodes: {path: {mode, uid, gid, major, minor, xattrs}}, unreadable: {path: reason},
absent: [paths looked for and not there],
live_only: [...]}.
"""

from __future__ import annotations

import base64
import os
import time

from kvmtune.errors import HostError
from kvmtune.host.door import Host
from kvmtune.host.reads import exact_text
from kvmtune.grammar import digits

LIVE_ONLY = ("kvm", "access", "virt_refusals", "cpuid", "kvm_features", "guests", "applied_profiles",
             "guest_limits")
# Never captured, whatever a reader asks for: another process's data, the kernel log.
PRIVATE = ("proc/self/", "proc/thread-self/", "dev/kmsg")


def _private(rel: str) -> bool:
    head, _, rest = rel.partition("/")
    return rel.startswith(PRIVATE) or (head == "proc" and digits(rest.split("/", 1)[0]))


class RecordingHost(Host):
    """A Host that notes what is read (with the text), listed and looked at."""

    def __init__(self, root: str = "/"):
        super().__init__(root)
        self.files: dict[str, str] = {}
        self.links: dict[str, str] = {}  # link -> target, for the manifest (a tree holds no links)
        self.listed: dict[str, list[str]] = {}
        self.looked: set[str] = set()
        self.unreadable: dict[str, str] = {}
        self.absent: set[str] = set()  # looked for and not there: the host lacks it, it was not missed

    def read_bytes(self, rel, limit=None):
        # Every read comes through here (read decodes it, plan's exact reads keep every byte; a PCI
        # config space that is not UTF-8 comes back byte for byte).
        try:
            data = super().read_bytes(rel) if limit is None else super().read_bytes(rel, limit)
        except HostError as exc:
            if exc.errno not in (2, 20):  # ENOENT, ENOTDIR: absent is not unreadable
                self.unreadable[rel] = exc.reason
            else:
                self.absent.add(rel)
            raise
        self.files[rel] = exact_text(data)  # written back with the same bytes
        return data

    def readlink(self, rel):
        target = super().readlink(rel)
        if target is not None:
            self.links[rel] = target
        return target

    def listdir(self, rel):
        names = super().listdir(rel)
        self.listed[rel] = names
        return names

    def read_file_state(self, rel, *args, **kwargs):
        state = super().read_file_state(rel, *args, **kwargs)
        if state is not None:
            self.files[rel] = state.text
        return state

    def shared_target(self, rel):
        # Plan's read of fstab asks where it could edit it; a capture edits nothing, it reads.
        return self.resolve(rel)

    def path_state(self, rel):
        self.looked.add(rel)
        return super().path_state(rel)

    def stat(self, rel):
        self.looked.add(rel)
        return super().stat(rel)

    def exists(self, rel):
        self.looked.add(rel)
        return super().exists(rel)

    def is_dir(self, rel):
        self.looked.add(rel)
        return super().is_dir(rel)


def capture(directory: str, root: str = "/") -> dict:
    """Read the host (or a tree, ``root``) as check does and write what was read under
    ``directory`` (which must not exist, or be empty). Returns the manifest."""
    from kvmtune import __version__
    from kvmtune.checks import HOST_FACTS, REGISTRY
    from kvmtune.checks.read import read_facts
    from kvmtune.host.atomic import check_output_dir, write_snapshot_tree

    check_output_dir(directory)
    host = RecordingHost(root)
    names = [n for c in REGISTRY.values() for n in c[3]] + list(HOST_FACTS)
    facts = read_facts(host, [n for n in dict.fromkeys(names) if n not in LIVE_ONLY])
    _read_for_planning(host)
    clock = facts.known("clock")
    if host.live and clock is not None and clock.log_read:
        # The kernel log is never copied: only the TSC and clocksource lines the clock reader
        # used, which a snapshot's clock reader reads back (kvmtune.probe.clock).
        from kvmtune.probe.clock import SNAPSHOT_LOG
        host.files[SNAPSHOT_LOG] = "".join(f"{line}\n" for line in clock.kept)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    nodes, dirs = {}, set(host.listed)
    for rel in sorted(host.looked):  # looked at (exists, stat): reproduce what was there
        st = host.stat(rel)
        if st is not None and st.device is not None:
            nodes[rel] = _node(host, rel, st)
        elif host.kind(rel) == "dir":
            dirs.add(rel)
        elif host.kind(rel) == "file" and rel not in host.files:
            host.files[rel] = ""  # only its presence was asked: not its content
    for rel, names_ in host.listed.items():  # a listing shows its subdirectories
        dirs.update(f"{rel}/{n}" if rel else n for n in names_ if host.kind(f"{rel}/{n}" if rel else n) == "dir")
    files = {rel: text for rel, text in host.files.items() if not _private(rel)}
    dirs = {d for d in dirs if not _private(d)}
    manifest = {
        "format": 1, "kvmtune": __version__, "captured_at": started,
        "hostname": (files.get("proc/sys/kernel/hostname") or "").strip() or None,
        "kernel": os.uname().release if host.live else host.manifest().get("kernel"),
        "files": len(files), "bytes": sum(len(t.encode("utf-8", "surrogateescape")) for t in files.values()),
        "links": {rel: target for rel, target in sorted(host.links.items()) if not _private(rel)},
        "nodes": nodes, "unreadable": dict(sorted(host.unreadable.items())),
        "absent": sorted(p for p in host.absent if not _private(p)),
        "live_only": ["the guest run through /dev/kvm (kvm.functional)", "the invoking user's access (kvm.access)",
                      "what KVM offers guests (host.cpu.kvm_features)",
                      "the kernel log (only its TSC and clocksource lines, in kvmtune-kernel-log)",
                      "the TSC frequency KVM reports (KVM_GET_TSC_KHZ)",
                      "the running guests (processes are never captured)"],
    }
    write_snapshot_tree(directory, sorted(dirs), files, manifest)
    return manifest


def _read_for_planning(host: Host) -> None:
    """What plan reads for each shipped profile: its sysctls and knobs, pools, mounts, CPUs,
    module parameters, kvmtune's files and the boot loader. A knob this host lacks is simply
    not captured, and plan on the snapshot says so."""
    from kvmtune.profile import load_profile, shipped_profiles
    from kvmtune.tune.facts import read_for_profile

    for name in shipped_profiles():
        try:
            read_for_profile(host, load_profile(name), persist=True)
        except HostError:
            pass  # what could not be read is in host.unreadable


def _node(host: Host, rel: str, st) -> dict:
    node = {"mode": st.mode, "uid": st.uid, "gid": st.gid, "major": st.device[0], "minor": st.device[1]}
    acl = host.getxattr(rel, "system.posix_acl_access")
    if acl:
        node["xattrs"] = {"system.posix_acl_access": base64.b64encode(acl).decode()}
    return node
