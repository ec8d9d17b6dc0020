"""The command line, declared once: every command, option, default and help text.

The fast parser (cli_parse), the typer application (cli), the help screens and the man
page (render/help_text) are all made from this table; a test walks the click tree typer
builds from it and checks it option by option. Plain data: importing it costs nothing.
"""

from __future__ import annotations


class Opt:
    """An option. kind: ``flag`` (sets field to value), ``value`` (one argument) or ``list``
    (repeatable, comma-separated items allowed by the command)."""

    __slots__ = ("names", "field", "kind", "help", "metavar", "value", "choices", "param")

    def __init__(self, names: str, field: str, help: str, kind: str = "flag", metavar: str | None = None,
                 value=True, choices: tuple[str, ...] | None = None, param: str | None = None):
        self.names = tuple(names.split("/"))
        self.field, self.kind, self.help, self.metavar = field, kind, help, metavar
        self.value, self.choices = value, choices
        # The typer parameter's name: unique within a command (--json and --format share a field).
        self.param = param or self.names[-1].lstrip("-").replace("-", "_")


class Cmd:
    __slots__ = ("name", "help", "options_class", "runner", "options", "positional", "fixed", "effect")

    def __init__(self, name: str, help: str, options_class: str, runner: str, options: list[Opt],
                 positional: tuple[str, str, str] | None = None, fixed: dict | None = None, effect: str = "reads"):
        self.name, self.help, self.options_class, self.runner = name, help, options_class, runner
        self.options, self.fixed, self.effect = options, fixed or {}, effect
        # (field, METAVAR, help); a field ending in "*" takes one or more words, "?" zero or one.
        self.positional = positional

    @property
    def takes_root(self) -> bool:
        """Whether --root means anything to this command: the parser and --help both ask this."""
        return self.effect in ROOTED

    def option(self, name: str) -> Opt | None:
        return next((o for o in self.options if name in o.names), None)


ROOT = Opt("--root", "root", "Read (and change) the host tree under DIR instead of / (a snapshot: "
           "no ioctls, no mounts).", "value", "DIR")
VERSION = "--version"
COMPLETION = (("--install-completion", "Install shell completion for the current shell (bash, zsh, fish)."),
              ("--show-completion", "Print the completion script for the current shell, to install it by hand."))
EFFECTS = {
    "reads": "Reads the host; with --root, the snapshot under DIR.",
    "changes": "Changes the host; with --root, the tree under DIR (no ioctls, no mounts).",
    "files": "Reads only the files named; never the host.",
    "captures": "Reads the host (with --root, the tree under DIR) and writes only under DIR or the tar file.",
    "none": "Reads nothing but kvmtune's own data.",
    "measures": "Runs guests on the live host through /dev/kvm and puts back what it changed; no --root.",
}
# The effects that read or change a host, and so may be pointed at a tree with --root.
ROOTED = ("reads", "changes", "captures")
# Why --root is refused, by effect.
NO_ROOT = {
    "files": "reads only the files named, never a host",
    "none": "reads no host",
    "measures": "measures the running kernel through /dev/kvm; a snapshot has no kernel to measure",
}

JSON = Opt("--json", "json", "Exactly one JSON object on stdout (messages go to stderr).")
DIFF = Opt("--diff", "diff", "Show before/after of every value and persisted file.")
NO_PERSIST = Opt("--no-persist", "persist", "The running kernel only: no boot-time files.", value=False)
FORCE = Opt("--force", "force", "Allow huge pages to eat into the safe memory reserve.")
WAIT = Opt("--wait", "wait", "Wait for another apply/rollback to finish instead of failing.")
PROFILE = ("profile", "PROFILE", "A shipped profile name (see 'kvmtune profiles') or a path to a YAML file.")
APPLY = "kvmtune.commands.apply:ApplyOptions"
PATHS = "kvmtune.commands.report:PathsOptions"

COMMANDS = {c.name: c for c in (
    Cmd("check", "Judge this host's readiness for KVM guests. Exit 0 ready, 1 not ready (or not judged), "
        "2 bad usage, 3 internal error, 4 not permitted.",
        "kvmtune.commands.check:CheckOptions", "kvmtune.commands.check:run_check", [
            Opt("--json", "format", "One JSON object on stdout (the same as --format json).", value="json",
                param="json_"),
            Opt("--format", "format", "Output format: text, json, prometheus (node_exporter textfile; "
                "use with --output), or nfd (Node Feature Discovery labels; judges every intent).", "value",
                "FORMAT", choices=("text", "json", "prometheus", "nfd")),
            Opt("-q/--quiet", "quiet", "Print only what does not pass."),
            Opt("--strict", "strict", "A warning or unknown also means not ready (exit 1)."),
            Opt("--for", "intents", "Also judge readiness for these workloads: passthrough, sriov, pinned, migration (repeat or "
                "comma-separate; general, plain check, always holds).", "list", "INTENTS", param="for_"),
            Opt("--only", "only", "Run only these check ids or areas (repeat or comma-separate).", "list", "IDS"),
            Opt("--skip", "skip", "Skip these check ids or areas.", "list", "IDS"),
            Opt("--as-user", "as_user", "Also check /dev/kvm access and the memlock limit for USER (e.g. "
                "libvirt-qemu).", "value", "USER"),
            Opt("-o/--output", "output", "Write the report to PATH atomically.", "value", "PATH"),
        ]),
    Cmd("apply", "Make this host match a profile, now and after reboot. Exit 0 success, 1 failed "
        "(undone), 2 invalid profile, 4 not permitted, 5 busy.", APPLY, "kvmtune.commands.apply:run_apply", [
            Opt("--check", "check", "Plan only: print what would change and write nothing."),
            DIFF, JSON, NO_PERSIST, FORCE,
            Opt("--keep-partial", "keep_partial", "If a change fails, keep the changes made before it."),
            WAIT,
            Opt("--resume", "resume", "Carry on after an interrupted apply (instead of 'kvmtune rollback')."),
        ], positional=PROFILE, effect="changes"),
    Cmd("plan", "Show what 'apply' would change (the same as 'apply --check'); writes nothing.", APPLY,
        "kvmtune.commands.apply:run_apply", [DIFF, JSON, NO_PERSIST, FORCE], positional=PROFILE,
        fixed={"check": True}),
    Cmd("verify", "Report every setting of a profile that drifted, live and persisted, and who changed it. "
        "Exit 1 on drift.", APPLY, "kvmtune.commands.apply:run_verify",
        [DIFF, JSON, NO_PERSIST, Opt("--force", "force", "Accept a profile that was applied with --force."),
         Opt("--format", "format", "Output format: text, json, or prometheus (node_exporter textfile; use with "
             "--output).", "value", "FORMAT", choices=("text", "json", "prometheus")),
         Opt("-o/--output", "output", "Write the output to PATH atomically.", "value", "PATH")],
        positional=("profile?", "PROFILE", "A shipped profile name or a path (default: the profile applied last, "
                    "from kvmtune's journal).")),
    Cmd("rollback", "Restore every value and file kvmtune changed to what was there before kvmtune.", APPLY,
        "kvmtune.commands.apply:run_rollback",
        [Opt("--check", "check", "Show what would be restored; write nothing."), DIFF, JSON, WAIT],
        effect="changes"),
    Cmd("snapshot", "Capture exactly what check reads of this host (and a manifest) into DIR or a tar "
        "file, to judge it elsewhere with --root.", "kvmtune.commands.snapshot:SnapshotOptions",
        "kvmtune.commands.snapshot:run_snapshot", [
            Opt("--tar", "tar", "Write a tar file instead (.tar, .tar.gz, .tgz or .tar.xz).", "value", "FILE"),
            Opt("--json", "json", "The manifest as one JSON object on stdout."),
        ], positional=("directory?", "DIR", "A new or empty directory to capture into."), effect="captures"),
    Cmd("bench", "Measure through KVM what the tuning buys here: guest memory walks on 4K, THP and hugetlb "
        "backings, VM exit costs, KSM, how quiet the CPUs are. Live host only; puts back all it changes. Exit 130 if interrupted.",
        "kvmtune.commands.bench:BenchOptions", "kvmtune.commands.bench:run_bench_command", [
            Opt("--quick", "quick", "A 64M working set and a 10 s budget for the rounds (default 60 s)."),
            Opt("--only", "only", "Run only these sections: memory, exits, native, ksm, noise.", "list", "SECTIONS"),
            Opt("--size", "size", "The working set per backing, e.g. 512M or 2G (default 1G; --quick 64M).",
                "value", "SIZE"),
            Opt("--rounds", "rounds", "The least paired rounds (default 6, budget allowing); more follow "
                "until every ratio's interval is within +-5 % or the budget ends.", "value", "N"),
            Opt("--grow-pools", "grow_pools", "Grow huge page pools for the run, and give back exactly what "
                "was added."),
            Opt("--ksm", "ksm", "Also time KSM merging guest memory (switches KSM on for the run)."),
            Opt("--json", "format", "One JSON object on stdout (the same as --format json).", value="json",
                param="json_"),
            Opt("--format", "format", "Output format: text, json, or prometheus.", "value", "FORMAT",
                choices=("text", "json", "prometheus")),
            Opt("-o/--output", "output", "Also write the result as JSON to PATH atomically (for --compare; "
                "with --format prometheus, the metrics instead).", "value", "PATH"),
            Opt("--compare", "compare", "Compare two results: --compare BEFORE.json AFTER.json.", "value",
                "BEFORE"),
            Opt("--cpus", "cpus", "The noise section's CPUs (default: the isolated ones, else every online "
                "CPU).", "value", "LIST"),
            Opt("--duration", "duration", "The noise section's window in seconds (default 10; --quick 3).",
                "value", "SECONDS"),
        ], positional=("after?", "AFTER", "With --compare: the later result."), effect="measures"),
    Cmd("guests", "The running KVM guests and whether they use what the host was tuned for: huge pages, "
        "NUMA locality, pinning, KSM.", "kvmtune.commands.guests:GuestsOptions", "kvmtune.commands.guests:run_guests", [
            Opt("--json", "format", "One JSON object on stdout (the same as --format json).", value="json",
                param="json_"),
            Opt("--format", "format", "Output format: text, json, or prometheus (one series per guest).", "value",
                "FORMAT", choices=("text", "json", "prometheus")),
            Opt("--strict", "strict", "Exit 1 when a finding warns."),
            Opt("-o/--output", "output", "Write the output to PATH atomically.", "value", "PATH"),
        ]),
    Cmd("devices", "Every PCI function by IOMMU group with its passthrough verdict (alone, with-group, never, "
        "no-iommu); with ADDRESS, the steps to give that device to a guest. Exit 0; with ADDRESS, 1 when it "
        "cannot be passed.", "kvmtune.commands.devices:DevicesOptions", "kvmtune.commands.devices:run_devices", [
            Opt("--json", "format", "One JSON object on stdout: devices and groups.", value="json"),
        ], positional=("address?", "ADDRESS", "A PCI address (0000:01:00.0 or 01:00.0).")),
    Cmd("partition", "The split of this host's CPUs between housekeeping and pinned guests (whole cores, "
        "every node keeps some), with the kernel arguments, nova.conf and libvirt settings to match.",
        "kvmtune.commands.partition:PartitionOptions", "kvmtune.commands.partition:run_partition", [
            Opt("--housekeeping-per-node", "housekeeping_per_node", "Whole cores kept for the host on every "
                "NUMA node (default 1).", "value", "N"),
            Opt("--isolated", "isolated", "Check this CPU list as the isolated set instead of computing one.",
                "value", "CPUS"),
            JSON,
        ]),
    Cmd("watch", "Verify the profile applied last (or PROFILE) and report drift: metrics for node_exporter and "
        "a system journal line per drifted target; --reapply puts drifted runtime knobs back; --install runs it "
        "from a systemd timer. Exit 0 in place, 1 drift remains.", "kvmtune.commands.watch:WatchOptions",
        "kvmtune.commands.watch:run_watch", [
            Opt("--once", "once", "One pass: verify, the memory policy where the profile has one, metrics, log."),
            Opt("--reapply", "reapply", "Put drifted runtime knobs back through the engine (journaled, locked, read "
                "back); never files or boot-time settings. Off by default."),
            Opt("--install", "install", "Write a systemd service and timer that run 'watch --once' (journaled: "
                "rollback removes them); enable them where systemd runs, else print a cron line."),
            Opt("--interval", "interval", "With --install: how often, in minutes or hours (default 5min).", "value",
                "INTERVAL"),
            Opt("--metrics-dir", "metrics_dir", "Directory for kvmtune-verify.prom and the memory policy's metrics "
                "(default /var/lib/node_exporter/textfile; skipped, saying so, where it does not exist).", "value",
                "DIR"),
            JSON, WAIT,
        ], positional=("profile?", "PROFILE", "A shipped profile name or a path (default: the profile applied "
                       "last, from kvmtune's journal)."), effect="changes"),
    Cmd("profiles", "List the shipped profiles.", "kvmtune.commands.apply:ProfilesOptions",
        "kvmtune.commands.apply:run_profiles", [JSON], effect="none"),
    Cmd("report", "The fleet at a glance from many hosts' check results. Exit 1 if any host is not ready "
        "or unreadable.", PATHS, "kvmtune.commands.report:run_report", [
            JSON, Opt("--strict", "strict", "A warning or unknown also keeps a host from being ready.")],
        positional=("paths*", "PATH...", "check --json results: files, or directories of them."), effect="files"),
    Cmd("cpu-models", "Which named guest CPU models this host can run, the best per vendor, and the "
        "-cpu/libvirt strings.", "kvmtune.commands.cpu:CpuModelsOptions", "kvmtune.commands.cpu:run_cpu_models", [
            JSON,
            Opt("--assume-undecided", "assume_undecided", "Count features the source cannot decide as present."),
            Opt("--source", "source", "auto (KVM on a live host, else cpuinfo), kvm or cpuinfo.", "value",
                "SOURCE", choices=("auto", "kvm", "cpuinfo")),
        ]),
    Cmd("cpu-baseline", "The newest named CPU model every given host can run (safe for live migration), and "
        "who holds it back.", PATHS, "kvmtune.commands.cpu:run_cpu_baseline", [
            JSON,
            Opt("--assume-undecided", "assume_undecided", "Count features a source cannot decide as present."),
        ], positional=("paths*", "RESULT...", "check --json results: files or directories."), effect="files"),
    Cmd("migration", "The fleet's live-migration domains (hosts a guest can move between both ways), what keeps "
        "each other host out, and the one-way moves. Exit 1 if a host is outside every domain or unreadable.",
        "kvmtune.commands.migration:MigrationOptions", "kvmtune.commands.migration:run_migration", [
            JSON,
            Opt("--strict", "strict", "A warning (microcode or mitigations that differ in a domain) also means exit 1."),
            Opt("--guest", "guest", "Answer for one guest shape: its CPU model, RAM and page size, e.g. "
                "Cascadelake-Server-v5,64G,1G.", "value", "MODEL,RAM,PAGESIZE"),
        ], positional=("paths*", "RESULT...", "check --json results: files or directories."), effect="files"),
)}
