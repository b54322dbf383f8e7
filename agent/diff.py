"""Parse unified diffs (``git diff``, ``git format-patch``, plain ``diff -u``) into frozen objects.

Hand-written rather than built on ``unidiff`` because unidiff 1.0.1 decodes the whole input
with one strict encoding (a single latin-1 file fails everything), leaves ``\\r`` in paths of
CRLF diffs, reports copies as renames, and accepts truncated hunks and garbage without error.

Line numbers in ``DiffParseError`` are 1-based lines of the input.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, NoReturn

from agent.errors import DiffParseError

__all__ = [
    "Diff",
    "DiffLine",
    "FileDiff",
    "FileStatus",
    "Hunk",
    "LineKind",
    "Side",
    "parse_diff",
]

Side = Literal["old", "new"]


class FileStatus(StrEnum):
    ADDED = "added"
    DELETED = "deleted"
    MODIFIED = "modified"
    RENAMED = "renamed"
    COPIED = "copied"
    MODE_CHANGED = "mode_changed"


class LineKind(StrEnum):
    CONTEXT = " "
    ADDED = "+"
    REMOVED = "-"


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: LineKind
    text: str  # without the leading tag and without the line ending
    old_no: int | None  # None for added lines
    new_no: int | None  # None for removed lines
    no_newline_at_eof: bool = False  # followed by "\ No newline at end of file"


@dataclass(frozen=True, slots=True)
class Hunk:
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    section: str  # text after the second @@, stripped ("" if none)
    lines: tuple[DiffLine, ...]

    @property
    def header(self) -> str:
        head = f"@@ -{self.old_start},{self.old_count} +{self.new_start},{self.new_count} @@"
        return f"{head} {self.section}" if self.section else head

    def part(self, first: int, end: int) -> Hunk:
        """Lines ``first..end`` as a hunk of their own, numbered as in the diff: its header's
        ranges hold exactly those lines (a side with none starts, as git writes it, at the line
        before them)."""
        lines = self.lines[first:end]
        return replace(
            self,
            old_start=self._start("old", first, lines),
            old_count=sum(1 for ln in lines if ln.old_no is not None),
            new_start=self._start("new", first, lines),
            new_count=sum(1 for ln in lines if ln.new_no is not None),
            lines=lines,
        )

    def _start(self, side: Side, first: int, lines: tuple[DiffLine, ...]) -> int:
        def number(line: DiffLine) -> int | None:
            return line.old_no if side == "old" else line.new_no

        for line in lines:
            if (n := number(line)) is not None:
                return n
        for line in reversed(self.lines[:first]):  # none on this side: the last one before
            if (n := number(line)) is not None:
                return n
        start, count = (
            (self.old_start, self.old_count) if side == "old" else (self.new_start, self.new_count)
        )
        return start if count == 0 else start - 1  # git's start of an empty side

    def _range(self, side: Side) -> range:
        if side == "old":
            return range(self.old_start, self.old_start + self.old_count)
        if side == "new":
            return range(self.new_start, self.new_start + self.new_count)
        raise ValueError(f"side must be 'old' or 'new', not {side!r}")


@dataclass(frozen=True, slots=True)
class FileDiff:
    old_path: str | None  # None for added files
    new_path: str | None  # None for deleted files
    status: FileStatus
    hunks: tuple[Hunk, ...]
    is_binary: bool = False
    old_mode: str | None = None
    new_mode: str | None = None
    similarity: int | None = None  # rename/copy similarity index in percent
    has_encoding_errors: bool = False  # some bytes were not valid UTF-8 and were replaced

    @property
    def path(self) -> str:
        path = self.new_path if self.new_path is not None else self.old_path
        assert path is not None  # the parser never builds a file without any path
        return path

    @property
    def added(self) -> int:
        return sum(1 for h in self.hunks for ln in h.lines if ln.kind is LineKind.ADDED)

    @property
    def removed(self) -> int:
        return sum(1 for h in self.hunks for ln in h.lines if ln.kind is LineKind.REMOVED)

    def has_line(self, side: Side, n: int) -> bool:
        """Is line ``n`` of that side shown in some hunk (as context or as a change)?"""
        # A hunk's lines on one side are exactly the contiguous range its header announces,
        # so this needs no scan of the lines themselves.
        return any(n in h._range(side) for h in self.hunks)

    def line_numbers(self, side: Side) -> frozenset[int]:
        """All line numbers of that side shown in some hunk. Computed on each call."""
        return frozenset(n for h in self.hunks for n in h._range(side))


@dataclass(frozen=True, slots=True)
class Diff:
    files: tuple[FileDiff, ...]

    def file(self, path: str) -> FileDiff | None:
        """The file whose new path is ``path``, else the one whose old path is."""
        for f in self.files:
            if f.new_path == path:
                return f
        for f in self.files:
            if f.old_path == path:
                return f
        return None

    @property
    def is_empty(self) -> bool:
        return not self.files

    def __iter__(self) -> Iterator[FileDiff]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


# --- parsing -----------------------------------------------------------------------------------

# ASCII digits only: \d would also take Arabic-Indic or fullwidth digits, which no diff tool
# writes.
_HUNK_RE = re.compile(r"@@ -([0-9]+)(?:,([0-9]+))? \+([0-9]+)(?:,([0-9]+))? @@(.*)")
_BINARY_FILES_RE = re.compile(r"Binary files (.+) and (.+) differ")
_SIMILARITY_RE = re.compile(r"([0-9]+)%")
# Line numbers and counts beyond a signed 64-bit integer come from no real file (git itself
# cannot write them) and would break every consumer of an anchor; they also keep int() clear of
# Python's 4,300-digit limit on parsing integers.
_MAX_NUMBER = 2**63 - 1
# One line of a "GIT binary patch" body: a length character, then base85 (which has no space).
_BASE85_LINE_RE = re.compile(r"[A-Za-z][0-9A-Za-z!#$%&()*+\-;<=>?@^_`{|}~]*")
_DEV_NULL = "/dev/null"
# diff -N marks the missing side of an added/removed file with the epoch instead of /dev/null.
_EPOCHS = ("1970-01-01", "1969-12-31")
# git's default a/ b/ and its diff.mnemonicPrefix letters (commit, index, object, worktree).
_MNEMONIC = frozenset({"c/", "i/", "o/", "w/"})
_C_ESCAPES = {
    "a": 7,
    "b": 8,
    "t": 9,
    "n": 10,
    "v": 11,
    "f": 12,
    "r": 13,
    '"': 34,
    "\\": 92,
}
_TRUNCATED_HINT = "regenerate the diff; if it was copied or piped, make sure nothing was cut off"
_BAD_LINE_HINT = "every line inside a hunk must start with ' ', '+', '-' or '\\'"


def parse_diff(data: bytes | str) -> Diff:
    """Parse unified-diff text. Raises ``DiffParseError`` if it is malformed or not a diff."""
    return _Parser(data).parse()


def _split_lines(data: bytes | str) -> tuple[list[str], list[int]]:
    """Split on "\\n" only (str.splitlines would also split on \\f, \\x1c, U+2028 in content).

    Returns the lines, which keep any trailing "\\r" (the caller decides whether it is part of
    the line ending), and the sorted 0-based indexes of lines that were not valid UTF-8.
    """
    bad: list[int] = []
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raw = data.split(b"\n")
            lines = []
            for k, chunk in enumerate(raw):
                try:
                    lines.append(chunk.decode("utf-8"))
                except UnicodeDecodeError:
                    lines.append(chunk.decode("utf-8", errors="replace"))
                    bad.append(k)
            if lines and lines[-1] == "":
                lines.pop()
            return lines, bad
    else:
        text = data
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines, bad


def _bare_header(h: Hunk) -> str:
    return f"@@ -{h.old_start},{h.old_count} +{h.new_start},{h.new_count} @@"


def _clip(text: str, limit: int = 20) -> str:
    """``text`` shortened for an error message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chomp_cr(line: str) -> str:
    return line[:-1] if line.endswith("\r") else line


def _unquote(s: str) -> tuple[str, str, bool]:
    """Undo git's C-quoting of a path that starts with '"'.

    Returns (path, rest after the closing quote, had invalid UTF-8). Octal escapes are raw
    bytes, so the path is reassembled as bytes and decoded once.
    """
    out = bytearray()
    i, n = 1, len(s)
    while i < n:
        c = s[i]
        if c == '"':
            path = bytes(out)
            try:
                return path.decode("utf-8"), s[i + 1 :], False
            except UnicodeDecodeError:
                return path.decode("utf-8", errors="replace"), s[i + 1 :], True
        if c == "\\" and i + 1 < n:
            e = s[i + 1]
            if e in "01234567" and i + 3 < n and all(d in "01234567" for d in s[i + 1 : i + 4]):
                out.append(int(s[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out.extend(bytes([_C_ESCAPES[e]]) if e in _C_ESCAPES else _utf8(e))
            i += 2
            continue
        out.extend(_utf8(c))
        i += 1
    raise ValueError("unterminated quoted path")


def _utf8(c: str) -> bytes:
    # A str input may hold lone surrogates; they become invalid UTF-8 and are then replaced
    # (and flagged) like any other undecodable byte of a path.
    return c.encode("utf-8", errors="surrogatepass")


def _split_git_paths(rest: str) -> tuple[str, str, bool]:
    """Split the two paths of a ``diff --git`` line; unquoted paths may contain spaces."""
    if rest.startswith('"'):
        old, tail, bad1 = _unquote(rest)
        tail = tail.lstrip(" ")
        if tail.startswith('"'):
            new, _, bad2 = _unquote(tail)
            return old, new, bad1 or bad2
        return old, tail, bad1
    if rest.endswith('"') and ' "' in rest:
        # Only the new path is quoted. An unquoted path never holds '"' (git quotes it), but
        # the quoted one may hold ' "' itself (a name ending in a space): split at the first
        # ' "'. If that quoted string does not end the line, fall back to the guesses below
        # ("rename from/to" and ---/+++ lines give exact paths anyway).
        k = rest.index(' "')
        new, tail, bad = _unquote(rest[k + 1 :])
        if not tail:
            return rest[:k], new, bad
    # Same path on both sides (the common case): the line is symmetric around its middle space.
    half = (len(rest) - 1) // 2
    if len(rest) % 2 == 1 and rest[half] == " ":
        old, new = rest[:half], rest[half + 1 :]
        if old == new or (old[1:2] == "/" and new[1:2] == "/" and old[2:] == new[2:]):
            return old, new, False
    # Renames/copies: later "rename from/to" lines give exact paths; this is only a fallback.
    if rest.count(" b/") == 1:
        k = rest.index(" b/")
    else:
        k = rest.find(" ")
        if k < 0:
            return rest, rest, False
    return rest[:k], rest[k + 1 :], False


def _strip_plain_prefixes(old: str, new: str) -> tuple[str, str]:
    """Strip a/ b/ when every real side carries its own; a /dev/null side does not vote."""
    if (old == _DEV_NULL or old.startswith("a/")) and (new == _DEV_NULL or new.startswith("b/")):
        return old if old == _DEV_NULL else old[2:], new if new == _DEV_NULL else new[2:]
    return old, new


def _is_prefixed(old: str, new: str) -> bool:
    """Do both sides carry git's a/ b/ (or mnemonic) prefixes consistently?"""
    po, pn = old[:2], new[:2]
    if po == "a/" and pn == "b/":
        return True
    return po in _MNEMONIC and pn in _MNEMONIC and po != pn


@dataclass(slots=True)
class _FileBuilder:
    start: int  # 0-based index of the first line of this file's section
    old_path: str | None = None
    new_path: str | None = None
    status: FileStatus | None = None  # set by git headers / /dev/null; MODIFIED if left None
    hunks: list[Hunk] = field(default_factory=list)
    is_binary: bool = False
    old_mode: str | None = None
    new_mode: str | None = None
    similarity: int | None = None
    bad_path: bool = False
    strip: tuple[str, str] | None = None  # git prefixes to strip from ---/+++ paths

    @property
    def label(self) -> str:
        return self.new_path or self.old_path or "<unknown file>"


class _Parser:
    def __init__(self, data: bytes | str) -> None:
        self.lines, self.bad = _split_lines(data)
        self.files: list[FileDiff] = []
        self.stray_hunk: int | None = None  # first @@ line seen outside any file, for errors

    def parse(self) -> Diff:
        lines = self.lines
        n = len(lines)
        if all(not ln.strip() for ln in lines):
            return Diff(files=())
        i = 0
        while i < n:
            line = _chomp_cr(lines[i])
            if line.startswith("diff --git "):
                i = self._git_file(i)
            elif line.startswith(("diff --cc ", "diff --combined ")):
                raise DiffParseError(
                    "combined (merge) diffs are not supported",
                    line=i + 1,
                    hint="diff the merge against one parent, e.g. `git diff <merge>^1 <merge>`",
                )
            elif line.startswith("--- ") and i + 1 < n and lines[i + 1].startswith("+++ "):
                i = self._plain_file(i)
            elif line.startswith("Binary files ") and line.endswith(" differ"):
                # diff -r reports a changed binary file with this single line.
                i = self._plain_binary(i, line)
            else:
                # Text before, between or after files: mail headers, commit messages,
                # "diff -r" command lines, "-- " signatures. Ignored on purpose.
                if self.stray_hunk is None and _HUNK_RE.match(line):
                    if self.files:
                        # After a file, a bare hunk would otherwise be silently dropped.
                        raise DiffParseError(
                            "hunk header outside of any file (after text that ended the "
                            f"previous file, {self.files[-1].path})",
                            line=i + 1,
                            hint="remove the text between the hunks, or regenerate the diff",
                        )
                    self.stray_hunk = i
                i += 1
        if not self.files:
            if self.stray_hunk is not None:
                raise DiffParseError(
                    "found a hunk header but no file header (--- / +++ lines)",
                    line=self.stray_hunk + 1,
                    hint="pass the whole output of `git diff` or `diff -u`",
                )
            raise DiffParseError(
                "input is not a unified diff", hint="pass the output of `git diff` or `diff -u`"
            )
        return Diff(files=tuple(self.files))

    # --- one file ------------------------------------------------------------------------------

    def _git_file(self, i: int) -> int:
        lines, n = self.lines, len(self.lines)
        fb = _FileBuilder(start=i)
        try:
            old, new, fb.bad_path = _split_git_paths(_chomp_cr(lines[i])[len("diff --git ") :])
        except ValueError as e:
            raise DiffParseError(str(e), line=i + 1) from None
        if _is_prefixed(old, new):
            fb.strip = (old[:2], new[:2])
            old, new = old[2:], new[2:]
        fb.old_path, fb.new_path = old, new
        i += 1
        while i < n:
            line = _chomp_cr(lines[i])
            if line.startswith("--- "):
                if i + 1 >= n or not lines[i + 1].startswith("+++ "):
                    raise DiffParseError(
                        f"file header '---' for {fb.label} is not followed by '+++'",
                        line=i + 2 if i + 1 < n else i + 1,
                        hint=_TRUNCATED_HINT,
                    )
                self._set_paths(fb, i)
                return self._finish(fb, self._hunks(fb, i + 2))
            if line.startswith("@@ "):
                # No ---/+++ pair; git never writes this, but the paths are known, so accept it.
                return self._finish(fb, self._hunks(fb, i))
            if line.startswith("GIT binary patch"):
                fb.is_binary = True
                return self._finish(fb, self._skip_binary_patch(i + 1))
            if line.startswith("Binary files ") and line.endswith(" differ"):
                fb.is_binary = True
                return self._finish(fb, i + 1)
            if not self._git_extended_header(fb, line, i):
                break  # the next file, or trailing text: a file with no hunks ends here
            i += 1
        return self._finish(fb, i)

    def _git_extended_header(self, fb: _FileBuilder, line: str, i: int) -> bool:
        """Apply one git extended header line; False if ``line`` is not one."""
        key, _, value = line.partition(" ")
        if key == "index":
            return True
        if line.startswith("new file mode "):
            self._set_status(fb, FileStatus.ADDED, line, i)
            fb.old_path, fb.new_mode = None, value[len("file mode ") :]
        elif line.startswith("deleted file mode "):
            self._set_status(fb, FileStatus.DELETED, line, i)
            fb.new_path, fb.old_mode = None, value[len("file mode ") :]
        elif line.startswith("old mode "):
            fb.old_mode = line[len("old mode ") :]
        elif line.startswith("new mode "):
            fb.new_mode = line[len("new mode ") :]
        elif line.startswith(("similarity index ", "dissimilarity index ")):
            m = _SIMILARITY_RE.search(line)
            if m and key == "similarity":
                digits = m.group(1).lstrip("0") or "0"
                if len(digits) > 3 or int(digits) > 100:
                    raise DiffParseError(
                        f"similarity index {_clip(m.group(1))}% is not a percentage (0-100)",
                        line=i + 1,
                    )
                fb.similarity = int(digits)
        elif line.startswith(("rename from ", "rename old ", "copy from ")):
            if fb.status in (FileStatus.ADDED, FileStatus.DELETED):
                self._set_status(fb, FileStatus.RENAMED, line, i)  # raises: a contradiction
            fb.old_path = self._header_path(fb, line.split(" ", 2)[2], i)
        elif line.startswith(("rename to ", "rename new ", "copy to ")):
            status = FileStatus.RENAMED if key == "rename" else FileStatus.COPIED
            self._set_status(fb, status, line, i)
            fb.new_path = self._header_path(fb, line.split(" ", 2)[2], i)
        else:
            return False
        return True

    def _set_status(self, fb: _FileBuilder, status: FileStatus, line: str, i: int) -> None:
        """A git header line says what happened to the file; two that disagree are an error
        (git apply refuses them too), not something to settle silently."""
        if fb.status is not None and fb.status is not status:
            raise DiffParseError(
                f"{_clip(line, 60)!r} contradicts an earlier header line of {fb.label}, "
                f"which marked it {fb.status.value}",
                line=i + 1,
                hint="the header lines of two files look mixed up; regenerate the diff",
            )
        fb.status = status

    def _header_path(self, fb: _FileBuilder, raw: str, i: int) -> str:
        if not raw.startswith('"'):
            return raw
        try:
            path, _, bad = _unquote(raw)
        except ValueError as e:
            raise DiffParseError(str(e), line=i + 1) from None
        fb.bad_path |= bad
        return path

    def _side_path(self, fb: _FileBuilder, raw: str, i: int) -> tuple[str, str]:
        """Path and timestamp (may be "") of a ---/+++ line's value."""
        if raw.startswith('"'):
            try:
                path, tail, bad = _unquote(raw)
            except ValueError as e:
                raise DiffParseError(str(e), line=i + 1) from None
            fb.bad_path |= bad
            return path, tail.strip()
        # diff -u puts a tab and a timestamp after the name; git a lone tab after names with
        # spaces. Unquoted names cannot contain a tab (git and GNU diff quote those).
        path, _, stamp = raw.partition("\t")
        return path, stamp.strip()

    def _set_paths(self, fb: _FileBuilder, i: int) -> None:
        """Take paths from the ---/+++ pair at ``i``; they are unambiguous even with spaces."""
        old, _ = self._side_path(fb, _chomp_cr(self.lines[i])[4:], i)
        new, _ = self._side_path(fb, _chomp_cr(self.lines[i + 1])[4:], i + 1)
        if fb.strip is not None:
            old = old.removeprefix(fb.strip[0]) if old != _DEV_NULL else old
            new = new.removeprefix(fb.strip[1]) if new != _DEV_NULL else new
        # A new file's '---' and a deleted file's '+++' name /dev/null; a rename or copy has a
        # file on both sides. git apply rejects anything else ("expected /dev/null").
        for k, side, path, want in (
            (i, "---", old, FileStatus.ADDED),
            (i + 1, "+++", new, FileStatus.DELETED),
        ):
            if fb.status is not None and (path == _DEV_NULL) != (fb.status is want):
                what = "is /dev/null" if path == _DEV_NULL else "should be /dev/null"
                raise DiffParseError(
                    f"'{side}' path of {fb.label} {what}, but its git header marks it "
                    f"{fb.status.value}",
                    line=k + 1,
                    hint="the header lines of two files look mixed up; regenerate the diff",
                )
        # Renames/copies keep their exact paths from the "rename from/to" lines.
        if fb.status not in (FileStatus.RENAMED, FileStatus.COPIED):
            fb.old_path = None if old == _DEV_NULL else old
            fb.new_path = None if new == _DEV_NULL else new
        if old == _DEV_NULL:
            fb.status = FileStatus.ADDED
        elif new == _DEV_NULL:
            fb.status = FileStatus.DELETED

    def _plain_file(self, i: int) -> int:
        fb = _FileBuilder(start=i)
        old, old_stamp = self._side_path(fb, _chomp_cr(self.lines[i])[4:], i)
        new, new_stamp = self._side_path(fb, _chomp_cr(self.lines[i + 1])[4:], i + 1)
        old, new = _strip_plain_prefixes(old, new)
        fb.old_path = None if old == _DEV_NULL else old
        fb.new_path = None if new == _DEV_NULL else new
        end = self._hunks(fb, i + 2)
        only = fb.hunks[0] if len(fb.hunks) == 1 else None
        if old == _DEV_NULL or (only and only.old_count == 0 and old_stamp.startswith(_EPOCHS)):
            fb.status, fb.old_path = FileStatus.ADDED, None
        elif new == _DEV_NULL or (only and only.new_count == 0 and new_stamp.startswith(_EPOCHS)):
            fb.status, fb.new_path = FileStatus.DELETED, None
        # Differing old/new names in a plain diff ("old/x" vs "new/x") are not a rename.
        return self._finish(fb, end)

    def _plain_binary(self, i: int, line: str) -> int:
        m = _BINARY_FILES_RE.fullmatch(line)
        if m is None:
            return i + 1
        fb = _FileBuilder(start=i, is_binary=True)
        old, new = _strip_plain_prefixes(m.group(1), m.group(2))
        fb.old_path = None if old == _DEV_NULL else old
        fb.new_path = None if new == _DEV_NULL else new
        if fb.old_path is None:
            fb.status = FileStatus.ADDED
        elif fb.new_path is None:
            fb.status = FileStatus.DELETED
        return self._finish(fb, i + 1)

    def _skip_binary_patch(self, i: int) -> int:
        """Skip the base85 body of a GIT binary patch; return the first line after it."""
        lines, n = self.lines, len(self.lines)
        while i < n:
            line = _chomp_cr(lines[i])
            if not (
                not line
                or line.startswith(("literal ", "delta "))
                or _BASE85_LINE_RE.fullmatch(line)
            ):
                break
            i += 1
        return i

    def _finish(self, fb: _FileBuilder, end: int) -> int:
        """Freeze ``fb`` (lines ``fb.start``..``end``-1) into a FileDiff; return ``end``."""
        if fb.old_path is None and fb.new_path is None:
            raise DiffParseError("file header names /dev/null on both sides", line=fb.start + 1)
        if (fb.status is FileStatus.ADDED and fb.old_path is not None) or (
            fb.status is FileStatus.DELETED and fb.new_path is not None
        ):
            raise DiffParseError(  # the checks above make this unreachable; kept as a guard
                f"{fb.label} is marked {fb.status.value} but has paths on both sides",
                line=fb.start + 1,
            )
        if fb.old_path == "" or fb.new_path == "":
            raise DiffParseError(
                f"file header has an empty {'old' if fb.old_path == '' else 'new'} path",
                line=fb.start + 1,
                hint="the paths after 'diff --git', '---'/'+++' or 'rename from/to' are missing",
            )
        status = fb.status
        if status is None:
            mode_only = (
                fb.old_mode is not None
                and fb.new_mode is not None
                and fb.old_mode != fb.new_mode
                and not fb.hunks
                and not fb.is_binary
            )
            status = FileStatus.MODE_CHANGED if mode_only else FileStatus.MODIFIED
        k = bisect_left(self.bad, fb.start)
        self.files.append(
            FileDiff(
                old_path=fb.old_path,
                new_path=fb.new_path,
                status=status,
                hunks=tuple(fb.hunks),
                is_binary=fb.is_binary,
                old_mode=fb.old_mode,
                new_mode=fb.new_mode,
                similarity=fb.similarity,
                has_encoding_errors=fb.bad_path or (k < len(self.bad) and self.bad[k] < end),
            )
        )
        return end

    # --- hunks ---------------------------------------------------------------------------------

    def _hunks(self, fb: _FileBuilder, i: int) -> int:
        """Parse consecutive hunks starting at ``i``; return the index after the last one."""
        lines, n = self.lines, len(self.lines)
        if i >= n or not lines[i].startswith("@@"):
            raise DiffParseError(
                f"expected a hunk header (@@ -a,b +c,d @@) for {fb.label}",
                line=min(i, n - 1) + 1,
                hint=_TRUNCATED_HINT,
            )
        while i < n and lines[i].startswith("@@"):
            i = self._hunk(fb, i)
            # Some tools (and hand edits) leave blank lines between hunks; skip them so the
            # next hunk is not mistaken for stray text and dropped.
            j = i
            while j < n and not lines[j].strip():
                j += 1
            if j < n and lines[j].startswith("@@ "):
                i = j
        if i < n:
            line = _chomp_cr(lines[i])
            overlong = line[:1] in ("+", "-", " ") and line != "-- "
            if overlong and not (
                line.startswith("--- ") and i + 1 < n and lines[i + 1][:4] == "+++ "
            ):
                h = fb.hunks[-1]
                side = {"+": "new", "-": "old"}.get(line[:1], "context")
                self._too_long(fb, _bare_header(h), i, side)
        return i

    def _hunk(self, fb: _FileBuilder, i: int) -> int:
        lines, n = self.lines, len(self.lines)
        raw_header = lines[i]
        # A diff saved with CRLF endings has "\r" on its @@ lines too; a git diff of CRLF file
        # content does not, and there the "\r" belongs to the content and stays in ``text``.
        crlf = raw_header.endswith("\r")
        head_line = raw_header[:-1] if crlf else raw_header
        m = _HUNK_RE.fullmatch(head_line)
        if m is None:
            raise DiffParseError(
                f"malformed hunk header {head_line!r} in {fb.label}",
                line=i + 1,
                hint="hunk headers look like '@@ -12,5 +12,7 @@'",
            )
        o_start, o_count, n_start, n_count = (
            self._number(m.group(k), head_line, i) if m.group(k) else 1 for k in (1, 2, 3, 4)
        )
        section = m.group(5).strip()
        header = f"@@ -{o_start},{o_count} +{n_start},{n_count} @@"  # for messages
        for side, start, count in (("old", o_start, o_count), ("new", n_start, n_count)):
            if start == 0 and count:
                raise DiffParseError(
                    f"hunk header {_clip(head_line, 60)!r} in {fb.label} starts its {side} "
                    "lines at line 0; lines are numbered from 1 (only an empty side starts at 0)",
                    line=i + 1,
                    hint="the @@ line is damaged; regenerate the diff",
                )
            if start + count - 1 > _MAX_NUMBER:
                raise DiffParseError(
                    f"hunk header {_clip(head_line, 60)!r} in {fb.label} reaches {side} line "
                    f"{_clip(str(start + count - 1))}, beyond any real file",
                    line=i + 1,
                    hint="the @@ line is damaged; regenerate the diff",
                )
        o_no, n_no = o_start, n_start
        o_left, n_left = o_count, n_count
        out: list[DiffLine] = []
        i += 1
        while o_left or n_left or (i < n and lines[i][:1] == "\\"):
            line = lines[i] if i < n else None
            if line is not None and crlf and line.endswith("\r"):
                line = line[:-1]
            tag = line[:1] if line is not None else ""
            if tag == " " or (tag == "" and line is not None and o_left and n_left):
                # An empty line where context is possible: some tools strip the lone space.
                if not (o_left and n_left):
                    self._too_long(fb, header, i, "old" if not o_left else "new")
                assert line is not None
                out.append(DiffLine(LineKind.CONTEXT, line[1:], o_no, n_no))
                o_no, n_no, o_left, n_left = o_no + 1, n_no + 1, o_left - 1, n_left - 1
            elif tag == "-":
                if not o_left:
                    self._too_long(fb, header, i, "old")
                assert line is not None
                out.append(DiffLine(LineKind.REMOVED, line[1:], o_no, None))
                o_no, o_left = o_no + 1, o_left - 1
            elif tag == "+":
                if not n_left:
                    self._too_long(fb, header, i, "new")
                assert line is not None
                out.append(DiffLine(LineKind.ADDED, line[1:], None, n_no))
                n_no, n_left = n_no + 1, n_left - 1
            elif tag == "\\":
                if not out:
                    raise DiffParseError(
                        f"'\\ No newline at end of file' before any line of hunk {header}",
                        line=i + 1,
                    )
                out[-1] = replace(out[-1], no_newline_at_eof=True)
            elif line is None or tag in ("", "@", "d"):
                # EOF, a blank line, the next hunk or the next "diff --git": the hunk was cut.
                side, done, want = (
                    ("old", o_count - o_left, o_count)
                    if o_left
                    else ("new", n_count - n_left, n_count)
                )
                raise DiffParseError(
                    f"hunk {header} in {fb.label} ends after {done} of {want} {side} lines; "
                    "the diff looks truncated",
                    line=min(i, n - 1) + 1,
                    hint=_TRUNCATED_HINT,
                )
            else:
                raise DiffParseError(
                    f"unexpected line in hunk {header} of {fb.label}: {line[:40]!r}",
                    line=i + 1,
                    hint=_BAD_LINE_HINT,
                )
            i += 1
        fb.hunks.append(Hunk(o_start, o_count, n_start, n_count, section, tuple(out)))
        return i

    def _number(self, digits: str, head_line: str, i: int) -> int:
        digits = digits.lstrip("0") or "0"  # leading zeros count towards int()'s digit limit
        if len(digits) > len(str(_MAX_NUMBER)) or int(digits) > _MAX_NUMBER:
            raise DiffParseError(
                f"hunk header {_clip(head_line, 60)!r} has a number too large for a line "
                f"number or count ({len(digits):,} digits)",
                line=i + 1,
                hint="the @@ line is damaged; regenerate the diff",
            )
        return int(digits)

    def _too_long(self, fb: _FileBuilder, header: str, i: int, side: str) -> NoReturn:
        raise DiffParseError(
            f"hunk {header} in {fb.label} has more {side} lines than its header says",
            line=i + 1,
            hint="the @@ line counts do not match the hunk body; regenerate the diff",
        )
