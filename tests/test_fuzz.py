"""Property-based fuzzing of ownit's input boundaries: diffs, the plan made from them, and
providers.yaml.

Bad input must end as ``DiffParseError`` or ``ConfigError``, never as a traceback. The
strategies here generate arbitrary bytes and, mostly, *near-valid* input: well-formed git and
``diff -u`` output (whose parse is checked exactly against the model it was generated from),
then mutated (wrong hunk counts, truncation, inserted header lines, stray bytes, CRLF, ...).

``benchmarks/bench_fuzz.py`` runs the same strategies and checks for many more examples and
prints what it found; the ``check_*`` functions below are shared with it: each returns the
value (or None for an expected error) and raises anything else.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import Config, ReviewSettings, load_config, user_config_path
from agent.diff import Diff, DiffLine, FileDiff, FileStatus, Hunk, LineKind, parse_diff
from agent.errors import ConfigError, DiffParseError, InputError
from agent.plan import Plan, make_plan
from agent.pricing import Price
from agent.providers import ModelFacts
from agent.tokens import count_tokens

FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    # The autouse isolation fixture (temporary HOME, ledger) is fine to share across examples.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# === diffs: building blocks =====================================================================

_EPOCH = "1970-01-01 00:00:00.000000000 +0000"
_STAMP = "2024-05-06 07:08:09.123456789 +0200"

# Characters for path segments: mostly safe, some that force git's C-quoting or confuse splits.
_SEG_SAFE = "abcdxyz0189_-."
_SEG_SPECIAL = " \"\\\t\n\ré中\x01\x7f'*[]?"
_seg_char = st.one_of(
    st.sampled_from(_SEG_SAFE), st.sampled_from(_SEG_SAFE), st.sampled_from(_SEG_SPECIAL)
)


@st.composite
def valid_paths(draw: st.DrawFn) -> str:
    """A real file path (no empty segment); the first segment has 2+ characters so it is never
    mistaken for git's a/ b/ (or mnemonic) prefix."""
    first = draw(st.text(_seg_char, min_size=2, max_size=8))
    rest = draw(st.lists(st.text(_seg_char, min_size=1, max_size=6), max_size=2))
    path = "/".join([first, *rest])
    if draw(st.integers(0, 40)) == 0:  # now and then a path longer than a small chunk budget
        path += "/" + "long_directory_name/" * draw(st.integers(50, 250)) + "f.py"
    return path


def _needs_quote(path: str, quote_path: bool) -> bool:
    return any(
        c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7F or (quote_path and ord(c) >= 0x80)
        for c in path
    )


def c_quote(path: str) -> bytes:
    """git's C-style quoting of a path (core.quotePath=true for the bytes >= 0x80)."""
    out = bytearray(b'"')
    for b in path.encode("utf-8"):
        if b in b'"\\':
            out += b"\\" + bytes([b])
        elif b == 9:
            out += b"\\t"
        elif b == 10:
            out += b"\\n"
        elif b < 0x20 or b >= 0x7F:
            out += b"\\%03o" % b
        else:
            out.append(b)
    return bytes(out + b'"')


def render_path(path: str, quote_path: bool) -> bytes:
    return c_quote(path) if _needs_quote(path, quote_path) else path.encode("utf-8")


# Text of one diff line (after its tag): any bytes but "\n", biased towards the tricky ones.
_TRICKY_TEXT = [
    b"",
    b"\r",
    b"\t",
    b" ",
    b"\x00",
    b"\x1b[31mred\x1b[0m",
    b"caf\xe9",  # latin-1
    b"\xff\xfe\xfd",  # never valid UTF-8
    b"\xc3",  # cut UTF-8 sequence
    "brûlée 中文".encode(),
    b"-- a/not-a-header",
    b"++ b/not-a-header",
    b"@@ -1 +1 @@",
    b"diff --git a/x b/x",
    b"\\ No newline at end of file",
    b"\x0c\x1c\x85",
    "\u2028".encode(),
]
line_text = st.one_of(
    st.text(
        st.characters(codec="utf-8", exclude_characters="\n", exclude_categories=("Cs",)),
        max_size=30,
    ).map(lambda s: s.encode("utf-8")),
    st.sampled_from(_TRICKY_TEXT),
    st.binary(max_size=16).map(lambda b: b.replace(b"\n", b"")),
)
section_text = st.sampled_from(["", " def f():", " class A:", " café", "  x  ", " @@ y"])


def _expected_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ExpectedFile:
    """What the parser must produce for one generated well-formed file section."""

    old_path: str | None
    new_path: str | None
    status: FileStatus
    is_binary: bool
    hunks: tuple[Hunk, ...]
    old_mode: str | None = None
    new_mode: str | None = None
    similarity: int | None = None


def actual_file(f: FileDiff) -> ExpectedFile:
    return ExpectedFile(
        f.old_path,
        f.new_path,
        f.status,
        f.is_binary,
        f.hunks,
        f.old_mode,
        f.new_mode,
        f.similarity,
    )


@st.composite
def valid_hunks(
    draw: st.DrawFn, kinds: str, *, blank_context: bool, last: bool, most: int = 3
) -> tuple[list[bytes], list[Hunk]]:
    """1-3 well-formed hunks whose lines use only ``kinds`` (" -+", "+" or "-")."""
    out: list[bytes] = []
    hunks: list[Hunk] = []
    o_pos = draw(st.sampled_from([1, 1, 7, 120, 2**31, 2**62]))
    n_pos = o_pos + draw(st.integers(-3, 3)) if o_pos > 3 else o_pos
    count = draw(st.integers(1, most))
    for k in range(count):
        body = draw(st.lists(st.tuples(st.sampled_from(kinds), line_text), min_size=1, max_size=8))
        o_count = sum(1 for tag, _ in body if tag in " -")
        n_count = sum(1 for tag, _ in body if tag in " +")
        o_start = o_pos if o_count else (0 if kinds == "+" else o_pos - 1)
        n_start = n_pos if n_count else (0 if kinds == "-" else n_pos - 1)

        def num(start: int, cnt: int) -> bytes:
            if cnt == 1 and draw(st.booleans()):
                return b"%d" % start  # git leaves out a count of 1
            return b"%d,%d" % (start, cnt)

        section = draw(section_text)
        out.append(
            b"@@ -"
            + num(o_start, o_count)
            + b" +"
            + num(n_start, n_count)
            + b" @@"
            + section.encode()
        )
        lines: list[DiffLine] = []
        o_no, n_no = o_start, n_start
        for tag, text in body:
            if tag == " " and not text and blank_context and draw(st.booleans()):
                out.append(b"")  # some tools strip the lone space of an empty context line
            else:
                out.append(tag.encode() + text)
            kind = LineKind(tag)
            lines.append(
                DiffLine(
                    kind,
                    _expected_text(text),
                    o_no if kind is not LineKind.ADDED else None,
                    n_no if kind is not LineKind.REMOVED else None,
                )
            )
            o_no += kind is not LineKind.ADDED
            n_no += kind is not LineKind.REMOVED
        if last and k == count - 1 and draw(st.integers(0, 3)) == 0:
            out.append(b"\\ No newline at end of file")
            lines[-1] = DiffLine(
                lines[-1].kind, lines[-1].text, lines[-1].old_no, lines[-1].new_no, True
            )
        hunks.append(Hunk(o_start, o_count, n_start, n_count, section.strip(), tuple(lines)))
        gap = draw(st.integers(1, 50))
        o_pos, n_pos = o_start + o_count + gap, n_start + n_count + gap
        if k < count - 1 and draw(st.integers(0, 5)) == 0:
            out.append(b"")  # blank line between hunks
    return out, hunks


_GIT_KINDS = ["modified", "added", "added_empty", "deleted", "renamed", "copied", "mode", "binary"]
_PREFIXES = [("a/", "b/"), ("a/", "b/"), ("a/", "b/"), ("", ""), ("i/", "w/"), ("c/", "w/")]


@st.composite
def valid_git_file(draw: st.DrawFn, path: str, other: str) -> tuple[list[bytes], ExpectedFile]:
    kind = draw(st.sampled_from(_GIT_KINDS))
    quote_path = draw(st.booleans())
    po, pn = draw(st.sampled_from(_PREFIXES))
    old, new = (other, path) if kind in ("renamed", "copied") else (path, path)

    def q(prefix: str, p: str) -> bytes:
        return render_path(prefix + p, quote_path)

    out = [b"diff --git " + q(po, old) + b" " + q(pn, new)]
    exp_old: str | None = old
    exp_new: str | None = new
    status = FileStatus.MODIFIED
    old_mode = new_mode = None
    similarity = None
    if kind in ("added", "added_empty"):
        out.append(b"new file mode 100644")
        exp_old, status, new_mode = None, FileStatus.ADDED, "100644"
    elif kind == "deleted":
        out.append(b"deleted file mode 100644")
        exp_new, status, old_mode = None, FileStatus.DELETED, "100644"
    elif kind == "mode":
        out += [b"old mode 100644", b"new mode 100755"]
        old_mode, new_mode = "100644", "100755"
    elif kind in ("renamed", "copied"):
        similarity = draw(st.integers(0, 100))
        word = "rename" if kind == "renamed" else "copy"
        out += [
            b"similarity index %d%%" % similarity,
            word.encode() + b" from " + render_path(old, quote_path),
            word.encode() + b" to " + render_path(new, quote_path),
        ]
        status = FileStatus.RENAMED if kind == "renamed" else FileStatus.COPIED
    if kind != "added_empty" and draw(st.booleans()):
        out.append(b"index 1234567..89abcde" + (b" 100644" if kind == "modified" else b""))
    hunks: list[Hunk] = []
    is_binary = False
    if kind == "binary":
        is_binary = True
        if draw(st.booleans()):
            out.append(b"Binary files " + q(po, old) + b" and " + q(pn, new) + b" differ")
        else:
            out += [b"GIT binary patch", b"literal 5", b"zcmZ?wc2Dl0", b"", b"literal 0"]
            out += [b"HcmV?d00001", b""]
    elif kind == "added_empty" or (kind in ("renamed", "copied", "mode") and draw(st.booleans())):
        if kind == "mode":
            status = FileStatus.MODE_CHANGED  # header only
    else:
        sides = {"added": "+", "deleted": "-"}.get(kind, " -+")
        out.append(b"--- " + (b"/dev/null" if kind == "added" else q(po, old)))
        out.append(b"+++ " + (b"/dev/null" if kind == "deleted" else q(pn, new)))
        # git ends a name that has a space with a tab, so the name is not ambiguous.
        for k in (-1, -2):
            if b" " in out[k][4:] and not out[k][4:].startswith(b'"'):
                out[k] += b"\t"
        body, hunks = draw(valid_hunks(sides, blank_context=True, last=True))
        out += body
    exp = ExpectedFile(
        exp_old, exp_new, status, is_binary, tuple(hunks), old_mode, new_mode, similarity
    )
    return out, exp


@st.composite
def valid_plain_file(draw: st.DrawFn, path: str) -> tuple[list[bytes], ExpectedFile]:
    """``diff -u`` / ``diff -ruN`` output for one file."""
    kind = draw(st.sampled_from(["modified", "modified", "added", "deleted"]))
    layout = draw(st.sampled_from(["ab", "dirs", "same"]))
    old, new = {"ab": ("a/", "b/"), "dirs": ("old/", "new/"), "same": ("", "")}[layout]
    old_p, new_p = old + path, new + path
    exp_old, exp_new = (path, path) if layout == "ab" else (old_p, new_p)

    def side(p: str, stamp: str) -> bytes:
        rendered = render_path(p, False)
        if stamp or b" " in rendered:
            rendered += b"\t" + stamp.encode()
        return rendered

    stamp = draw(st.sampled_from([_STAMP, ""]))
    old_side, new_side = side(old_p, stamp), side(new_p, stamp)
    status, sides = FileStatus.MODIFIED, " -+"
    if kind == "added":
        status, sides, exp_old = FileStatus.ADDED, "+", None
        old_side = b"/dev/null" if draw(st.booleans()) else side(old_p, _EPOCH)
    elif kind == "deleted":
        status, sides, exp_new = FileStatus.DELETED, "-", None
        new_side = b"/dev/null" if draw(st.booleans()) else side(new_p, _EPOCH)
    out = [b"--- " + old_side, b"+++ " + new_side]
    # diff -N marks an added/removed file by the epoch alone only when it is a single hunk.
    epoch = status is not FileStatus.MODIFIED and b"/dev/null" not in out[0] + out[1]
    body, hunks = draw(valid_hunks(sides, blank_context=True, last=True, most=1 if epoch else 3))
    out += body
    return out, ExpectedFile(exp_old, exp_new, status, False, tuple(hunks))


_PREAMBLE = [
    b"From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001",
    b"From: A U Thor <author@example.com>",
    b"Subject: [PATCH] fix things",
    b"",
    b"Body text, with a -- dash and @@ marks inside",
    b"---",
    b" x | 2 +-",
    b" 1 file changed, 1 insertion(+), 1 deletion(-)",
    b"",
]


@dataclass(frozen=True)
class GeneratedDiff:
    lines: tuple[bytes, ...]  # without line endings
    crlf: bool
    files: tuple[ExpectedFile, ...]

    @property
    def data(self) -> bytes:
        end = b"\r\n" if self.crlf else b"\n"
        return b"".join(line + end for line in self.lines)


@st.composite
def valid_diffs(draw: st.DrawFn) -> GeneratedDiff:
    """A well-formed multi-file diff (git, diff -u, format-patch) and what it must parse to."""
    paths = draw(st.lists(valid_paths(), min_size=1, max_size=4, unique=True))
    lines: list[bytes] = []
    files: list[ExpectedFile] = []
    style = draw(st.sampled_from(["git", "git", "plain", "format-patch"]))
    if style == "format-patch":
        lines += _PREAMBLE
    for k, path in enumerate(paths):
        if style == "plain":
            body, exp = draw(valid_plain_file(path))
        else:
            other = draw(valid_paths().filter(lambda p: p not in paths))
            body, exp = draw(valid_git_file(path, other))
        lines += body
        files.append(exp)
        del k
    if style == "format-patch":
        lines += [b"-- ", b"2.43.0", b""]
    return GeneratedDiff(tuple(lines), draw(st.integers(0, 4)) == 0, tuple(files))


# === diffs: mutations and line soup ============================================================

_HUGE_DIGITS = b"9" * 5000
_NUMBERS = [
    b"0",
    b"1",
    b"-1",
    b"",
    b"x",
    b"2",
    b"1180591620717411303424",  # 2**70
    _HUGE_DIGITS,
    "١٢".encode(),  # Arabic-Indic digits
    b"\xef\xbc\x91",  # fullwidth 1
    b"+3",
    b"1 ",
]
_TRICKY_LINES = [
    b"@@ -1 +1 @@",
    b"@@ -1,2 +1,2 @@",
    b"@@ -0,0 +1 @@",
    b"@@ -1,0 +1,0 @@",
    b"@@ -1,3 +1,0 @@ empty new side",
    b"@@@ -1 +1 +1 @@@",
    b"@@ -1 +1 @@@",
    b"@@",
    b"@@ -1," + _HUGE_DIGITS + b" +1 @@",
    b"@@ -" + _HUGE_DIGITS + b" +1 @@",
    b"\\ No newline at end of file",
    b"\\",
    b"diff --git a/x b/x",
    b"diff --git ",
    b"diff --git a/ b/",
    b'diff --git "a/x',
    b'diff --git "a/x" "b/y',
    b'diff --git a/x "b/y',
    b'diff --git "a/\\351\\" "b/\\"',
    b"diff --git a/x y b/x y",
    b"diff --cc x",
    b"diff --combined x",
    b"diff -r a b",
    b"--- a/x",
    b"+++ b/x",
    b"--- ",
    b"+++ ",
    b"--- a/",
    b"+++ b/",
    b"--- /dev/null",
    b"+++ /dev/null",
    b'--- "a/unterminated',
    b"--- a/x\t1970-01-01 00:00:00.000000000 +0000",
    b"-- ",
    b"Binary files a/x and b/x differ",
    b"Binary files /dev/null and /dev/null differ",
    b"Binary files  and  differ",
    b"GIT binary patch",
    b"literal 0",
    b"delta 12",
    b"HcmV?d00001",
    b"new file mode 100644",
    b"deleted file mode 100644",
    b"new file mode ",
    b"old mode 100644",
    b"new mode 100755",
    b"rename from ",
    b"rename to ",
    b'rename from "x',
    b"rename to y z",
    b"copy from a",
    b"copy to b",
    b"rename old x",
    b"similarity index 100%",
    b"similarity index " + _HUGE_DIGITS + b"%",
    b"dissimilarity index 7%",
    b"index 0000000..1111111",
    b"index ",
    b"",
    b"\r",
    b" ",
    b"+",
    b"-",
    b"\x00",
    b"\xff\xfe\x00",
    b"\x1b[2J",
    b"+\xe9t\xe9",
    b" context",
    b"-removed",
    b"+added",
]
tricky_line = st.one_of(
    st.sampled_from(_TRICKY_LINES),
    st.tuples(st.sampled_from(" -+"), line_text).map(lambda t: t[0].encode() + t[1]),
    st.tuples(st.sampled_from(_NUMBERS), st.sampled_from(_NUMBERS)).map(
        lambda t: b"@@ -" + t[0] + b"," + t[1] + b" +1," + t[0] + b" @@"
    ),
    st.sampled_from(_SEG_SPECIAL + "/ab").map(
        lambda c: b"diff --git a/" + c.encode() + b" b/" + c.encode()
    ),
)


@st.composite
def hunk_header(draw: st.DrawFn) -> bytes:
    """A hunk header with any numbers, counts missing or not."""
    nums = st.sampled_from(_NUMBERS)

    def side() -> bytes:
        start = draw(nums)
        return start if draw(st.booleans()) else start + b"," + draw(nums)

    return b"@@ -" + side() + b" +" + side() + b" @@" + draw(section_text).encode()


@st.composite
def mutated_diffs(draw: st.DrawFn) -> bytes:
    """A well-formed diff with 1-4 mutations applied to its lines or bytes."""
    gen = draw(valid_diffs())
    lines = list(gen.lines)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(
                ["header", "delete", "duplicate", "insert", "swap", "cr", "bytes", "header"]
            )
        )
        if not lines:
            lines.append(draw(tricky_line))
            continue
        k = draw(st.integers(0, len(lines) - 1))
        if op == "header":
            heads = [i for i, ln in enumerate(lines) if ln.startswith(b"@@")]
            lines[draw(st.sampled_from(heads)) if heads else k] = draw(hunk_header())
        elif op == "delete":
            del lines[k]
        elif op == "duplicate":
            lines.insert(k, lines[k])
        elif op == "insert":
            lines.insert(k, draw(tricky_line))
        elif op == "swap" and k + 1 < len(lines):
            lines[k], lines[k + 1] = lines[k + 1], lines[k]
        elif op == "cr":
            lines[k] = lines[k][:-1] if lines[k].endswith(b"\r") else lines[k] + b"\r"
        elif op == "bytes":
            line = lines[k]
            at = draw(st.integers(0, len(line)))
            lines[k] = line[:at] + draw(st.binary(min_size=1, max_size=4)) + line[at + 1 :]
    data = GeneratedDiff(tuple(lines), gen.crlf, ()).data
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]  # truncated at any byte
    return data


@st.composite
def line_soup(draw: st.DrawFn) -> bytes:
    """Random sequences of header, hunk and content lines: every parser state and transition."""
    lines = draw(st.lists(st.one_of(tricky_line, hunk_header()), max_size=25))
    end = draw(st.sampled_from([b"\n", b"\n", b"\r\n"]))
    data = b"".join(line + end for line in lines)
    if draw(st.booleans()):
        data = data.rstrip(b"\n")  # no final newline
    return data


# Everything parse_diff is fuzzed with.
diff_inputs = st.one_of(
    mutated_diffs(),
    mutated_diffs(),
    line_soup(),
    valid_diffs().map(lambda g: g.data),
    st.binary(max_size=300),
)

# === diffs: the checks =========================================================================


def _input_lines(data: bytes | str) -> int:
    return (data.count(b"\n") if isinstance(data, bytes) else data.count("\n")) + 1


def check_diff_error(err: DiffParseError, data: bytes | str) -> None:
    assert isinstance(err, InputError) and err.exit_code == 2
    assert err.message and isinstance(err.message, str)
    if err.line is not None:
        assert 1 <= err.line <= _input_lines(data), f"line {err.line} is not in the input"


def check_hunk_numbering(hunk: Hunk) -> None:
    """Lines are numbered from the header's starts, and there are exactly its counts of them."""
    assert hunk.old_count >= 0 and hunk.new_count >= 0
    o_no, n_no = hunk.old_start, hunk.new_start
    for line in hunk.lines:
        assert isinstance(line.text, str) and "\n" not in line.text
        if line.kind is LineKind.CONTEXT:
            assert (line.old_no, line.new_no) == (o_no, n_no), (hunk.header, line)
            o_no, n_no = o_no + 1, n_no + 1
        elif line.kind is LineKind.REMOVED:
            assert (line.old_no, line.new_no) == (o_no, None), (hunk.header, line)
            o_no += 1
        else:
            assert line.kind is LineKind.ADDED
            assert (line.old_no, line.new_no) == (None, n_no), (hunk.header, line)
            n_no += 1
    assert o_no == hunk.old_start + hunk.old_count, hunk.header
    assert n_no == hunk.new_start + hunk.new_count, hunk.header


def check_diff(diff: Diff) -> None:
    """Invariants of every parsed Diff."""
    assert isinstance(diff, Diff) and isinstance(diff.files, tuple)
    for f in diff.files:
        assert isinstance(f, FileDiff) and isinstance(f.status, FileStatus)
        assert f.old_path is not None or f.new_path is not None
        for p in (f.old_path, f.new_path):
            assert p is None or (isinstance(p, str) and p), f"empty path in {f!r:.200}"
        assert isinstance(f.path, str) and f.path
        if f.is_binary:
            assert f.hunks == ()
        if f.status is FileStatus.ADDED:
            assert f.old_path is None
        if f.status is FileStatus.DELETED:
            assert f.new_path is None
        for h in f.hunks:
            check_hunk_numbering(h)
        for side in ("old", "new"):
            listed = {
                n
                for h in f.hunks
                for ln in h.lines
                if (n := ln.old_no if side == "old" else ln.new_no) is not None
            }
            assert f.line_numbers(side) == listed
            for n in listed:
                assert f.has_line(side, n)
            if listed:
                for n in (min(listed) - 1, max(listed) + 1):
                    assert f.has_line(side, n) == (n in listed)
        assert f.added == sum(ln.kind is LineKind.ADDED for h in f.hunks for ln in h.lines)
    assert diff.is_empty == (len(diff) == 0)


def check_parse(data: bytes | str) -> Diff | None:
    """parse_diff gives a Diff that keeps its invariants, or a proper DiffParseError (None)."""
    try:
        diff = parse_diff(data)
    except DiffParseError as err:
        check_diff_error(err, data)
        return None
    check_diff(diff)
    if not data.strip():
        assert diff.is_empty
    return diff


# --- regressions found by fuzzing (each crashed with something other than DiffParseError) ----

DIFF_REGRESSIONS = [
    # Hunk numbers past Python's int-from-string limit (4300 digits): ValueError.
    b"--- a/x\n+++ b/x\n@@ -" + _HUGE_DIGITS + b" +1 @@\n-a\n+b\n",
    b"--- a/x\n+++ b/x\n@@ -1," + _HUGE_DIGITS + b" +1 @@\n-a\n+b\n",
    # The same in a git similarity index: ValueError.
    b"diff --git a/x b/y\nsimilarity index " + _HUGE_DIGITS + b"%\nrename from x\nrename to y\n",
    # Empty paths became FileDiff.path == "" (no file to anchor a question to).
    b"diff --git \nnew file mode 100644\n",
    b"diff --git a/ b/\nold mode 100644\nnew mode 100755\n",
    b"--- \n+++ \n@@ -1 +1 @@\n-a\n+b\n",
    b"--- a/\n+++ b/\n@@ -1 +1 @@\n-a\n+b\n",
    b"diff --git a/x b/x\nrename from \nrename to y\n",
    b'--- ""\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n',
    # Non-ASCII digits matched \d: "@@ -" + ARABIC-INDIC DIGIT ONE was read as line 1.
    "--- a/x\n+++ b/x\n@@ -\u0661 +\u0661 @@\n-a\n+b\n".encode(),
    # Line 0 with lines in it: there is no line 0 to anchor to.
    b"--- a/x\n+++ b/x\n@@ -0,2 +0,2 @@\n a\n b\n",
    # A similarity that is not a percentage.
    b"diff --git a/x b/y\nsimilarity index 250%\nrename from x\nrename to y\n",
    # Contradicting git headers gave an "added" file with an old path (or "deleted" with a
    # new one): status and paths disagreed.
    b"diff --git a/x b/x\nnew file mode 100644\nrename from y\nrename to x\n",
    b"diff --git a/x b/x\ndeleted file mode 100644\ncopy to y\n",
    b"diff --git a/x b/x\nnew file mode 100644\ndeleted file mode 100644\n",
    b"diff --git a/x b/x\nnew file mode 100644\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
    b"diff --git a/x b/x\ndeleted file mode 100644\n--- a/x\n+++ b/x\n@@ -1 +0,0 @@\n-a\n",
    b"diff --git a/x b/y\nrename from x\nrename to y\n--- /dev/null\n+++ b/y\n@@ -0,0 +1 @@\n+a\n",
]


@pytest.mark.parametrize("data", DIFF_REGRESSIONS, ids=range(len(DIFF_REGRESSIONS)))
def test_diff_regressions_are_parse_errors(data: bytes) -> None:
    with pytest.raises(DiffParseError) as exc:
        parse_diff(data)
    check_diff_error(exc.value, data)
    assert exc.value.line is not None


def test_huge_line_numbers_parse_up_to_int64() -> None:
    big = 2**63 - 2
    text = b"--- a/x\n+++ b/x\n@@ -%d,2 +%d,2 @@\n a\n-b\n+c\n"
    diff = check_parse(text % (big, big))
    assert diff is not None
    (hunk,) = diff.files[0].hunks
    assert [ln.new_no for ln in hunk.lines] == [big, None, big + 1]
    with pytest.raises(DiffParseError, match="beyond any real file"):
        parse_diff(text % (big + 1, big))
    with pytest.raises(DiffParseError, match="too large"):
        parse_diff(text % (2**70, 1))


def test_rename_to_a_quoted_name_ending_in_a_space() -> None:
    # Found by test_well_formed_diffs_parse_exactly: the quoted new path holds ' "' itself
    # (a space before its closing quote); splitting at the last ' "' gave "unterminated quoted
    # path" for a valid git diff.
    text = (
        b'diff --git a/old.txt "b/new\\tname "\n'
        b"similarity index 90%\n"
        b"rename from old.txt\n"
        b'rename to "new\\tname "\n'
        b'diff --git a/x "b/y\\t "\n'
        b"new file mode 100644\n"
    )
    renamed, added = parse_diff(text).files
    assert (renamed.old_path, renamed.new_path) == ("old.txt", "new\tname ")
    assert renamed.status is FileStatus.RENAMED and renamed.similarity == 90
    assert (added.old_path, added.new_path) == (None, "y\t ")


def test_str_input_with_lone_surrogates_in_a_quoted_path() -> None:
    diff = check_parse('diff --git "a/\ud800" "b/\ud800"\nnew file mode 100644\n')
    assert diff is not None and diff.files[0].has_encoding_errors


@FUZZ_SETTINGS
@given(diff_inputs)
def test_parse_diff_returns_a_diff_or_raises_diff_parse_error(data: bytes) -> None:
    check_parse(data)


@FUZZ_SETTINGS
@given(st.one_of(line_soup(), mutated_diffs()), st.sampled_from(["latin-1", "surrogateescape"]))
def test_parse_diff_of_str_input(data: bytes, how: str) -> None:
    text = data.decode("latin-1") if how == "latin-1" else data.decode("utf-8", "surrogateescape")
    check_parse(text)


@FUZZ_SETTINGS
@given(valid_diffs())
def test_well_formed_diffs_parse_exactly(gen: GeneratedDiff) -> None:
    diff = parse_diff(gen.data)  # a DiffParseError here is a failure, with its message
    check_diff(diff)
    assert tuple(actual_file(f) for f in diff.files) == gen.files


# === plan ======================================================================================


# A part as check_plan sees it: its path, both paths, and the hunks it shows, each with where
# it sits in the diff (the file object, the hunk's index, its first line); None for a file it
# only names (a deleted file, summarized).
PartView = tuple[str, list[str], list[tuple[tuple[int, int, int], Hunk]] | None]


def chunk_view(chunk: Any) -> tuple[int, list[PartView]]:
    """(tokens, parts) of one chunk: the only code that knows the field names of Chunk and its
    parts."""
    return chunk.tokens, [
        (
            part.file.path,
            [p for p in (part.file.old_path, part.file.new_path) if p],
            None
            if part.summary is not None
            else [
                ((id(part.file), span.hunk, span.start), hunk)
                for span, hunk in zip(part.spans, part.hunks, strict=True)
            ],
        )
        for part in chunk.files
    ]


def skipped_paths(plan: Plan) -> list[str]:
    """Files nothing of which is sent."""
    return [s.path for s in plan.skipped if s.kind == "not_sent"]


def summarized_paths(plan: Plan) -> list[str]:
    """Files named with their size (deleted ones), none of their lines sent."""
    return [s.path for s in plan.skipped if s.kind == "summarized"]


def _paths_fill_budget(paths: list[str], budget: int) -> bool:
    """A file whose path(s) alone take over half the budget: its parts may exceed it (every
    part repeats the file header and nothing may shorten a path the anchors name)."""
    return sum(count_tokens(p) for p in set(paths)) * 2 > budget


CUT_MARKER = " … [line cut"


def same_line_or_cut(sent: DiffLine, original: DiffLine) -> bool:
    """The line itself, or (for a line longer than a chunk) a marked prefix of it."""
    if sent == original:
        return True
    kept, marker, _ = sent.text.partition(CUT_MARKER)
    return (
        bool(marker)
        and (sent.kind, sent.old_no, sent.new_no)
        == (original.kind, original.old_no, original.new_no)
        and original.text.startswith(kept.rstrip("\ufffd"))
    )


def check_plan(diff: Diff, plan: Plan, settings_: ReviewSettings) -> None:
    assert 500 <= plan.budget <= (settings_.max_chunk_tokens or plan.budget)
    order = {id(f): i for i, f in enumerate(diff.files)}
    placed: dict[str, list[tuple[tuple[int, int, int], Hunk]]] = {}
    named: list[str] = []
    for chunk in plan.chunks:
        tokens, parts = chunk_view(chunk)
        recount = count_tokens(chunk.render())
        if max(tokens, recount) > plan.budget:
            # Allowed only for a file whose paths alone fill the budget, and said in a note.
            message = f"chunk of {tokens} tokens ({recount} rendered) > budget {plan.budget}"
            assert len(parts) == 1, message
            assert _paths_fill_budget(parts[0][1], plan.budget), message
            assert any(parts[0][0] in n and "over the chunk budget" in n for n in plan.notes)
        for path, _, hunks in parts:
            if hunks is None:
                named.append(path)
            else:
                placed.setdefault(path, []).extend(
                    ((order[file], index, start), hunk) for (file, index, start), hunk in hunks
                )
    # A file's parts may sit in chunks in any order (best fit): compare them in diff order.
    sent = {
        path: [h for _, h in sorted(shown, key=lambda p: p[0])] for path, shown in placed.items()
    }
    # A summarized file is named once, and none of its lines is sent.
    summarized = summarized_paths(plan)
    assert sorted(named) == sorted(summarized)
    for path in summarized:
        if sum(f.path == path for f in diff.files) == 1:
            assert path not in sent, f"{path!r} is both summarized and sent"
    skipped = skipped_paths(plan) + summarized
    by_path: dict[str, list[FileDiff]] = {}
    for f in diff.files:
        by_path.setdefault(f.path, []).append(f)
    for path in sent:
        assert path in by_path, f"chunk carries unknown file {path!r}"
    for path, files in by_path.items():
        n_skipped = skipped.count(path)
        if n_skipped and n_skipped < len(files):
            continue  # same path twice, one skipped: which one is ambiguous
        if n_skipped:
            assert path not in sent, f"{path!r} is both skipped and sent"
            continue
        pieces = sent.get(path, [])
        k = 0
        for hunk in (h for f in files for h in f.hunks):
            if not hunk.lines:
                if k < len(pieces) and not pieces[k].lines:
                    k += 1
                continue
            got: list[DiffLine] = []
            while len(got) < len(hunk.lines):
                assert k < len(pieces), f"{path}: lines of hunk {hunk.header} are missing"
                piece = pieces[k]
                k += 1
                assert piece.lines, f"{path}: an empty piece inside hunk {hunk.header}"
                check_hunk_numbering(piece)
                got.extend(piece.lines)
            assert len(got) == len(hunk.lines), f"{path}: a piece crosses hunks at {hunk.header}"
            bad = [
                (s, o) for s, o in zip(got, hunk.lines, strict=True) if not same_line_or_cut(s, o)
            ]
            assert not bad, f"{path}: hunk {hunk.header} sent differently: {bad[:2]}"
        assert k == len(pieces), f"{path}: {len(pieces) - k} hunk piece(s) sent twice or extra"


def build_facts(
    context_window: int, max_output_tokens: int | None, cost: float | None, schema: bool
) -> ModelFacts:
    price = None if cost is None else Price(cost, cost * 5, None, "fuzz")
    return ModelFacts(context_window, True, max_output_tokens, price, schema)


model_facts = st.builds(
    build_facts,
    context_window=st.one_of(
        st.integers(2_000, 200_000), st.sampled_from([2_000, 4_096, 8_192, 32_768, 200_000])
    ),
    max_output_tokens=st.one_of(
        st.none(), st.integers(1, 1_000), st.integers(1_000, 200_000), st.just(10**12)
    ),
    cost=st.one_of(st.none(), st.floats(0, 1e-3)),
    schema=st.booleans(),
)
_GLOBS = ["*.lock", "*.py", "*", "**/x", "[", "[!a]*", "a?", "*.min.js", "中*", "\\", "[]]", ""]
review_settings = st.builds(
    ReviewSettings,
    max_chunk_tokens=st.one_of(st.integers(500, 3_000), st.integers(500, 200_000)),
    max_output_tokens=st.integers(256, 16_000),
    exclude=st.lists(st.one_of(st.sampled_from(_GLOBS), st.text(max_size=6)), max_size=3).map(
        tuple
    ),
)


def check_make_plan(diff: Diff, facts: ModelFacts, settings_: ReviewSettings) -> Plan | None:
    """make_plan gives a Plan that covers every line once within budget, or ConfigError (None)."""
    try:
        plan = make_plan(diff, facts, settings_, "fuzz-model", "openai/fuzz-model")
    except ConfigError as err:
        assert "fuzz-model" in err.message and "errors.pydantic.dev" not in err.message
        return None
    check_plan(diff, plan, settings_)
    return plan


# Diffs for the plan: well-formed ones (all parse) and mutated ones that still parse.
plan_diff_inputs = st.one_of(
    valid_diffs().map(lambda g: g.data), valid_diffs().map(lambda g: g.data), mutated_diffs()
)


@FUZZ_SETTINGS
@given(plan_diff_inputs, model_facts, review_settings)
def test_make_plan_covers_every_line_once_within_budget(
    data: bytes, facts: ModelFacts, settings_: ReviewSettings
) -> None:
    diff = check_parse(data)
    if diff is not None:
        check_make_plan(diff, facts, settings_)


def _long_rename(n: int) -> bytes:
    old = "src/" + "generated_dir/" * n + "a.py"
    new = "src/" + "generated_dir/" * n + "b.py"
    return (
        f"diff --git a/{old} b/{new}\nsimilarity index 90%\nrename from {old}\nrename to {new}\n"
        f"--- a/{old}\n+++ b/{new}\n@@ -1 +1 @@\n-a\n+b\n"
    ).encode()


def test_paths_that_fill_the_budget_are_sent_over_it_and_said() -> None:
    # A rename between two 1,688-character paths (PATH_MAX is 4,096) with max_chunk_tokens 500:
    # every part repeats "=== FILE <new> ... (was <old>)", which alone nearly fills a chunk.
    diff = parse_diff(_long_rename(120))
    facts = build_facts(200_000, None, None, False)
    check_make_plan(diff, facts, ReviewSettings(max_chunk_tokens=500))


# === providers.yaml ============================================================================

_TOP_KEYS = ["version", "default", "prefer", "models", "review", "sources"]
_MODEL_KEYS = [
    "model",
    "api_key",
    "api_base",
    "api_version",
    "context_window",
    "max_output_tokens",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "price_source",
    "structured_output",
]
_REVIEW_KEYS = [
    "max_chunk_tokens",
    "max_output_tokens",
    "concurrency",
    "temperature",
    "timeout_seconds",
    "retries",
    "retry_backoff_seconds",
    "repair_attempts",
    "max_questions",
    "exclude",
]
_UNKNOWN_KEYS = ["modle", "Models", "x", "", "null", "<<", "api-key", "review.exclude"]
_MODEL_NAMES = ["gpt", "claude-sonnet", "local", "ollama", "", "x y"]
_STRINGS = [
    "${OPENAI_API_KEY}",
    "${X:-y}",
    "sk-not-a-reference",
    "openai/gpt-4.1-mini",
    "ollama_chat/qwen",
    "auto",
    "prompt",
    "json_schema",
    "http://127.0.0.1:1/v1",
    "*.lock",
    "",
    "1",
    "yes",
    "中文",
]
yaml_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70_000),
    st.sampled_from([0, 1, 2, 64, 65, 500, 499, 2**63, 10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(_STRINGS),
    st.text(max_size=12),
)
yaml_value = st.recursive(
    yaml_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(_TOP_KEYS + _MODEL_KEYS + _REVIEW_KEYS), st.text(max_size=5)),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


def _entry(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    key = st.one_of(st.sampled_from(keys), st.sampled_from(keys), st.sampled_from(_UNKNOWN_KEYS))
    return st.dictionaries(key, st.one_of(yaml_scalar, yaml_scalar, yaml_value), max_size=6)


config_data = st.fixed_dictionaries(
    {},
    optional={
        "version": st.one_of(st.just(1), yaml_scalar),
        "default": st.one_of(st.sampled_from(_MODEL_NAMES), yaml_scalar),
        "prefer": st.one_of(st.lists(st.sampled_from(_MODEL_NAMES), max_size=3), yaml_value),
        "models": st.one_of(
            st.dictionaries(
                st.one_of(st.sampled_from(_MODEL_NAMES), yaml_scalar),
                st.one_of(_entry(_MODEL_KEYS), yaml_value),
                max_size=3,
            ),
            yaml_value,
        ),
        "review": st.one_of(_entry(_REVIEW_KEYS), yaml_value),
        "sources": yaml_value,
        "modle": yaml_value,
    },
)


def _dump(data: Any) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8")


# Hand-written YAML: tags, anchors and aliases, syntax errors, huge values, odd encodings.
_BOMB = (
    b'l0: &l0 ["lol", "lol", "lol", "lol", "lol"]\n'
    b"l1: &l1 [*l0, *l0, *l0, *l0, *l0]\n"
    b"l2: &l2 [*l1, *l1, *l1, *l1, *l1]\n"
    b"l3: &l3 [*l2, *l2, *l2, *l2, *l2]\n"
)
YAML_SNIPPETS = [
    b"",
    b"   \n\n",
    b"~\n",
    b"---\n",
    b"...\n",
    b"[]\n",
    b"1\n",
    b"'just a string'\n",
    b"version: 1\n",
    b"version: 2\n",
    b"version: !!str 1\n",
    b"version: !!float 1\n",
    b"version: 0x1\n",
    b"version: 1\nversion: 1\n",
    b"models:\n  m: {model: openai/x}\ndefault: m\n",
    b"models:\n  m: {model: openai/x, api_key: sk-123}\n",
    b"models:\n  m: {model: openai/x, input_cost_per_token: 1e-6}\n",
    b"models:\n  m: {model: openai/x, context_window: 0}\n",
    b"models:\n  m: !!python/object:os.system {}\n",
    b"models: !!set {a, b}\n",
    b"models: !!omap [a: {model: x}]\n",
    b"models: !!pairs [[a, b]]\n",
    b"models: {? [a, b] : c}\n",
    b"models: {m: {model: !!binary 'aGVsbG8='}}\n",
    b"models: {m: {model: !!binary '***'}}\n",
    b"review: !custom {max_chunk_tokens: 1}\n",
    b"review: {max_chunk_tokens: !!timestamp 2001-02-30}\n",
    b"review: {max_chunk_tokens: 2001-02-30}\n",
    b"review:\n  exclude: [2001-13-01]\n",
    b"review: {max_chunk_tokens: " + b"9" * 5000 + b"}\n",
    b"review: {max_chunk_tokens: 0x" + b"f" * 5000 + b"}\n",
    b"review: {temperature: 1.0e+999, timeout_seconds: .nan}\n",
    b"review: {max_chunk_tokens: 190:20:30}\n",
    b"review: {max_chunk_tokens: 1_000_000}\n",
    b"review: &r {exclude: *r}\n",
    b"prefer: &p [*p]\n",
    b"models: &m {a: *m}\n",
    b"review: *undefined\n",
    b"base: &b {model: openai/x}\nmodels:\n  a:\n    <<: *b\n    context_window: 9\n",
    b"models:\n  a:\n    <<: [1, 2]\n",
    _BOMB + b"prefer: *l3\n",
    _BOMB + b"review: {exclude: *l3}\n",
    _BOMB + b"models: {m: {model: *l3}}\n",
    b"models: [\n",
    b"\tversion: 1\n",
    b"version: 'unterminated\n",
    b"{\n",
    b": :\n",
    b"- a\nb: c\n",
    b"%YAML 9.9\n---\nversion: 1\n",
    b"%TAG ! tag:x,2000:\n---\nversion: !a 1\n",
    b"---\nversion: 1\n---\nversion: 1\n",
    b"version: 1\n\x00\n",
    b"version: 1\nx: \xff\xfe\n",
    b"\xef\xbb\xbfversion: 1\n",
    b"\xff\xfev\x00e\x00r\x00",
    b"version: 1\r\nreview:\r\n  concurrency: 65\r\n",
    b"[" * 1000 + b"]" * 1000 + b"\n",
    b"a:\n" + b"".join(b"  " * k + b"- \n" for k in range(1, 800)),
    b"models: {" + b"a: {" * 300 + b"}" * 300 + b"}\n",
    b"review:\n  exclude: " + b"x" * 20_000 + b"\n",
    b"&a a: *a\n",
    # Explicit tags on scalars that do not fit them; implicit ones that look like dates or ints.
    b"review: {temperature: !!float abc}\n",
    b"review: {retries: !!int abc}\n",
    b"review: {retries: !!int ''}\n",
    b"review: {retries: !!int 08}\n",
    b"review: {retries: !!int 0x}\n",
    b"review: {temperature: !!float ''}\n",
    b"models: {m: {structured_output: !!bool maybe}}\n",
    b"models: {m: {model: !!timestamp notadate}}\n",
    b"models: {m: {model: !!binary 1}}\n",
    b"models: {m: {model: !!null x}}\n",
    b"models: {m: {model: !!str [a]}}\n",
    b"review: {timeout_seconds: 2001-02-28 23:59:60}\n",
    b"review: {timeout_seconds: 2001-02-28t10:00:00+99:00}\n",
    b"review: {max_questions: " + b"1" * 5000 + b":00}\n",
    b"? |\n  multi\n  line key\n: 1\n",
    b"\x1b[31mversion\x1b[0m: 1\n",
]


@st.composite
def mutated_yaml(draw: st.DrawFn) -> bytes:
    data = draw(st.one_of(config_data.map(_dump), st.sampled_from(YAML_SNIPPETS)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["truncate", "insert", "replace", "splice"]))
        if op == "truncate":
            data = data[:at]
        elif op == "insert":
            data = (
                data[:at]
                + draw(
                    st.sampled_from(
                        [b"\n", b":", b"&a ", b"*a", b"!!", b"\t", b"\xff", b"[", b"'", b"- "]
                    )
                )
                + data[at:]
            )
        elif op == "replace":
            data = data[:at] + draw(st.binary(min_size=1, max_size=3)) + data[at + 1 :]
        else:
            data = data[:at] + draw(st.sampled_from(YAML_SNIPPETS)) + data[at:]
    return data


config_inputs = st.one_of(
    config_data.map(_dump),
    config_data.map(_dump),
    st.sampled_from(YAML_SNIPPETS),
    st.lists(st.sampled_from(YAML_SNIPPETS), min_size=2, max_size=3).map(b"".join),
    mutated_yaml(),
    st.binary(max_size=200),
)


def check_config(data: bytes, directory: Path) -> Config | None:
    """load_config gives a Config, or a ConfigError (None) whose text has no pydantic URL."""
    # The user's own config must never be read (HOME and XDG_CONFIG_HOME point elsewhere).
    assert str(user_config_path()).startswith(os.environ.get("XDG_CONFIG_HOME", "\0"))
    path = directory / "providers.yaml"
    path.write_bytes(data)
    try:
        config = load_config(repo_root=None, explicit=path)
    except ConfigError as err:
        assert err.exit_code == 2
        for text in (str(err), err.message, err.hint or ""):
            assert "errors.pydantic.dev" not in text, text
        return None
    assert isinstance(config, Config)
    return config


# Inputs that once escaped agent/config.py as tracebacks (found by this fuzzing): non-UTF-8
# bytes, deep nesting, and PyYAML scalar constructors raising plain ValueError / IndexError /
# KeyError / AttributeError instead of a YAMLError. Each must now be a ConfigError.
CONFIG_REGRESSIONS: list[tuple[str, bytes]] = [
    ("non-UTF-8 bytes", b"version: 1\nx: \xff\n"),
    ("UTF-16 file", "version: 1\n".encode("utf-16")),
    ("1000 nested lists", b"[" * 1000 + b"]" * 1000 + b"\n"),
    ("impossible date", b"review:\n  max_chunk_tokens: 2001-02-30\n"),
    ("leap second", b"review: {timeout_seconds: 2001-02-28 23:59:60}\n"),
    ("5000-digit int", b"review: {max_chunk_tokens: " + b"9" * 5000 + b"}\n"),
    ("!!int abc", b"review: {retries: !!int abc}\n"),
    ("!!float abc", b"review: {temperature: !!float abc}\n"),
    ("!!int ''", b"review: {retries: !!int ''}\n"),
    ("!!bool maybe", b"models: {m: {structured_output: !!bool maybe}}\n"),
    ("!!timestamp x", b"models: {m: {model: !!timestamp notadate}}\n"),
]


@pytest.fixture(scope="module")
def yaml_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ownit-fuzz-") as d:
        yield Path(d)


@pytest.mark.parametrize("data", [pytest.param(d, id=n) for n, d in CONFIG_REGRESSIONS])
def test_config_inputs_that_once_crashed_are_config_errors(data: bytes, yaml_dir: Path) -> None:
    path = yaml_dir / "providers.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_config(repo_root=None, explicit=path)
    assert str(path) in info.value.message


@FUZZ_SETTINGS
@given(data=config_inputs)
def test_load_config_returns_config_or_raises_config_error(data: bytes, yaml_dir: Path) -> None:
    check_config(data, yaml_dir)
