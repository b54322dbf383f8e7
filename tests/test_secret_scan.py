"""The fast scan masking uses (``agent/secret_scan.py``) finds exactly what detect-secrets' own
line scan finds, and masking with it gives exactly what it gave without it: same kinds, same
spans, same placeholders. Compared on the planted diff, the secrets benchmark's diff, the lines
of tests/test_secrets.py and random files with secrets of every kind planted in code-like
lines (``tests/secret_corpus.py``). The gates the speed comes from are checked on their own
against random regexes and texts.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterator

import pytest

from agent import masking
from agent.diff import Diff, parse_diff
from agent.secret_scan import LineScanner, gate
from tests.planted import planted_diff
from tests.secret_corpus import bench_diff, filtered_files, random_files, random_line

Found = list[tuple[int, str, str]]


@pytest.fixture
def scanner() -> Iterator[LineScanner]:
    with masking.detect_secrets_settings():
        yield masking._scanner()


def reference(path: str, lines: list[str]) -> Found:
    """What detect-secrets' own scan finds: (index, type, value), sorted."""
    from detect_secrets.core.scan import _process_line_based_plugins

    sequential = list(enumerate(lines, 1))
    found = _process_line_based_plugins(sequential, filename=path)
    return sorted((s.line_number - 1, s.type, s.secret_value) for s in found)


def fast(scanner: LineScanner, path: str, lines: list[str]) -> Found:
    return sorted(scanner.findings(path, lines))


def sides(diff: Diff) -> list[tuple[str, list[str]]]:
    """The texts masking scans: each file's new side and old side."""
    out = []
    for file in diff.files:
        lines = [line for hunk in file.hunks for line in hunk.lines]
        out.append((file.path, [ln.text for ln in lines if ln.new_no is not None]))
        out.append((file.path, [ln.text for ln in lines if ln.new_no is None]))
    return [(path, texts) for path, texts in out if texts]


def random_diff(seed: int) -> tuple[str, str]:
    """A diff of random files, their lines added, removed or context at random, and a title."""
    rng = random.Random(seed)
    out = []
    for path, lines in random_files(seed, files=15, lines=40):
        tags = [rng.choice("+- ") for _ in lines]
        old, new = sum(t != "+" for t in tags), sum(t != "-" for t in tags)
        out += [f"--- a/{path}", f"+++ b/{path}", f"@@ -1,{old} +1,{new} @@"]
        out += [t + line for t, line in zip(tags, lines, strict=True)]
    return "\n".join(out) + "\n", random_line(rng)


def assert_same(scanner: LineScanner, files: list[tuple[str, list[str]]]) -> int:
    total = 0
    for path, lines in files:
        expected = reference(path, lines)
        assert fast(scanner, path, lines) == expected, path
        total += len(expected)
    return total


# --- the findings -----------------------------------------------------------------------------


def test_the_planted_diff(scanner: LineScanner) -> None:
    data, title, _ = planted_diff()
    files = [*sides(parse_diff(data.decode())), ("(title)", [title])]
    assert assert_same(scanner, files) == 12


def test_the_benchmark_diff(scanner: LineScanner) -> None:
    assert_same(scanner, sides(parse_diff(bench_diff(files=40))))


def test_the_lines_of_the_secrets_tests(scanner: LineScanner) -> None:
    key = "ghp_" + "a1B2c3D4e5F6" * 3
    lines = ["OLD = 1", f'A = "{key}"', f'B = "{key}"', "ok = True", f'TOKEN = "{key}"']
    assert assert_same(scanner, [("a.py", lines), ("evil\x1b[2J.py", lines)]) == 6


@pytest.mark.parametrize("seed", range(8))
def test_random_files_with_planted_secrets(scanner: LineScanner, seed: int) -> None:
    assert assert_same(scanner, random_files(seed)) > 100


def test_the_random_files_reach_every_detector(scanner: LineScanner) -> None:
    """Not a vacuous comparison: detect-secrets reports every kind of secret on them, and
    drops some through each of its filters."""
    from detect_secrets.settings import get_plugins

    found = {
        kind
        for seed in range(8)
        for p, lines in random_files(seed)
        for _, kind, _ in reference(p, lines)
    }
    assert found == {p.secret_type for p in get_plugins()}


def test_filters_and_context_decide_as_in_detect_secrets(scanner: LineScanner) -> None:
    key = "ghp_" + "a1B2c3D4e5F6" * 3
    value = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg"  # high entropy
    lines = [
        f'password = "{value}"',  # found
        f'password = "{value}"  # pragma: allowlist secret',  # allowlisted
        "# pragma: allowlist nextline secret",
        f'password = "{value}"',  # allowlisted by the line before
        f'x = get_secret("{key}")',  # an indirect reference: the whole line is dropped
        'password = "${DB_PASSWORD}"',  # templated
        'user_id = "12345678-1234-1234-1234-123456789abc"',  # a uuid
        'password = "ABCDEFGHIJKLMNOP"',  # sequential
        f'api_key = "{value}"   ',  # trailing space
    ]
    expected = reference("settings.py", lines)
    assert fast(scanner, "settings.py", lines) == expected
    assert sorted({i for i, _, _ in expected}) == [0, 8]


# --- masking as a whole -----------------------------------------------------------------------


def reference_spans(path: str, texts: list[str]) -> dict[int, list[tuple[int, int, str]]]:
    """``masking._spans`` as it was before the fast scan: detect-secrets' scan, then ownit's
    own patterns on every line."""
    from detect_secrets.core.scan import _process_line_based_plugins

    raw: dict[int, list[tuple[int, int, str]]] = {}
    for secret in _process_line_based_plugins(list(enumerate(texts, 1)), filename=path):
        index = secret.line_number - 1
        if secret.secret_value:
            for span in masking._token_spans(texts[index], secret.secret_value):
                raw.setdefault(index, []).append((*span, masking._slug(secret.type)))
    for index, text in enumerate(texts):
        for kind, pattern, group in masking._vendor_patterns():
            for match in pattern.finditer(text):
                start, end = match.span(group)
                if end > start:
                    raw.setdefault(index, []).append((start, end, kind))
        for kind, pattern in masking._EXTRA:
            for match in pattern.finditer(text):
                start, end = match.span("value") if "value" in pattern.groupindex else match.span()
                raw.setdefault(index, []).append((start, end, kind))
    return {index: masking._merge(spans, texts[index]) for index, spans in raw.items()}


@pytest.mark.parametrize("seed", range(3))
def test_spans_are_unchanged(scanner: LineScanner, seed: int) -> None:
    """Per line, the (start, end, kind) spans masking replaces: random files, and every kind
    of value on lines detect-secrets drops, where only ownit's own patterns find them."""
    data, _, _ = planted_diff()
    files = [*random_files(seed), *filtered_files(seed), *sides(parse_diff(data.decode()))]
    kinds = set()
    for path, texts in files:
        expected = reference_spans(path, texts)
        assert masking._spans(path, texts, scanner) == expected, path
        kinds |= {kind for spans in expected.values() for _, _, kind in spans}
    assert len(kinds) >= 25


def masked_both_ways(
    monkeypatch: pytest.MonkeyPatch, text: str, title: str | None
) -> tuple[masking.Masked, masking.Masked]:
    diff = parse_diff(text)
    fast_result = masking.mask(diff, title)
    with monkeypatch.context() as m:
        m.setattr(masking, "_spans", lambda path, texts, scanner: reference_spans(path, texts))
        slow_result = masking.mask(diff, title)
    return fast_result, slow_result


def test_masking_the_planted_diff_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    data, title, _ = planted_diff()
    got, expected = masked_both_ways(monkeypatch, data.decode(), title)
    assert got == expected and len(got.findings) == 15


@pytest.mark.parametrize("seed", range(4))
def test_masking_random_diffs_is_unchanged(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    got, expected = masked_both_ways(monkeypatch, *random_diff(seed))
    assert got == expected
    assert len({f.kind for f in got.findings}) >= 15


# --- gates ------------------------------------------------------------------------------------


def test_every_plugin_masking_uses_is_probed(scanner: LineScanner) -> None:
    """Each plugin has probes, so the speed holds (a detect-secrets upgrade that changes a
    plugin's code loses its probe: still correct, but slow until looked at)."""
    for p in scanner._plugins:
        assert p.probes("a.py") is not None, type(p.plugin).__name__


def test_a_plugin_of_unknown_code_sees_every_line() -> None:
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.settings import get_plugins

    from agent.secret_scan import _probes

    class Custom(RegexBasedDetector):
        secret_type = "Custom"
        denylist = (re.compile("abc"),)

        def analyze_string(self, string: str) -> Iterator[str]:
            yield "x"

    with masking.detect_secrets_settings():
        assert _probes(Custom(), lambda regexes: (0,))("a.py") is None
        assert all(_probes(p, lambda regexes: (0,))("a.py") for p in get_plugins())


def test_gates_admit_every_corpus_line_their_pattern_matches(scanner: LineScanner) -> None:
    lines = [line for seed in range(8) for _, ls in random_files(seed) for line in ls]
    lines += [line.swapcase() for line in lines[:2000]]
    lines += [line.replace("k", "\u212a").replace("s", "\u017f") for line in lines[:2000]]
    matched = 0
    for pattern in scanner._gates.patterns:
        g = gate(pattern)
        for line in lines:
            if pattern.search(line):
                matched += 1
                assert g.admits(line), (pattern.pattern, line)
    assert matched > 1000


ALPHABET = "abkKsS:-_ \u212a\u017fé"


def _random_regex(rng: random.Random, depth: int = 0) -> str:
    def atom() -> tuple[str, bool]:  # (regex, whether it is one character)
        r = rng.random()
        if depth > 2 or r < 0.45:
            return re.escape(rng.choice(ALPHABET)), True
        if r < 0.55:
            return "[" + "".join(re.escape(c) for c in rng.sample(ALPHABET, 3)) + "]", True
        if r < 0.6:
            return rng.choice([".", r"\b", "^", "$", r"\w", r"\s", "[^a]", "[a-k]"]), False
        if r < 0.75:
            alternatives = [_random_regex(rng, depth + 1) for _ in range(rng.randint(1, 3))]
            return "(?:" + "|".join(alternatives) + ")", False
        if r < 0.8:
            return "(?i:" + _random_regex(rng, depth + 1) + ")", False
        if r < 0.85:
            return rng.choice(["(?=", "(?!", "(?<="]) + re.escape(rng.choice(ALPHABET)) + ")", False
        if r < 0.88:
            return "(" + _random_regex(rng, depth + 1) + r")\1", False
        if r < 0.92:  # a conditional on a group that may not take part
            inner = [_random_regex(rng, depth + 1) for _ in range(3)]
            return f"({inner[0]})?(?(1){inner[1]}|{inner[2]})", False
        return "(?>" + _random_regex(rng, depth + 1) + ")", False

    out = ""
    for _ in range(rng.randint(1, 4)):
        regex, single = atom()
        # Unbounded repeats of groups could backtrack for ever on a text that fails.
        repeats = ["*", "+", "{1,3}"] if single else ["{0,1}", "++"]
        out += regex + rng.choice(["", "", "", "?", "{2}", "{0,2}", *repeats])
    return out


def test_gates_never_reject_a_text_their_regex_matches() -> None:
    """Random regexes (literals, classes, alternations, repeats, scoped and global ignore-case,
    lookarounds, back-references, conditionals) on random texts with case pairs that cross
    ASCII."""
    rng = random.Random(0)
    checked = 0
    for _ in range(3000):
        source = _random_regex(rng)
        flags = re.IGNORECASE if rng.random() < 0.3 else 0
        try:
            pattern = re.compile(source, flags)
        except re.error:
            continue
        g = gate(pattern)
        for _ in range(40):
            text = "".join(rng.choice(ALPHABET + string.ascii_letters) for _ in range(12))
            if pattern.search(text):
                checked += 1
                assert g.admits(text), (source, flags, text, g)
    assert checked > 10_000


def test_gates_are_literal_where_they_can_be() -> None:
    assert gate(re.compile(r"(?:A3T[A-Z0-9]|ABIA|AKIA)[0-9A-Z]{16}")).clauses[0] == {
        "A3T",
        "ABIA",
        "AKIA",
    }
    folded = gate(re.compile(r"(api_?key|client_?key|db_?pass|password|secret)\w*", re.I))
    assert folded.fold and folded.clauses[0] == {"key", "pass", "secret"}
    assert not gate(re.compile(r"(?:abc)?\d+")).clauses
    assert gate(re.compile(r"(?i)café")).clauses[0] == {"caf"}
    assert gate(re.compile(r"(?i)key")).admits("\u212aEY")  # not ASCII: not decided here


def test_a_line_is_admitted_for_what_its_stripped_text_matches() -> None:
    """detect-secrets scans a line without its trailing white space: a pattern that matches
    only that (an end anchor, a lookahead) must still be let through."""
    from agent.secret_scan import _Gates

    patterns = [
        re.compile(r"\d$"),  # no literal: searched
        re.compile(r":\w$"),  # one character: searched
        re.compile(r"key(?!\s)"),
        re.compile(r"(?i)secret$"),
    ]
    gates = _Gates(patterns)
    texts = ["x = 5  ", "x = 5", "a:b \t", "a:b", "the key \t", "my key", "SECRET\u00a0"]
    texts += ["a secret ", "no", "x5 y"]
    for text in texts:
        admitted = gates.admitted(text)
        for i, p in enumerate(patterns):
            if p.search(text) or p.search(text.rstrip()):
                assert i in admitted, (p.pattern, text)
    assert gates.admitted("no") == set() and gates.admitted("x5 y") == set()
