"""Tests for agent.diff. Fixtures in tests/data/diffs/ come from real git (make_fixtures.sh)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from agent.diff import Diff, DiffLine, FileDiff, FileStatus, Hunk, LineKind, parse_diff
from agent.errors import DiffParseError

DATA = Path(__file__).parent / "data" / "diffs"


def load(name: str) -> Diff:
    return parse_diff((DATA / name).read_bytes())


def only_file(name: str) -> FileDiff:
    diff = load(name)
    assert len(diff.files) == 1
    return diff.files[0]


def by_text(f: FileDiff, text: str) -> DiffLine:
    matches = [ln for h in f.hunks for ln in h.lines if ln.text == text]
    assert len(matches) == 1, f"{text!r} occurs {len(matches)} times"
    return matches[0]


# --- git shapes -------------------------------------------------------------------------------


def test_modification_with_multiple_hunks() -> None:
    f = only_file("multi_hunk.patch")
    assert (f.old_path, f.new_path, f.path) == ("src/multi.py", "src/multi.py", "src/multi.py")
    assert f.status is FileStatus.MODIFIED
    assert not f.is_binary and f.old_mode is None and f.new_mode is None
    assert (f.added, f.removed) == (3, 3)
    h1, h2 = f.hunks
    assert (h1.old_start, h1.old_count, h1.new_start, h1.new_count) == (1, 8, 1, 9)
    assert (h2.old_start, h2.old_count, h2.new_start, h2.new_count) == (27, 13, 28, 12)
    assert h1.section == "" and h2.section == "line 26"
    assert len(h1.lines) == 10 and len(h2.lines) == 14


def test_line_numbers_are_exact() -> None:
    f = only_file("multi_hunk.patch")
    assert by_text(f, "line 3") == DiffLine(LineKind.REMOVED, "line 3", 3, None)
    assert by_text(f, "line 3 changed") == DiffLine(LineKind.ADDED, "line 3 changed", None, 3)
    assert by_text(f, "inserted after 5") == DiffLine(LineKind.ADDED, "inserted after 5", None, 6)
    assert by_text(f, "line 6") == DiffLine(LineKind.CONTEXT, "line 6", 6, 7)
    assert by_text(f, "line 30") == DiffLine(LineKind.REMOVED, "line 30", 30, None)
    assert by_text(f, "line 31") == DiffLine(LineKind.CONTEXT, "line 31", 31, 31)
    assert by_text(f, "line 36") == DiffLine(LineKind.REMOVED, "line 36", 36, None)
    assert by_text(f, "line 37 changed").new_no == 36
    assert by_text(f, "line 39") == DiffLine(LineKind.CONTEXT, "line 39", 39, 39)


def test_has_line_and_line_numbers() -> None:
    f = only_file("multi_hunk.patch")
    assert f.has_line("old", 30) and f.has_line("old", 8) and f.has_line("old", 39)
    assert not f.has_line("old", 9) and not f.has_line("old", 26) and not f.has_line("old", 40)
    assert f.has_line("new", 9) and not f.has_line("new", 10) and f.has_line("new", 28)
    assert not f.has_line("new", 0)
    assert f.line_numbers("old") == frozenset(range(1, 9)) | frozenset(range(27, 40))
    assert f.line_numbers("new") == frozenset(range(1, 10)) | frozenset(range(28, 40))
    # Every line the hunks list is inside the announced ranges, and vice versa.
    listed_new = {ln.new_no for h in f.hunks for ln in h.lines if ln.new_no is not None}
    assert listed_new == f.line_numbers("new")


def test_has_line_rejects_unknown_side() -> None:
    f = only_file("multi_hunk.patch")
    with pytest.raises(ValueError, match="side"):
        f.has_line("both", 1)  # type: ignore[arg-type]


def test_hunk_header_is_rerendered() -> None:
    h1, h2 = only_file("multi_hunk.patch").hunks
    assert h1.header == "@@ -1,8 +1,9 @@"
    assert h2.header == "@@ -27,13 +28,12 @@ line 26"


def test_new_files_including_empty_one() -> None:
    diff = load("new_file.patch")
    empty, module = diff.files
    assert (empty.old_path, empty.new_path, empty.status) == (None, "empty_new.txt", "added")
    assert empty.hunks == () and empty.new_mode == "100644" and empty.old_mode is None
    assert module.status is FileStatus.ADDED and module.path == "src/new_module.py"
    assert [(ln.kind, ln.text, ln.old_no, ln.new_no) for ln in module.hunks[0].lines] == [
        (LineKind.ADDED, '"""New."""', None, 1),
        (LineKind.ADDED, "", None, 2),
        (LineKind.ADDED, "VALUE = 1", None, 3),
    ]
    assert module.hunks[0].header == "@@ -0,0 +1,3 @@"
    assert not module.has_line("old", 0) and module.line_numbers("old") == frozenset()


def test_deleted_file() -> None:
    f = only_file("deleted.patch")
    assert (f.old_path, f.new_path, f.path) == ("doomed.txt", None, "doomed.txt")
    assert f.status is FileStatus.DELETED and f.old_mode == "100644"
    assert (f.added, f.removed) == (0, 3)
    assert [ln.old_no for ln in f.hunks[0].lines] == [1, 2, 3]


def test_rename_without_and_with_edits() -> None:
    pure, edited = load("rename.patch").files
    assert (pure.old_path, pure.new_path) == ("src/old_name.py", "src/new_name.py")
    assert pure.status is FileStatus.RENAMED and pure.similarity == 100 and pure.hunks == ()
    assert (edited.old_path, edited.new_path) == ("src/renamed_edit.py", "src/renamed_after.py")
    assert edited.status is FileStatus.RENAMED and edited.similarity == 94
    assert edited.hunks[0].header == "@@ -8,7 +8,7 @@ value_6 = 6"
    assert by_text(edited, "value_10 = 10").old_no == 11
    assert by_text(edited, "value_10 = 100").new_no == 11


def test_copy() -> None:
    copied, source = load("copy.patch").files
    assert (copied.old_path, copied.new_path) == ("src/copy_src.py", "src/copy_dst.py")
    assert copied.status is FileStatus.COPIED and copied.similarity == 94
    assert (copied.added, copied.removed) == (1, 1)
    assert source.status is FileStatus.MODIFIED and source.similarity is None
    assert by_text(source, "const_20 = 20").new_no == 21


@pytest.mark.parametrize("name", ["binary.patch", "binary_git.patch"])
def test_binary_files(name: str) -> None:
    diff = load(name)
    # The base85 body of "GIT binary patch" must be skipped, not turned into files or errors.
    assert [(f.path, f.status, f.is_binary, f.hunks) for f in diff.files] == [
        ("image.bin", FileStatus.MODIFIED, True, ()),
        ("new.bin", FileStatus.ADDED, True, ()),
    ]
    assert diff.files[1].old_path is None


def test_mode_change_only_and_with_edit() -> None:
    only_mode, with_edit = load("mode.patch").files
    assert only_mode.path == "run.sh" and only_mode.status is FileStatus.MODE_CHANGED
    assert (only_mode.old_mode, only_mode.new_mode) == ("100644", "100755")
    assert only_mode.hunks == ()
    assert with_edit.path == "tool.sh" and with_edit.status is FileStatus.MODIFIED
    assert (with_edit.old_mode, with_edit.new_mode) == ("100644", "100755")
    assert (with_edit.added, with_edit.removed) == (1, 1)


def test_crlf_file_content_keeps_carriage_return() -> None:
    f = only_file("crlf_content.patch")
    # The diff itself is LF-ended; the "\r" belongs to the file's content.
    assert [(ln.kind, ln.text) for ln in f.hunks[0].lines] == [
        (LineKind.CONTEXT, "first\r"),
        (LineKind.REMOVED, "second\r"),
        (LineKind.ADDED, "SECOND\r"),
        (LineKind.CONTEXT, "third\r"),
    ]


def test_crlf_ended_diff_parses_like_lf_diff() -> None:
    crlf = (DATA / "crlf_diff.patch").read_bytes()
    assert b"\r\n" in crlf
    assert parse_diff(crlf) == load("multi_hunk.patch")
    assert parse_diff(crlf.decode()) == load("multi_hunk.patch")


def test_crlf_ended_diff_with_no_newline_marker() -> None:
    text = "--- a/x\r\n+++ b/x\r\n@@ -1 +1 @@\r\n-old\r\n+new\r\n\\ No newline at end of file\r\n"
    (f,) = parse_diff(text).files
    assert [(ln.text, ln.no_newline_at_eof) for ln in f.hunks[0].lines] == [
        ("old", False),
        ("new", True),
    ]


def test_no_newline_at_end_of_file_on_either_side() -> None:
    both, new_only = load("no_newline.patch").files
    assert [(ln.kind, ln.text, ln.no_newline_at_eof) for ln in both.hunks[0].lines] == [
        (LineKind.CONTEXT, "a", False),
        (LineKind.REMOVED, "b", False),
        (LineKind.ADDED, "B", False),
        (LineKind.CONTEXT, "c", True),
    ]
    assert [(ln.kind, ln.text, ln.no_newline_at_eof) for ln in new_only.hunks[0].lines] == [
        (LineKind.CONTEXT, "x", False),
        (LineKind.CONTEXT, "y", False),
        (LineKind.REMOVED, "z", False),
        (LineKind.ADDED, "z", True),
    ]


def test_non_utf8_bytes_are_replaced_and_flagged_per_file() -> None:
    latin, module = load("latin1.patch").files
    assert latin.path == "latin1.txt" and latin.has_encoding_errors
    assert by_text(latin, "caf\ufffd").new_no == 1
    assert by_text(latin, "na\ufffdve!").kind is LineKind.ADDED
    assert module.path == "src/new_module.py" and not module.has_encoding_errors


def test_str_input_has_no_encoding_errors() -> None:
    text = (DATA / "latin1.patch").read_bytes().decode("latin-1")
    latin, _ = parse_diff(text).files
    assert not latin.has_encoding_errors
    assert by_text(latin, "café").old_no == 1


def test_utf8_bytes_and_str_give_the_same_result() -> None:
    raw = (DATA / "quoted_path.patch").read_bytes()
    assert parse_diff(raw) == parse_diff(raw.decode("utf-8"))


def test_path_with_spaces_drops_gits_trailing_tab() -> None:
    f = only_file("spaces.patch")
    assert (f.old_path, f.new_path) == ("my file.txt", "my file.txt")
    assert b"my file.txt\t\n" in (DATA / "spaces.patch").read_bytes()


def test_quoted_unicode_path() -> None:
    f = only_file("quoted_path.patch")
    assert b'"a/caf\\303\\251.txt"' in (DATA / "quoted_path.patch").read_bytes()
    assert (f.old_path, f.new_path) == ("café.txt", "café.txt")
    assert by_text(f, "brûlée!").new_no == 2


def test_header_only_renames_with_special_paths_and_binary_delete() -> None:
    diff = load("rename_special.patch")
    assert [(f.old_path, f.new_path, f.status, f.is_binary) for f in diff.files] == [
        ("new.bin", None, FileStatus.DELETED, True),
        ("café.txt", "thé.txt", FileStatus.RENAMED, False),
        ("my file.txt", "your file.txt", FileStatus.RENAMED, False),
    ]


def test_no_prefix_keeps_paths() -> None:
    deleted, modified = load("no_prefix.patch").files
    assert (deleted.old_path, deleted.status) == ("doomed.txt", FileStatus.DELETED)
    assert (modified.old_path, modified.new_path) == ("src/multi.py", "src/multi.py")
    assert modified.hunks == only_file("multi_hunk.patch").hunks


def test_format_patch_email_header_and_signature_are_ignored() -> None:
    raw = (DATA / "format_patch.patch").read_bytes()
    assert raw.startswith(b"From ") and b"\n-- \n" in raw
    diff = parse_diff(raw)
    assert [(f.path, f.status) for f in diff.files] == [
        ("src/multi.py", FileStatus.MODIFIED),
        ("src/new_module.py", FileStatus.ADDED),
    ]
    assert diff.files[0].hunks == only_file("multi_hunk.patch").hunks
    assert diff.files[1].added == 3


# --- plain diff -u ----------------------------------------------------------------------------


def test_plain_diff_u_recursive() -> None:
    diff = load("plain_diff_u.patch")
    # diff -N marks the missing side with the epoch timestamp instead of /dev/null.
    assert [(f.old_path, f.new_path, f.status) for f in diff.files] == [
        (None, "new/added.txt", FileStatus.ADDED),
        ("old/gone.txt", None, FileStatus.DELETED),
        ("old/notes.txt", "new/notes.txt", FileStatus.MODIFIED),
    ]
    notes = diff.files[2]
    assert by_text(notes, "five") == DiffLine(LineKind.ADDED, "five", None, 5)
    assert by_text(notes, "four") == DiffLine(LineKind.CONTEXT, "four", 4, 4)


def test_plain_diff_single_file_with_timestamps() -> None:
    text = (
        "--- notes.txt\t2024-01-01 10:00:00.000000000 +0100\n"
        "+++ notes.txt\t2024-01-02 10:00:00.000000000 +0100\n"
        "@@ -2 +2 @@\n"
        "-two\n"
        "+2\n"
    )
    (f,) = parse_diff(text).files
    assert (f.old_path, f.new_path, f.status) == ("notes.txt", "notes.txt", FileStatus.MODIFIED)
    assert f.hunks[0].header == "@@ -2,1 +2,1 @@"
    assert by_text(f, "two").old_no == 2 and by_text(f, "2").new_no == 2


def test_plain_diff_strips_ab_prefixes_only_when_both_sides_carry_them() -> None:
    body = "@@ -1 +1 @@\n-x\n+y\n"
    (git_style,) = parse_diff("--- a/src/x.py\n+++ b/src/x.py\n" + body).files
    assert (git_style.old_path, git_style.new_path) == ("src/x.py", "src/x.py")
    (mixed,) = parse_diff("--- a/src/x.py\n+++ src/x.py\n" + body).files
    assert (mixed.old_path, mixed.new_path) == ("a/src/x.py", "src/x.py")
    (added,) = parse_diff("--- /dev/null\n+++ b/new.py\n@@ -0,0 +1 @@\n+y\n").files
    assert (added.old_path, added.new_path, added.status) == (None, "new.py", FileStatus.ADDED)


def test_git_mnemonic_prefixes_are_stripped() -> None:
    text = "diff --git i/x.py w/x.py\n--- i/x.py\n+++ w/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    (f,) = parse_diff(text).files
    assert (f.old_path, f.new_path) == ("x.py", "x.py")


# --- small git header cases -------------------------------------------------------------------


def test_git_paths_with_spaces_and_b_slash_inside() -> None:
    text = (
        "diff --git a/x b/y.txt b/x b/y.txt\n"
        "old mode 100644\n"
        "new mode 100755\n"
        'diff --git "a/tab\\there \\"q\\"" "b/tab\\there \\"q\\""\n'
        "deleted file mode 100644\n"
    )
    first, second = parse_diff(text).files
    assert first.path == "x b/y.txt" and first.status is FileStatus.MODE_CHANGED
    assert second.old_path == 'tab\there "q"' and second.status is FileStatus.DELETED


def test_quoted_path_with_invalid_utf8_is_flagged() -> None:
    text = 'diff --git "a/\\351t\\351" "b/\\351t\\351"\nnew file mode 100644\n'
    (f,) = parse_diff(text).files
    assert f.path == "\ufffdt\ufffd" and f.has_encoding_errors


def test_hunk_without_counts_defaults_to_one() -> None:
    (f,) = parse_diff("--- a/x\n+++ b/x\n@@ -5 +5,2 @@ def f():\n-a\n+b\n+c\n").files
    (h,) = f.hunks
    assert (h.old_start, h.old_count, h.new_start, h.new_count) == (5, 1, 5, 2)
    assert h.section == "def f():" and h.header == "@@ -5,1 +5,2 @@ def f():"
    assert [ln.new_no for ln in h.lines] == [None, 5, 6]


def test_lines_that_look_like_headers_inside_a_hunk_are_content() -> None:
    text = "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n--- a/not-a-header\n-@@ -1 +1 @@\n+++ b/y\n+ok\n"
    (f,) = parse_diff(text).files
    assert [(ln.kind, ln.text) for ln in f.hunks[0].lines] == [
        (LineKind.REMOVED, "-- a/not-a-header"),
        (LineKind.REMOVED, "@@ -1 +1 @@"),
        (LineKind.ADDED, "++ b/y"),
        (LineKind.ADDED, "ok"),
    ]


def test_empty_line_inside_hunk_is_empty_context() -> None:
    text = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n"
    (f,) = parse_diff(text).files
    assert f.hunks[0].lines[1] == DiffLine(LineKind.CONTEXT, "", 2, 2)
    assert by_text(f, "c").new_no == 3


def test_diff_lookup_by_new_or_old_path() -> None:
    diff = load("rename.patch")
    assert diff.file("src/new_name.py") is diff.files[0]
    assert diff.file("src/old_name.py") is diff.files[0]
    assert diff.file("src/renamed_after.py") is diff.files[1]
    assert diff.file("nope.py") is None
    assert list(diff) == list(diff.files) and len(diff) == 2 and not diff.is_empty


def test_objects_are_frozen() -> None:
    f = only_file("multi_hunk.patch")
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.status = FileStatus.ADDED  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.hunks[0].lines[0].text = "x"  # type: ignore[misc]
    assert isinstance(f.hunks, tuple) and isinstance(f.hunks[0], Hunk)


# --- empty, garbage, malformed ----------------------------------------------------------------


@pytest.mark.parametrize("data", ["", b"", "  \n\n\t\n", b"\r\n"])
def test_empty_input_is_an_empty_diff(data: str | bytes) -> None:
    diff = parse_diff(data)
    assert diff == Diff(files=()) and diff.is_empty


def test_garbage_input_is_rejected() -> None:
    with pytest.raises(DiffParseError) as exc:
        load("garbage.txt")
    assert exc.value.message == "input is not a unified diff"
    assert exc.value.hint is not None and "git diff" in exc.value.hint
    assert exc.value.line is None


def test_truncated_diff_reports_line_and_counts() -> None:
    with pytest.raises(DiffParseError) as exc:
        load("truncated.patch")
    assert exc.value.line == 22  # the last line of the file: the hunk was cut after it
    assert exc.value.message == (
        "line 22: hunk @@ -27,13 +28,12 @@ in src/multi.py ends after 6 of 13 old lines; "
        "the diff looks truncated"
    )


def test_hunk_cut_by_next_file_header() -> None:
    text = (
        "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1,5 +1,6 @@\n a\n b\n+c\n c\n"
        "diff --git a/y.py b/y.py\n"
    )
    with pytest.raises(DiffParseError, match=r"ends after 3 of 5 old lines") as exc:
        parse_diff(text)
    assert exc.value.line == 9
    assert "@@ -1,5 +1,6 @@ in x.py" in str(exc.value)


def test_unexpected_line_inside_hunk() -> None:
    text = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n*b\n c\n"
    with pytest.raises(DiffParseError, match="unexpected line in hunk") as exc:
        parse_diff(text)
    assert exc.value.line == 5


def test_hunk_longer_than_its_header() -> None:
    with pytest.raises(DiffParseError, match="more new lines than its header") as exc:
        parse_diff("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+c\n")
    assert exc.value.line == 6


def test_signature_after_last_hunk_is_not_an_extra_line() -> None:
    diff = parse_diff("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n-- \n2.43.0\n\n")
    assert diff.files[0].removed == 1


def test_missing_hunk_after_file_header() -> None:
    with pytest.raises(DiffParseError, match="expected a hunk header") as exc:
        parse_diff("diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n")
    assert exc.value.line == 4


def test_malformed_hunk_header() -> None:
    with pytest.raises(DiffParseError, match="malformed hunk header") as exc:
        parse_diff("--- a/x\n+++ b/x\n@@ -a +b @@\n-a\n")
    assert exc.value.line == 3


def test_hunk_without_file_header() -> None:
    with pytest.raises(DiffParseError, match="no file header") as exc:
        parse_diff("some text\n@@ -1 +1 @@\n-a\n+b\n")
    assert exc.value.line == 2


def test_combined_merge_diff_is_rejected() -> None:
    with pytest.raises(DiffParseError, match="combined") as exc:
        parse_diff("diff --cc x.py\nindex 1,2..3\n@@@ -1,1 -1,1 +1,1 @@@\n")
    assert exc.value.line == 1


# --- speed ------------------------------------------------------------------------------------


def test_large_diff_parses_quickly() -> None:
    parts = []
    for k in range(500):
        parts.append(f"diff --git a/f{k}.py b/f{k}.py\n--- a/f{k}.py\n+++ b/f{k}.py\n")
        parts.append("@@ -1,66 +1,66 @@ def f():\n")
        for j in range(33):
            parts.append(f" context {j}\n-old {j}\n+new {j}\n")
    data = "".join(parts).encode()
    assert data.count(b"\n") > 50_000
    start = time.perf_counter()
    diff = parse_diff(data)
    elapsed = time.perf_counter() - start
    assert len(diff.files) == 500 and diff.files[-1].added == 33
    assert elapsed < 1.0, f"parsing took {elapsed:.2f}s"


def test_blank_lines_between_hunks_are_skipped() -> None:
    text = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n\n\n@@ -10 +10 @@\n-c\n+d\n"
    (f,) = parse_diff(text).files
    assert [h.header for h in f.hunks] == ["@@ -1,1 +1,1 @@", "@@ -10,1 +10,1 @@"]


def test_hunk_after_unrelated_text_is_not_dropped_silently() -> None:
    text = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\nsome note\n@@ -10 +10 @@\n-c\n+d\n"
    with pytest.raises(DiffParseError, match="outside of any file") as exc:
        parse_diff(text)
    assert exc.value.line == 7


def test_binary_files_line_from_plain_diff_r() -> None:
    diff = parse_diff("Only in new: extra\nBinary files old/a.png and new/a.png differ\n")
    (f,) = diff.files
    assert (f.old_path, f.new_path, f.status, f.is_binary) == (
        "old/a.png",
        "new/a.png",
        FileStatus.MODIFIED,
        True,
    )
