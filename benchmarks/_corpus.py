"""Deterministic pull-request diffs shaped like real large PRs, for ``bench_large_pr.py``.

A corpus is a ``git diff`` plus what the generator knows about every changed line: its file,
whether it was added or removed, and whether its file is *reviewable*. Reviewable files are the
text files a reviewer is expected to read: modified, added and renamed-with-changes Python and
TypeScript-like code. Not reviewable, by design: deleted files (a large deleted SVG among them),
binary files, a lockfile, a vendored minified library and generated code. Pure renames change
no line.

Every line of code carries a short identifier suffix that is unique in the corpus (``_kqd``), so
a line's text names the line: when a model request contains that text, the line reached the
model. Lines whose text is not unique (blank lines, a lone ``}``) are not checkable; the
benchmark counts them apart. Same arguments, same bytes.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

REVIEWABLE_KINDS = ("modified", "added", "renamed+changed")


@dataclass(frozen=True)
class ChangedLine:
    path: str
    tag: str  # "+" added, "-" removed
    text: str


@dataclass
class FileDiff:
    path: str
    kind: str  # modified, added, renamed, renamed+changed, deleted, binary, lockfile, ...
    lines: list[str] = field(default_factory=list)  # the file's block of the diff
    changed: list[ChangedLine] = field(default_factory=list)

    @property
    def reviewable(self) -> bool:
        return self.kind in REVIEWABLE_KINDS


@dataclass(frozen=True)
class Corpus:
    name: str
    files: tuple[FileDiff, ...]

    @property
    def text(self) -> str:
        return "\n".join(line for f in self.files for line in f.lines) + "\n"

    def changed(self, reviewable: bool | None = None) -> list[ChangedLine]:
        return [
            line
            for f in self.files
            if reviewable is None or f.reviewable == reviewable
            for line in f.changed
        ]

    def checkable(self) -> list[ChangedLine]:
        """Changed lines of reviewable files whose stripped text occurs once in the diff."""
        counts = Counter(_diff_texts(self))
        return [
            line
            for line in self.changed(reviewable=True)
            if line.text.strip() and counts[line.text.strip()] == 1
        ]

    def hunk_lines(self) -> list[str]:
        """The text of every line (context and changed) in the hunks of reviewable files."""
        out = []
        for f in self.files:
            if not f.reviewable:
                continue
            in_hunk = False
            for line in f.lines:
                in_hunk = in_hunk or line.startswith("@@")
                if in_hunk and line[:1] in " +-":
                    out.append(line[1:])
        return out

    def kinds(self) -> Counter[str]:
        return Counter(f.kind for f in self.files)


def _diff_texts(corpus: Corpus) -> Iterator[str]:
    """The stripped text of every added, removed and context line of the diff."""
    for f in corpus.files:
        in_hunk = False
        for line in f.lines:
            if line.startswith("@@"):
                in_hunk = True
            elif in_hunk and line[:1] in " +-":
                yield line[1:].strip()


# --- lines of code ------------------------------------------------------------------------

_WORDS = (
    "charge",
    "refund",
    "invoice",
    "ledger",
    "account",
    "payment",
    "retry",
    "session",
    "balance",
    "customer",
    "order",
    "webhook",
    "currency",
    "timeout",
    "limit",
    "report",
    "export",
    "budget",
    "period",
    "rollup",
)
_VERBS = ("fetch", "load", "send", "parse", "validate", "lookup", "submit", "compute", "merge")
_PY_TYPES = ("int", "str", "bool", "float", "Decimal", "dict[str, Any]", "list[str]", "None")
_TS_TYPES = ("number", "string", "boolean", "Money", "Record<string, number>", "string[]")
_COMMENTS = (
    "keep the old behaviour for callers that pass None",
    "the provider retries on 5xx; we must not double-charge",
    "amounts are in minor units (cents)",
    "see the incident review for why this is bounded",
    "TODO: move to settings once the rollout is done",
    "the cache is per process; a restart clears it",
)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class Writer:
    """Writes plausible Python/TypeScript lines, each with a corpus-unique identifier."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.count = 0

    def uid(self) -> str:
        self.count += 1
        n, out = self.count + 26 * 27, ""  # at least three letters
        while n:
            n, r = divmod(n, 26)
            out = _LETTERS[r] + out
        return out

    def name(self) -> str:
        rng = self.rng
        return f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}_{self.uid()}"

    def camel(self) -> str:
        first, *rest = self.name().split("_")
        return first + "".join(part.title() for part in rest)

    def python(self) -> str:
        rng, a, b, n = self.rng, self.name(), self.rng.choice(_WORDS), self.rng.randint(1, 500)
        verb, kind = rng.choice(_VERBS), rng.choice(_PY_TYPES)
        return rng.choice(
            (
                f"    def {a}(self, {b}: {kind}, *, retries: int = {n % 7}) -> bool:",
                f"        {a} = self.client.{verb}_{b}({b}, timeout={n / 10:.1f})",
                f"        if {a} is None or {a}.status != {n}:",
                f'            raise ValueError(f"{a}: unexpected {b} {{{b}!r}}")',
                f"        return {a}.{verb}({b}, limit={n})",
                f"        # {rng.choice(_COMMENTS)} ({a})",
                f"        for {a} in self.{b}s:",
                f'            log.debug("{a} %s retry %d of %d", {b}, attempt, {n})',
                f"    {a}: {kind} = field(default={n})",
                f"        await asyncio.sleep(min({n} * 2**attempt, self.max_backoff_{a}))",
                f"        {a} = {{k: v for k, v in {b}.items() if v is not None}}",
                f"        self.{a} = {b}.{verb}() if {b} else {n}",
            )
        )

    def typescript(self) -> str:
        rng, a, b, n = self.rng, self.camel(), self.rng.choice(_WORDS), self.rng.randint(1, 500)
        verb, kind = rng.choice(_VERBS), rng.choice(_TS_TYPES)
        return rng.choice(
            (
                f"  const {a} = await this.client.{verb}({b}, {{ timeoutMs: {n * 10} }});",
                f"  if (!{a} || {a}.status !== {n}) {{",
                f"    throw new Error(`{a}: unexpected ${{{b}}}`);",
                f"  return {a}.{verb}({b}, {n});",
                f"  // {rng.choice(_COMMENTS)} ({a})",
                f"  for (const {a} of this.{b}s) {{",
                f"  private readonly {a}: Map<string, {kind}> = new Map();",
                f"  {a} = {b}.filter((item) => item.amount > {n});",
                f"  logger.debug('{a}', {{ {b}, attempt, limit: {n} }});",
                "  }",
            )
        )

    def line(self, language: str) -> str:
        """A line of code; now and then a blank line, as real diffs have."""
        if self.rng.random() < 0.06:
            return ""
        return self.python() if language == "py" else self.typescript()

    def header(self, language: str) -> str:
        """A function or class line, for hunk sections and the top of new blocks."""
        name = self.name()
        if language == "py":
            if self.rng.random() < 0.3:
                return f"class {name.title().replace('_', '')}(Base):"
            return f"def {name}(self, request: Request) -> Response:"
        if self.rng.random() < 0.3:
            return f"export class {name.title().replace('_', '')}Service {{"
        return f"export async function {self.camel()}(input: Input): Promise<Result> {{"


# --- files --------------------------------------------------------------------------------


def _hex(rng: random.Random, digits: int = 7) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _git_header(path: str) -> list[str]:
    return [f"diff --git a/{path} b/{path}"]


def modified_file(w: Writer, path: str, changed: int, kind: str = "modified") -> FileDiff:
    """A file with hunks of 3 context lines, a removed and an added block, 3 context lines."""
    language = "py" if path.endswith(".py") else "ts"
    f = FileDiff(path, kind, _git_header(path))
    if kind == "renamed+changed":
        old = path.replace("/", "/legacy_", 1)
        f.lines[0] = f"diff --git a/{old} b/{path}"
        f.lines += [
            f"similarity index {w.rng.randint(70, 95)}%",
            f"rename from {old}",
            f"rename to {path}",
        ]
    else:
        old = path
    f.lines += [f"index {_hex(w.rng)}..{_hex(w.rng)} 100644", f"--- a/{old}", f"+++ b/{path}"]
    old_line = new_line = w.rng.randint(5, 40)
    while changed > 0:
        size = min(changed, max(1, int(w.rng.lognormvariate(2.0, 0.8))))
        removed = w.rng.randint(0, size // 2) if size > 1 else 0
        added = size - removed
        changed -= size
        before = [w.line(language) for _ in range(3)]
        after = [w.line(language) for _ in range(3)]
        minus = [w.line(language) for _ in range(removed)]
        plus = [w.line(language) for _ in range(added)]
        section = f" {w.header(language)}" if w.rng.random() < 0.7 else ""
        f.lines.append(
            f"@@ -{old_line},{6 + removed} +{new_line},{6 + added} @@{section}",
        )
        f.lines += [" " + t for t in before]
        f.lines += ["-" + t for t in minus] + ["+" + t for t in plus]
        f.lines += [" " + t for t in after]
        f.changed += [ChangedLine(path, "-", t) for t in minus]
        f.changed += [ChangedLine(path, "+", t) for t in plus]
        gap = w.rng.randint(10, 80)
        old_line += 6 + removed + gap
        new_line += 6 + added + gap
    return f


def added_file(w: Writer, path: str, changed: int) -> FileDiff:
    """A new file: function and class blocks of 4-25 lines."""
    language = "py" if path.endswith(".py") else "ts"
    body: list[str] = []
    while len(body) < changed:
        body.append(w.header(language))
        body += [w.line(language) for _ in range(w.rng.randint(3, 24))]
        body.append("" if language == "py" else "}")
    body = body[:changed]
    f = FileDiff(path, "added", _git_header(path))
    f.lines += [
        "new file mode 100644",
        f"index 0000000..{_hex(w.rng)}",
        "--- /dev/null",
        f"+++ b/{path}",
        f"@@ -0,0 +1,{len(body)} @@",
    ]
    f.lines += ["+" + t for t in body]
    f.changed = [ChangedLine(path, "+", t) for t in body]
    return f


def deleted_file(path: str, body: list[str], rng: random.Random) -> FileDiff:
    f = FileDiff(path, "deleted", _git_header(path))
    f.lines += [
        "deleted file mode 100644",
        f"index {_hex(rng)}..0000000",
        f"--- a/{path}",
        "+++ /dev/null",
        f"@@ -1,{len(body)} +0,0 @@",
    ]
    f.lines += ["-" + t for t in body]
    f.changed = [ChangedLine(path, "-", t) for t in body]
    return f


def svg_body(rng: random.Random, lines: int) -> list[str]:
    """An illustration as design tools export it: one long path per line."""

    def point() -> str:
        return f"{rng.uniform(0, 512):.2f} {rng.uniform(0, 512):.2f}"

    paths = [
        f'  <path d="M{point()} C{point()} {point()} {point()} L{point()} Z" '
        f'fill="#{rng.getrandbits(24):06x}" opacity="0.{rng.randint(10, 99)}"/>'
        for _ in range(max(0, lines - 3))
    ]
    head = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512" width="512">'
    return [head, "  <g>", *paths, "</svg>"][:lines]


def binary_file(path: str, rng: random.Random, status: str) -> FileDiff:
    f = FileDiff(path, "binary", _git_header(path))
    if status == "added":
        f.lines += [
            "new file mode 100644",
            f"index 0000000..{_hex(rng)}",
            f"Binary files /dev/null and b/{path} differ",
        ]
    elif status == "deleted":
        f.lines += [
            "deleted file mode 100644",
            f"index {_hex(rng)}..0000000",
            f"Binary files a/{path} and /dev/null differ",
        ]
    else:
        f.lines += [
            f"index {_hex(rng)}..{_hex(rng)} 100644",
            f"Binary files a/{path} and b/{path} differ",
        ]
    return f


def pure_rename(old: str, new: str) -> FileDiff:
    lines = [f"diff --git a/{old} b/{new}", "similarity index 100%"]
    return FileDiff(new, "renamed", [*lines, f"rename from {old}", f"rename to {new}"])


def _replace_block(
    path: str, kind: str, old: list[str], new: list[str], rng: random.Random
) -> FileDiff:
    """A modified non-code file whose lines ``old`` become ``new`` in one hunk."""
    f = FileDiff(path, kind, _git_header(path))
    f.lines += [f"index {_hex(rng)}..{_hex(rng)} 100644", f"--- a/{path}", f"+++ b/{path}"]
    f.lines.append(f"@@ -1,{len(old)} +1,{len(new)} @@")
    f.lines += ["-" + t for t in old] + ["+" + t for t in new]
    f.changed = [ChangedLine(path, "-", t) for t in old] + [ChangedLine(path, "+", t) for t in new]
    return f


def lockfile(rng: random.Random, changed: int) -> FileDiff:
    """poetry.lock: version bumps, each a version line and its hashes."""

    def package(version: str) -> list[str]:
        return [
            f'version = "{version}"',
            f'    {{file = "pkg-{version}.tar.gz", hash = "sha256:{_hex(rng, 64)}"}},',
        ]

    old: list[str] = []
    new: list[str] = []
    while len(old) + len(new) < changed:
        major, minor = rng.randint(0, 9), rng.randint(0, 40)
        old += package(f"{major}.{minor}.{rng.randint(0, 9)}")
        new += package(f"{major}.{minor + 1}.0")
    return _replace_block("poetry.lock", "lockfile", old, new, rng)


def vendored(rng: random.Random, changed: int) -> FileDiff:
    """A vendored minified library: few, very long lines."""

    def blob() -> str:
        def function() -> str:
            name = f"{rng.choice(_LETTERS)}{rng.randint(0, 99)}"
            return f"function {name}(t,e){{return t+e*{rng.randint(1, 9)}}}"

        parts = [function() for _ in range(40)]
        return ";".join(parts)

    half = max(1, changed // 2)
    old = [blob() for _ in range(half)]
    new = [blob() for _ in range(changed - half)]
    return _replace_block("web/vendor/chartlib/chart.min.js", "vendored", old, new, rng)


def generated(rng: random.Random, changed: int) -> FileDiff:
    """Protobuf output: ``# Generated by the protocol buffer compiler.  DO NOT EDIT!``."""
    new = ["# -*- coding: utf-8 -*-", "# Generated by the protocol buffer compiler.  DO NOT EDIT!"]
    offset = rng.randint(100, 900)
    while len(new) < changed:
        message = f"_{rng.choice(_WORDS).upper()}{rng.choice(_WORDS).upper()}{len(new)}"
        new.append(f"  _globals['{message}']._serialized_start={offset}")
        offset += rng.randint(40, 400)
        new.append(f"  _globals['{message}']._serialized_end={offset}")
    return _replace_block("src/api/gen/billing_pb2.py", "generated", [], new[:changed], rng)


# --- corpora ------------------------------------------------------------------------------


def _code_path(w: Writer, index: int) -> str:
    if w.rng.random() < 0.6:
        return f"src/pkg{index % 17:02d}/{w.rng.choice(_WORDS)}_{index:04d}.py"
    return f"web/src/{w.rng.choice(_WORDS)}/{w.rng.choice(_WORDS)}{index:04d}.ts"


def _file_size(w: Writer, remaining: int, cap: int) -> int:
    """Changed lines of the next code file: mostly small, sometimes large (lognormal)."""
    return max(1, min(remaining, cap, int(w.rng.lognormvariate(3.3, 1.1))))


def _code_file(w: Writer, index: int, changed: int) -> FileDiff:
    path, r = _code_path(w, index), w.rng.random()
    if r < 0.2:
        return added_file(w, path, changed)
    if r < 0.28:
        return modified_file(w, path, changed, "renamed+changed")
    return modified_file(w, path, changed)


def _specials(w: Writer, total: int) -> list[FileDiff]:
    """The files that are not reviewable by design, scaled to the diff's size."""
    rng = w.rng
    files = [binary_file("assets/img/logo.png", rng, "modified")]
    files.append(pure_rename("docs/old_overview.md", "docs/overview.md"))
    if total >= 100:
        files.append(binary_file("assets/img/hero.webp", rng, "added"))
        files.append(lockfile(rng, max(4, total // 25)))
        body = [w.python() for _ in range(max(3, total // 50))]
        files.append(deleted_file("src/legacy/compat_shim.py", body, rng))
        files.append(pure_rename("src/util/strings.py", "src/common/strings.py"))
    if total >= 1000:
        files.append(binary_file("assets/fonts/brand.woff2", rng, "deleted"))
        svg_lines = min(4000, total // 12)
        files.append(
            deleted_file("assets/illustrations/onboarding.svg", svg_body(rng, svg_lines), rng)
        )
        files.append(vendored(rng, max(2, total // 500)))
        files.append(generated(rng, total // 30))
    return files


def large_pr(total: int, seed: int = 0) -> Corpus:
    """About ``total`` changed lines (added + removed, all files): the non-reviewable files of
    ``_specials`` (~15 % of the lines from 1,000 up) and code files of varied size; from 10,000
    lines one file is a large rewrite (6 %: at 50,000 lines, bigger than a 32k window)."""
    w = Writer(seed * 7919 + total)
    files = _specials(w, total)
    used = sum(len(f.changed) for f in files)
    if total >= 10_000:
        files.append(modified_file(w, "src/core/engine.py", total * 6 // 100))
        used += len(files[-1].changed)
    cap = max(8, total // 8)
    index = 0
    while used < total:
        f = _code_file(w, index, _file_size(w, total - used, cap))
        files.append(f)
        used += len(f.changed)
        index += 1
    w.rng.shuffle(files)
    return Corpus(f"{total:,} lines", tuple(files))


def new_files_pr(total: int, seed: int = 0) -> Corpus:
    """About ``total`` changed lines as new code files of 600-1,400 lines (no context, nothing
    removed, nothing unreviewable): the shape of the issue's first measurement."""
    w = Writer(seed * 7919 + total + 1)
    files: list[FileDiff] = []
    used = 0
    while used < total:
        size = min(total - used, w.rng.randint(600, 1400))
        files.append(added_file(w, _code_path(w, len(files)), size))
        used += size
    return Corpus(f"{total:,} lines, new files", tuple(files))


def by_shape(shape: str, total: int, seed: int = 0) -> Corpus:
    """``large_pr`` for shape "mixed", ``new_files_pr`` for "new-files"."""
    if shape == "new-files":
        return new_files_pr(total, seed)
    if shape == "mixed":
        return large_pr(total, seed)
    raise ValueError(f"unknown corpus shape {shape!r}")


def forty_files(seed: int = 0, edited: int | None = None) -> Corpus:
    """40 modified code files of 30-90 changed lines; with ``edited``, that file's content
    differs (as after a push that changed one file), every other file is byte-identical."""
    files = []
    for index in range(40):
        w = Writer(seed * 104_729 + index * 31 + (1_000 if index == edited else 0))
        w.count = index * 10_000  # identifiers stay unique across files
        path = _code_path(Writer(seed + index), index)
        files.append(modified_file(w, path, 30 + (index * 37) % 61))
    name = "40 files" if edited is None else f"40 files, file {edited} edited"
    return Corpus(name, tuple(files))
