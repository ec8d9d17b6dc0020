"""Mutation tests: take each safety mechanism out of a copy of kvmtune and see a test fail.

A mechanism nobody would notice missing is not protected. Each mutant names the line
that is the mechanism (the test fails if the line is gone, so a refactor must update
it here), what replaces it, and the tests that must then fail.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAFETY = "tests/test_engine_safety.py::"
BENCH = "tests/test_bench_journal.py::"
WRITES = "tests/test_engine_writes.py::"
RESOURCES = "tests/test_resources.py::"

MUTANTS = {
    "read-back": ("kvmtune/tune/knob.py", "got = self.read(host)  # the kernel's answer, not the write's",
                  "got = self.after", [SAFETY + "test_read_back_catches_a_kernel_that_kept_its_value"]),
    "re-read before write": ("kvmtune/tune/knob.py",
                             "current = self.read(host)  # just before writing: another tool may have set it",
                             "current = self.before",
                             [SAFETY + "test_a_value_set_since_the_plan_is_not_written_again"]),
    "journal before the first write": ("kvmtune/tune/engine.py",
                                       "journal_mod.save(host, journal)  # the originals are on disk before the first write",
                                       "pass", [SAFETY + "test_the_journal_holds_every_original_before_the_first_write"]),
    "atomic write": ("kvmtune/host/atomic.py", 'tmp = f".{name}{TEMP_SUFFIX}"', "tmp = name",
                     [SAFETY + "test_a_write_that_fails_half_way_leaves_the_old_file_whole"]),
    "fstab ownership": ("kvmtune/tune/persist.py", "foreign = foreign_entries(current, {p for p, _ in mounts}, proof)",
                        "foreign = []", [SAFETY + "test_a_foreign_fstab_line_for_the_same_mount_is_never_touched"]),
    "fstab ownership proof": ("kvmtune/tune/lines.py", "had = Counter(base[i + 1] for i in pairs(base, mark, managed))",
                              "had = Counter()",
                              ["tests/test_engine_bytes.py::test_kvmtune_shaped_lines_without_a_record_are_left_and_named",
                               "tests/test_bytes_properties.py::test_fstab_edits_keep_every_byte_and_rollback_is_exact"]),
    "count of the lines kvmtune added": ("kvmtune/tune/lines.py", "elif cap is None or cap[entry] > 0:", "elif True:",
                                         ["tests/test_bytes_properties.py::"
                                          "test_an_administrators_copy_of_kvmtunes_fstab_line_stays_after_rollback"]),
    "allow-list": ("kvmtune/host/changes.py", "if not owned.allows(op, rel):", "if False:",
                   [SAFETY + "test_the_host_refuses_what_kvmtune_does_not_own"]),
    "no write through a link": ("kvmtune/host/changes.py", "            raise OSError(errno.ELOOP, LINK_REFUSED)",
                                "            pass",
                                [SAFETY + "test_the_host_never_writes_through_a_link"]),
    "the lock": ("kvmtune/host/mounts.py", "fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))", "pass",
                 ["tests/test_apply.py::test_lock_refuses_a_second_apply"]),
    "written paths walked component by component": (
        "kvmtune/host/changes.py", "        dir_fd = self._walk_nofollow(head)",
        "        dir_fd = os.open(self.real(head) if head else self.root, os.O_RDONLY | os.O_DIRECTORY)",
        [WRITES + "test_the_host_resolves_every_written_component_without_following_links"]),
    "links refused before the run": ("kvmtune/tune/engine.py", "            link = host.path_state(rel).link",
                                     "            link = None",
                                     [WRITES + "test_a_linked_directory_on_a_knob_path_is_never_written_through"]),
    "snapshot tar written atomically": ("kvmtune/host/atomic.py", "    atomic_write(tar_path, buffer.getvalue())",
                                        "    open(tar_path, 'wb').write(buffer.getvalue())",
                                        [WRITES + "test_snapshot_tar_never_follows_a_link_at_its_name"]),
    "sysctl records bound to the drop-in": ("kvmtune/tune/binding.py", "        if c.name not in bound:",
                                            "        if False:",
                                            [WRITES + "test_rollback_writes_no_sysctl_that_kvmtunes_drop_in_does_not_name"]),
    "restore lines bind only under kvmtune's seal": (
        "kvmtune/tune/binding.py", "        if is_ours(found):  # a restore line counts only under kvmtune's seal",
        "        if True:", [WRITES + "test_a_restore_line_binds_only_inside_kvmtunes_sealed_file"]),
    "the drop-in names the sysctls a later profile dropped": (
        "kvmtune/tune/persist.py", "    dropin = dropin + restore_line(kept) if dropin else None", "    pass",
        [WRITES + "test_a_sysctl_a_later_profile_drops_stays_bound"]),
    "a --no-persist apply names its sysctls under /run": (
        "kvmtune/tune/sysctl.py", "    if ctx.persist:  # the drop-in names them (tune.persist)",
        "    if True:", [WRITES + "test_a_sysctl_is_bound_by_kvmtunes_drop_in"]),
    "state size cap": ("kvmtune/tune/journal.py", "MAX_STATE = 16 << 20", "MAX_STATE = 1 << 40",
                       [RESOURCES + "test_state_file_that_is_not_a_file_or_too_big"]),
    "drop-in size cap": ("kvmtune/host/reads.py", "def read_file_state(self, rel: str, limit: int = MAX_READ)",
                         "def read_file_state(self, rel: str, limit: int = 1 << 40)",
                         [RESOURCES + "test_own_drop_in_that_is_not_a_file_or_too_big"]),
    "own files opened non-blocking": ("kvmtune/host/reads.py",
                                      "os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)",
                                      "os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)",
                                      [RESOURCES + "test_own_drop_in_that_is_not_a_file_or_too_big"]),
    "cpu list total cap": ("kvmtune/host/cpulist.py", "        if len(out) + end - start >= limit:",
                           "        if False:", [RESOURCES + "test_partition_isolated_is_bounded_in_total"]),
    "journal validation": ("kvmtune/tune/journal.py", "        check_record(key, record)", "        pass",
                           ["tests/test_engine_paths.py::test_tampered_state_is_refused_before_rollback_acts"]),
    "undo read back": ("kvmtune/tune/engine.py", "            kept = _not_back(host, {k: journal.records[k] for k in added})",
                       "            kept = set()",
                       ["tests/test_engine_leftovers.py::test_a_first_run_whose_undo_fails_keeps_the_record_of_what_stayed_changed",
                        "tests/test_engine_leftovers.py::test_an_undo_that_reports_success_but_did_not_put_it_back_keeps_the_record"]),
    "created directories deepest first": ("kvmtune/tune/created_dirs.py",
                                          "key=lambda d: (d.count(\"/\"), d), reverse=True)", "key=str)",
                                          ["tests/test_engine_leftovers.py::"
                                           "test_one_rollback_removes_the_directories_of_every_run_deepest_first"]),
    "kind declaration checked": ("kvmtune/tune/registry.py", "        if _owner(mro, piece, Change) is None:\n"
                                 "            raise TypeError(f\"{cls.__name__} does not define", "        if False:\n"
                                 "            raise TypeError(f\"{cls.__name__} does not define",
                                 ["tests/test_registry.py::test_a_kind_missing_a_piece_of_its_declaration_is_refused"]),
    "ambiguous YAML refused": ("kvmtune/profile/source.py",
                               "            if yaml11_tag != STR or YAML12_NOT_TEXT.fullmatch(value):",
                               "            if False:", ["tests/test_profile_errors.py::test_hostile_profile"]),
    "YAML tags refused": ("kvmtune/profile/source.py",
                          'tagged = getattr(self.peek_event(), "tag", None) not in ALLOWED_TAGS', "tagged = False",
                          ["tests/test_profile_errors.py::test_hostile_profile"]),
    "ASCII digits": ("kvmtune/grammar.py", "    return text.isascii() and text.isdigit()", "    return text.isdigit()",
                     ["tests/test_profile_errors.py::test_hostile_profile",
                      "tests/test_check_hostile.py::test_unicode_digits_are_not_numbers_anywhere_check_reads"]),
    "messages escape input": ("kvmtune/errors.py", "    message = printable(message)\n", "    message = str(message)\n",
                              ["tests/test_cli.py::test_no_message_echoes_a_control_character"]),
    "bench journals before it writes": ("kvmtune/bench/undo.py",
                                        "journal_mod.save(self.host, self.journal)  # the original is on disk before the write",
                                        "pass", [BENCH + "test_while_it_runs_the_journal_holds_benchs_originals_and_never_"
                                                 "overwrites_an_applys"]),
    "bench puts the state file back": ("kvmtune/bench/undo.py",
                                       "journal_mod.put_back(self.host, self.journal)  # the state file as the run found it",
                                       "pass", [BENCH + "test_a_bench_that_ends_leaves_no_state_where_there_was_none",
                                                BENCH + "test_a_bench_that_ends_leaves_an_applys_journal_byte_for_byte"]),
    "sriov count read back": ("kvmtune/tune/sriov.py",
                              "got = self.read(host)  # the driver's answer: it may have made fewer VFs, or none",
                              "got = self.after",
                              ["tests/test_iommu_sriov.py::test_a_count_the_kernel_does_not_keep_fails_and_is_undone"]),
    "sriov count changed from 0 only": ("kvmtune/tune/sriov.py",
                                        'host.write(self.rel, "0")  # the kernel takes a new count only from 0',
                                        "pass", ["tests/test_iommu_sriov.py::test_a_new_count_on_a_pf_with_vfs_writes_0_"
                                                 "then_the_count_and_rollback_restores_every_byte"]),
    "watch --reapply puts back runtime knobs only": (
        "kvmtune/watch/targets.py",
        "    return isinstance(change, KnobChange) and change.when == NOW and not (isinstance(change, PoolChange) and change.boot)",
        "    return True", ["tests/test_watch.py::test_watch_once_reapply_restores_runtime_knobs_and_not_files"]),
}


@pytest.fixture(scope="module")
def copy_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mutants")


@pytest.mark.parametrize("name", MUTANTS)
def test_removing_a_safety_mechanism_fails_a_test(name, copy_root):
    path, line, replacement, tests = MUTANTS[name]
    source = (REPO / path).read_text()
    assert source.count(line) == 1, f"{path} no longer has the line this mutant removes: {line!r}"
    work = copy_root / name.replace(" ", "-")
    shutil.copytree(REPO / "kvmtune", work / "kvmtune")
    shutil.copytree(REPO / "profiles", work / "profiles")
    shutil.copytree(REPO / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    (work / path).write_text(source.replace(line, replacement))
    env = {**os.environ, "PYTHONPATH": str(work), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, f"without the {name}, these tests still pass:\n{proc.stdout[-1500:]}"
