"""KVM modules under /sys/module (built in or loaded) and their parameters.

/sys/module/<m>/parameters holds the *effective* values after KVM's hardware
setup (vmx_hardware_setup() turns ept off on CPUs without it), so it is the
truth; /proc/modules misses built-in KVM. What was *requested* comes from the
kernel command line and /etc/modprobe.d, so a mismatch can be explained.
"""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host.door import Host

MODULE_DIR = "sys/module"
MODPROBE_DIR = "etc/modprobe.d"


@record
class KvmModule:
    name: str
    builtin: bool  # built-in modules have no initstate file
    params: dict[str, str]


@record
class KvmModules:
    modules: tuple[KvmModule, ...] = ()
    requested: dict[str, dict[str, str]] = {}
    problems: tuple[str, ...] = ()
    captured: bool = True  # False: a snapshot without /sys/module

    def get(self, name: str) -> KvmModule | None:
        return next((m for m in self.modules if m.name == name), None)

    @property
    def backends(self) -> tuple[KvmModule, ...]:
        """The vendor or paravirtual backends: every kvm_* module (kvm_intel, kvm_amd, kvm_pvm...)."""
        return tuple(m for m in self.modules if m.name != "kvm")

    def to_json(self) -> dict:
        return {
            m.name: {"builtin": m.builtin, "params": dict(m.params)} for m in self.modules
        } | ({"requested": self.requested} if self.requested else {})


def is_kvm_module(name: str) -> bool:
    return name == "kvm" or name.startswith("kvm_")


def read_kvm_modules(host: Host, cmdline: list[tuple[str, str | None]]) -> KvmModules:
    """Modules under /sys/module, and what /etc/modprobe.d and the command line (already
    read: ``cmdline``) asked of them."""
    problems: list[str] = []
    modules = []
    for name in host.listdir(MODULE_DIR):
        if not is_kvm_module(name):
            continue
        base = f"{MODULE_DIR}/{name}"
        params: dict[str, str] = {}
        for param in host.listdir(f"{base}/parameters"):
            try:
                params[param] = host.read(f"{base}/parameters/{param}").strip()
            except HostError as exc:
                # Some parameters are root-only (mode 0200/0400).
                problems.append(f"/{base}/parameters/{param}: {exc.reason}")
        modules.append(KvmModule(name, not host.exists(f"{base}/initstate"), params))
    return KvmModules(tuple(modules), read_requested_params(host, cmdline, problems), tuple(problems),
                      captured=host.live or host.is_dir(MODULE_DIR))


def read_requested_params(host: Host, cmdline, problems: list[str]) -> dict[str, dict[str, str]]:
    """kvm*.param=value from the command line, and ``options kvm_* ...`` from modprobe.d."""
    requested: dict[str, dict[str, str]] = {}
    try:
        for name in host.listdir(MODPROBE_DIR):
            if name.endswith(".conf"):
                try:
                    _modprobe_options(host.read(f"{MODPROBE_DIR}/{name}"), requested)
                except HostError as exc:
                    problems.append(f"/{exc.rel}: {exc.reason}")
    except HostError as exc:
        problems.append(f"/{exc.rel}: {exc.reason}")
    for key, value in cmdline:
        module, dot, param = key.partition(".")
        if dot and is_kvm_module(module.replace("-", "_")):
            requested.setdefault(module.replace("-", "_"), {})[param] = value or "Y"
    return requested


def _modprobe_options(text: str, into: dict[str, dict[str, str]]) -> None:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 3 and words[0] == "options":
            module = words[1].replace("-", "_")
            if is_kvm_module(module):
                for opt in words[2:]:
                    key, _, value = opt.partition("=")
                    into.setdefault(module, {})[key] = value or "Y"
