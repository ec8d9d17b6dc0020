"""cpu.vulnerabilities reads mitigations= on the kernel command line and explains it (kernel-parameters.txt,
hw-vuln/attack_vector_controls.rst, Linux 6.17), instead of advising updates that cannot help."""

import pytest

from tests.fixtures.synthetic import host, write_tree

CMDLINE = "BOOT_IMAGE=/vmlinuz-6.18.0 root=/dev/sda1 ro quiet"


def _line(check_json, tmp_path, cmdline, vulnerable=False):
    files = host()
    files["proc/cmdline"] = cmdline + "\n"
    if vulnerable:
        files["sys/devices/system/cpu/vulnerabilities/spec_store_bypass"] = "Vulnerable\n"
    _, report = check_json(write_tree(str(tmp_path / "h"), files), "--only", "cpu.vulnerabilities")
    return report["checks"][0]


def test_guest_vectors_turned_off_are_named_and_the_hint_is_the_command_line(check_json, tmp_path):
    c = _line(check_json, tmp_path, f"mitigations=auto,no_guest_host,no_guest_guest {CMDLINE}", vulnerable=True)
    assert c["status"] == "warn"
    assert "mitigations=auto,no_guest_host,no_guest_guest" in c["detail"]
    assert "guests attacking this host, guests attacking each other" in c["detail"]
    assert "set 'mitigations=auto' on the kernel command line" in c["hint"]
    assert "Update the CPU microcode" not in c["hint"]
    assert c["data"]["mitigations"]["guest_vectors_off"] == ["no_guest_host", "no_guest_guest"]


def test_a_guest_vector_off_warns_even_with_nothing_vulnerable_today(check_json, tmp_path):
    c = _line(check_json, tmp_path, f"{CMDLINE} mitigations=auto,no_user_user,no_cross_thread")
    assert c["status"] == "warn" and "none vulnerable now" in c["detail"]
    assert "attacks across SMT siblings" in c["detail"]
    assert "'mitigations=auto,no_user_user'" in c["hint"]  # only what guests need comes back


def test_mitigations_off_is_named_as_the_cause(check_json, tmp_path):
    c = _line(check_json, tmp_path, f"{CMDLINE} mitigations=off", vulnerable=True)
    assert c["status"] == "warn" and "every optional mitigation" in c["detail"]
    assert c["hint"].startswith("Remove 'mitigations=off'")


@pytest.mark.parametrize("value,said", [
    ("auto,no_user_kernel", "mitigations off for host processes attacking the kernel"),
    ("auto,nosmt", "every mitigation on"),
    ("auto", "every mitigation on"),
    ("auto,no_guest_hots", "'no_guest_hots', which the kernel does not know"),
])
def test_what_leaves_guests_protected_passes_and_is_explained(check_json, tmp_path, value, said):
    c = _line(check_json, tmp_path, f"{CMDLINE} mitigations={value}")
    assert c["status"] == "pass" and said in c["detail"] and c["hint"] is None


def test_without_mitigations_on_the_line_the_advice_is_unchanged(check_json, tmp_path):
    c = _line(check_json, tmp_path, CMDLINE, vulnerable=True)
    assert c["detail"] == "vulnerable: spec_store_bypass" and "Update the CPU microcode" in c["hint"]
    assert "mitigations" not in c["data"]


def test_the_last_mitigations_word_wins_as_in_the_kernel():
    from kvmtune.checks.mitigations import read_mitigations

    assert read_mitigations([("mitigations", "off"), ("mitigations", "auto")])[0] == "auto"
