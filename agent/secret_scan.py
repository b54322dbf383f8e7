"""detect-secrets' line scan with the same findings, at a fraction of the cost.

``detect_secrets.core.scan._process_line_based_plugins`` runs every line through every plugin
and filter by ``call_function_with_arguments``, which inspects each function's signature on
each call, and its line filter ``is_indirect_reference`` is a backtracking regex (about 50 µs
on a line of code). On a 10,000-line diff that is about a second, and almost all of it is spent
on lines that hold nothing a plugin could report. ``LineScanner`` gives the same findings
(line, type, value) by doing the same work on the lines that could hold one:

- Each plugin and filter is resolved once: which of the arguments detect-secrets offers at that
  point it takes. A filter that lacks a required argument there (detect-secrets calls it, gets
  ``TypeError`` and skips it) is left out; a ``TypeError`` raised inside one is ignored, as
  detect-secrets does.
- Each plugin gets probes: regexes at least one of which matches a line the plugin reports
  anything on. A regex plugin's are its own patterns; the keyword plugin's, the patterns it
  uses for the file's type; the high-entropy plugin's, a quoted run of its characters long
  enough to reach its entropy limit (a string of n characters has at most log2(n) bits per
  character). A plugin whose code is not one of these has no probe and sees every line.
- Each probe has a gate (``Gate``): sets of literal strings read from the regex's parse tree,
  such that any text it matches in holds at least one string of each set. The gates' first
  sets are checked together (one regex of all their strings tells whether a line holds any;
  most lines hold none), and a probe is searched only on a line that passes its gate. A probe
  whose gate is weak (one character, such as the ``:`` of a Telegram token) is searched on
  every line instead: that is cheap, and exact.

A line no plugin's probe matches cannot produce a finding (filters only remove findings), so it
is skipped: no filters, no plugins. Every other line goes through the filters and then the
plugins whose probes matched, called exactly as detect-secrets calls them. What a plugin does
is not re-implemented; the only claims made are that each probe is necessary for its plugin,
and each gate for its regex. ``tests/test_secret_scan.py`` checks the findings against
detect-secrets' own scan.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

_parser: Any = importlib.import_module("re._parser")  # the parser `re` compiles with

Clause = frozenset[str]


# --- gates: literals a regex's matches must contain ------------------------------------------


@dataclass(frozen=True)
class Gate:
    """A necessary condition for ``pattern.search(text)``: ``text`` holds at least one string of
    each clause (compared in lower case when ``fold``, which is then decided only for ASCII
    text). No clauses: no condition."""

    clauses: tuple[Clause, ...]
    fold: bool

    def admits(self, text: str) -> bool:
        if self.fold:
            if not text.isascii():
                return True
            text = text.lower()
        return all(any(needle in text for needle in clause) for clause in self.clauses)


@cache
def gate(pattern: re.Pattern[str]) -> Gate:
    """The literals every match of ``pattern`` contains, read from its parse tree.

    Case-insensitive patterns (or parts) make the whole gate compare in lower case, and on
    ASCII text only: an ASCII character matches a letter of the pattern case-insensitively iff
    their lower cases are equal, whereas some non-ASCII characters match ASCII letters (the
    Kelvin sign matches "k"). A pattern the parser rejects, or whose parse holds nothing
    literal, gets no clauses."""
    try:
        parsed = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # a gate only saves time: none at all is always correct
        return Gate((), False)
    fold = bool(parsed.state.flags & re.IGNORECASE) or _scoped_ignorecase(parsed)
    clauses = _needs(parsed, fold)
    if fold:
        clauses = [frozenset(n.lower() for n in c) for c in clauses]
    unique = sorted({_simplify(c) for c in clauses if c and all(c)}, key=_score, reverse=True)
    return Gate(tuple(unique), fold)


def _simplify(clause: Clause) -> Clause:
    """Without the strings that contain another of the clause's (it holds whenever they do)."""
    return frozenset(n for n in clause if not any(m != n and m in n for m in clause))


def _scoped_ignorecase(items: Iterable[tuple[Any, Any]]) -> bool:
    """Does a group in ``items`` turn ignore-case on (``(?i:...)``)?"""
    for op, av in items:
        if op is _parser.SUBPATTERN and av[1] & re.IGNORECASE:
            return True
        if any(_scoped_ignorecase(sub) for sub in _inner(op, av)):
            return True
    return False


def _inner(op: Any, av: Any) -> list[Any]:
    """The sequences of parse items inside one item."""
    if op is _parser.SUBPATTERN:
        return [av[3]]
    if op is _parser.BRANCH:
        return list(av[1])
    if op in _REPEATS:
        return [av[2]]
    if op is _parser.ATOMIC_GROUP:
        return [av]
    if op in (_parser.ASSERT, _parser.ASSERT_NOT):
        return [av[1]]
    if op is _parser.GROUPREF_EXISTS:
        return [sub for sub in av[1:] if sub is not None]
    return []


_REPEATS = (_parser.MAX_REPEAT, _parser.MIN_REPEAT, _parser.POSSESSIVE_REPEAT)


def _needs(items: Iterable[tuple[Any, Any]], fold: bool) -> list[Clause]:
    """Clauses for a sequence of parse items: every match of the sequence holds one string of
    each. Consecutive literals form one string; a group or a repeat of at least one adds its
    item's clauses; an alternation adds one clause, the union of each branch's best; a class
    of literal characters is a clause of single characters. Anything else (anchors,
    lookarounds, ``.``, classes with ranges or categories, back-references) adds nothing."""
    items = list(items)
    clauses: list[Clause] = []
    run = ""  # the literal characters just read
    for op, av in items:
        if op is _parser.LITERAL and (not fold or av < 128):
            run += chr(av)
            continue
        if op is _parser.LITERAL:  # a non-ASCII character compared case-insensitively
            if run:
                clauses.append(frozenset([run]))
            run = ""
            continue
        if op is _parser.BRANCH:
            alternatives = av[1]
            either = _either([_needs(alt, fold) for alt in alternatives])
            if either:
                clauses.append(either)
            if run:  # the run, then each alternative's leading literals
                clauses.append(frozenset(run + _leading(alt, fold) for alt in alternatives))
        elif op is _parser.SUBPATTERN:
            clauses += _needs(av[3], fold)
        elif op is _parser.ATOMIC_GROUP:
            clauses += _needs(av, fold)
        elif op in _REPEATS:
            if av[0] >= 1:
                clauses += _needs(av[2], fold)
        elif op is _parser.IN:
            chars = _literal_class(av, fold)
            if chars:
                clauses.append(chars)
        if run:
            clauses.append(frozenset([run]))
            run = ""
    if run:
        clauses.append(frozenset([run]))
    return clauses


def _leading(items: Iterable[tuple[Any, Any]], fold: bool) -> str:
    out = ""
    for op, av in items:
        if op is not _parser.LITERAL or (fold and av >= 128):
            break
        out += chr(av)
    return out


def _literal_class(items: Sequence[tuple[Any, Any]], fold: bool) -> Clause | None:
    if not items or any(op is not _parser.LITERAL or (fold and av >= 128) for op, av in items):
        return None
    return frozenset(chr(av) for _, av in items)


def _score(clause: Clause) -> tuple[int, int]:
    """Longer strings first, then fewer of them: the likelier to reject a line."""
    return (min((len(n) for n in clause), default=0), -len(clause))


def _either(options: list[list[Clause]]) -> Clause | None:
    """A clause for an alternation, given each alternative's clauses: one clause of each
    alternative, joined. Strings that many alternatives hold are preferred (``password``,
    ``api_key`` and ``client_key`` give ``pass`` and ``key``, not ``api`` and ``client``), then
    longer ones. Any choice is correct; this one rejects more lines."""
    usable = [[c for c in clauses if c and all(c)] for clauses in options]
    if not all(usable):
        return None
    held = Counter(n for clauses in usable for n in set().union(*clauses))

    def rank(clause: Clause) -> tuple[int, tuple[int, int]]:
        return (min(held[n] for n in clause), _score(clause))

    return frozenset().union(*(max(clauses, key=rank) for clauses in usable))


def _trie(needles: Iterable[str]) -> str:
    """A regex that matches where any of ``needles`` starts: their common prefixes factored
    out, so that it tries a few characters at a position rather than every needle. A needle
    another one starts with stands for both (a text holding the longer holds it)."""
    root: dict[str, Any] = {}
    for needle in needles:
        node = root
        for char in needle:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        if "" in node:
            return ""
        alternatives = [re.escape(char) + emit(rest) for char, rest in sorted(node.items())]
        return alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"

    return emit(root)


class _Needles:
    """Strings to look for in a text, each standing for some patterns."""

    def __init__(self, ids: dict[str, list[int]]) -> None:
        self._ids = {n: tuple(i) for n, i in ids.items()}
        self._chars = tuple(n for n in ids if len(n) == 1)
        self._longer = tuple(n for n in ids if len(n) > 1)
        # One regex finds whether any is in a text faster than one test each (about 0.6 µs
        # against 5 on a line of code); most lines hold none.
        self._any = re.compile(_trie(self._longer)) if self._longer else None

    def find(self, text: str) -> list[int]:
        """The patterns of the strings ``text`` holds."""
        found = [n for n in self._chars if n in text] if self._chars else []
        if self._any is not None and self._any.search(text):
            found += filter(text.__contains__, self._longer)
        return [i for needle in found for i in self._ids[needle]] if found else []


_NONE: frozenset[int] = frozenset()


class _Gates:
    """The gates of many regexes, checked together: which of them a text passes. Each gate's
    first (most selective) clause is looked up by substring tests shared by all gates; the
    rest only for the gates that pass it. A regex whose gate is weak (no clause, or a first
    clause with a single character, such as the ``:`` of a Telegram token, which most lines
    of code hold) is searched instead: its own search is the exact gate, and cheap."""

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        self.patterns = tuple(patterns)
        self.gates = tuple(gate(p) for p in self.patterns)
        exact: dict[str, list[int]] = {}
        folded: dict[str, list[int]] = {}
        searched: list[int] = []
        for i, g in enumerate(self.gates):
            if not g.clauses or min(map(len, g.clauses[0])) == 1:
                searched.append(i)
                continue
            for needle in g.clauses[0]:
                (folded if g.fold else exact).setdefault(needle, []).append(i)
        self._exact = _Needles(exact)
        self._folded = _Needles(folded)
        self._searched = tuple((i, self.patterns[i]) for i in searched)
        self._fold_ids = [i for i, g in enumerate(self.gates) if g.fold and i not in searched]
        self._rest = tuple(g.clauses[1:] for g in self.gates)

    def admitted(self, text: str) -> frozenset[int]:
        """Indexes of the patterns whose gates ``text`` passes: a superset of those that match
        it, and of those that match it without its trailing white space."""
        hits = self._exact.find(text)
        lowered = text.lower() if text.isascii() else None
        if lowered is None:
            hits += self._fold_ids
        else:
            hits += self._folded.find(lowered)
        if hits:
            hits = [i for i in hits if self._passes_rest(i, text, lowered)]
        stripped = text.rstrip()
        for i, pattern in self._searched:
            if pattern.search(text) or (len(stripped) < len(text) and pattern.search(stripped)):
                hits.append(i)
        return frozenset(hits) if hits else _NONE

    def _passes_rest(self, i: int, text: str, lowered: str | None) -> bool:
        rest = self._rest[i]
        if not rest:
            return True
        if self.gates[i].fold:
            if lowered is None:
                return True
            text = lowered
        for clause in rest:
            for needle in clause:
                if needle in text:
                    break
            else:
                return False
        return True


# --- the scanner -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """A function and the names, of those offered, that detect-secrets would pass it."""

    fn: Callable[..., Any]
    args: tuple[str, ...]


def _resolve(fn: Callable[..., Any], offered: Iterable[str]) -> _Call | None:
    """How ``call_function_with_arguments(fn, **kwargs)`` calls ``fn`` when offered ``offered``:
    with the offered names its signature has, or (None) not at all, when that call would raise
    ``TypeError`` for a missing argument."""
    from detect_secrets.util.inject import get_injectable_variables

    injectable = get_injectable_variables(fn)
    names = tuple(n for n in offered if n in injectable)
    signature = inspect.signature(fn)
    try:
        signature.bind(**dict.fromkeys(names))
    except TypeError:
        return None
    return _Call(fn, names)


def _filters(required: str, offered: tuple[str, ...]) -> tuple[_Call, ...]:
    """detect-secrets' filters for a stage of its scan (``get_filters_with_parameter``), each
    with the arguments it is given there."""
    from detect_secrets.core.scan import get_filters_with_parameter

    calls = (_resolve(fn, offered) for fn in get_filters_with_parameter(required))
    return tuple(c for c in calls if c is not None)


def _filtered_out(filters: tuple[_Call, ...], values: dict[str, Any]) -> bool:
    """``_is_filtered_out``: does any filter drop it (a ``TypeError`` in one is ignored)?"""
    for f in filters:
        try:
            if f.fn(**{name: values[name] for name in f.args}):
                return True
        except TypeError:
            pass
    return False


@dataclass(frozen=True)
class _Plugin:
    plugin: Any
    analyze: _Call
    # Probes by file type: None, the plugin sees every line; else the indexes (in the scanner's
    # pattern list) of regexes one of which matches any line it reports on.
    probes: Callable[[str], tuple[int, ...] | None]


class LineScanner:
    """``_process_line_based_plugins`` for the plugins and filters detect-secrets' settings hold
    when it is built (build it inside ``transient_settings``), plus gated regexes of the
    caller's (``extra``), checked in the same pass over a line."""

    def __init__(self, extra: Sequence[re.Pattern[str]] = ()) -> None:
        from detect_secrets.settings import get_plugins

        patterns: list[re.Pattern[str]] = []
        index: dict[re.Pattern[str], int] = {}

        def ids(regexes: Iterable[re.Pattern[str]]) -> tuple[int, ...]:
            out = []
            for r in regexes:
                if r not in index:
                    index[r] = len(patterns)
                    patterns.append(r)
                out.append(index[r])
            return tuple(out)

        self.extra = ids(extra)
        self._extra_at: dict[int, list[int]] = {}  # pattern -> its positions in ``extra``
        for k, i in enumerate(self.extra):
            self._extra_at.setdefault(i, []).append(k)
        offered = ("filename", "line", "line_number", "context")
        self._plugins: list[_Plugin] = []
        for plugin in get_plugins():
            analyze = _resolve(plugin.analyze_line, offered)
            if analyze is None:  # detect-secrets would fail the same way, on the first line
                raise TypeError(f"{type(plugin).__name__}.analyze_line cannot be called")
            self._plugins.append(_Plugin(plugin, analyze, _probes(plugin, ids)))
        self._gates = _Gates(patterns)
        self._line_filters = _filters("line", ("filename", "line", "context"))
        self._secret_filters = _filters("secret", ("filename", "secret", "plugin", "line"))
        self._context_filters = _filters(
            "context", ("filename", "secret", "plugin", "line", "context")
        )
        self._admitted: dict[str, frozenset[int]] = {}

    def admitted(self, text: str) -> frozenset[int]:
        """The patterns whose gates ``text`` passes (cached: diffs repeat lines)."""
        hit = self._admitted.get(text)
        if hit is None:
            hit = self._admitted[text] = self._gates.admitted(text)
        return hit

    def extra_candidates(self, text: str) -> list[int]:
        """Positions in ``extra`` of the patterns that may match ``text``."""
        hit = self.admitted(text)
        if not hit:
            return []
        return sorted(k for i in hit for k in self._extra_at.get(i, ()))

    def findings(self, filename: str, lines: Sequence[str]) -> Iterator[tuple[int, str, str]]:
        """(index in ``lines``, secret type, value) of what
        ``_process_line_based_plugins(list(enumerate(lines, 1)), filename)`` yields."""
        from detect_secrets.util.code_snippet import get_code_snippet

        patterns = self._gates.patterns
        unprobed: set[int] = set()  # plugins that see every line
        owners: dict[int, set[int]] = {}  # probe -> the plugins it is a probe of
        for k, p in enumerate(self._plugins):
            ids = p.probes(filename)
            if ids is None:
                unprobed.add(k)
            for i in ids or ():
                owners.setdefault(i, set()).add(k)
        content = list(lines)
        for index, text in enumerate(content):
            hit = self.admitted(text)
            if not hit and not unprobed:
                continue  # the common case: nothing any plugin looks for
            # detect-secrets scans the line without trailing space: a prefix of ``text``, so
            # the gates ``text`` passes are a superset of its.
            line = text.rstrip()
            chosen = set(unprobed)
            for i in hit:
                mine = owners.get(i)
                if mine and not mine <= chosen and patterns[i].search(line):
                    chosen |= mine
            if not chosen:
                continue
            plugins = [p for k, p in enumerate(self._plugins) if k in chosen]
            number = index + 1
            context = get_code_snippet(lines=content, line_number=number)
            values: dict[str, Any] = {"filename": filename, "line": line, "context": context}
            if _filtered_out(self._line_filters, values):
                continue
            offered = {**values, "line_number": number}
            for p in plugins:
                secrets = p.analyze.fn(**{name: offered[name] for name in p.analyze.args})
                for secret in secrets or ():
                    values = {
                        "filename": secret.filename,
                        "secret": secret.secret_value,
                        "plugin": p.plugin,
                        "line": line,
                        "context": context,
                    }
                    if _filtered_out(self._secret_filters, values):
                        continue
                    if _filtered_out(self._context_filters, values):
                        continue
                    yield index, secret.type, secret.secret_value


def _probes(
    plugin: Any, ids: Callable[[Iterable[re.Pattern[str]]], tuple[int, ...]]
) -> Callable[[str], tuple[int, ...] | None]:
    """Regexes one of which matches every line ``plugin`` reports on (None: not known)."""
    from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector
    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
    from detect_secrets.plugins.jwt import JwtTokenDetector
    from detect_secrets.plugins.keyword import (
        QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
        REGEX_BY_FILETYPE,
        KeywordDetector,
    )
    from detect_secrets.util.filetype import determine_file_type

    cls = type(plugin)
    if cls.analyze_line is BasePlugin.analyze_line and cls.analyze_string in (
        RegexBasedDetector.analyze_string,  # yields what its denylist's findall finds
        JwtTokenDetector.analyze_string,  # the same, filtered
    ):
        found = ids(plugin.denylist)
        return lambda filename: found
    if (
        cls.analyze_line is KeywordDetector.analyze_line
        and cls.analyze_string is KeywordDetector.analyze_string
    ):
        # It yields a group of each of the file type's regexes that searches the line.
        by_type = {t: ids(m) for t, m in REGEX_BY_FILETYPE.items()}
        default = ids(QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
        return lambda filename: by_type.get(determine_file_type(filename), default)
    if (
        isinstance(plugin, HighEntropyStringsPlugin)
        and cls.analyze_line is HighEntropyStringsPlugin.analyze_line
        and cls.analyze_string is HighEntropyStringsPlugin.analyze_string
        and cls.calculate_shannon_entropy is HighEntropyStringsPlugin.calculate_shannon_entropy
    ):
        charset = re.escape(plugin.charset)
        quoted = f"([\\'\"])([{charset}]+)(\\1)"  # as detect-secrets builds it
        if plugin.regex.pattern != quoted or "'" in plugin.charset or '"' in plugin.charset:
            return lambda filename: None
        # Without eager search it reports quoted runs of its charset (quotes are not in it,
        # so a run is whole) whose Shannon entropy over the charset exceeds the limit. A run
        # of n characters has at most log2(n): n > 2 ** limit. One less, for float rounding.
        shortest = max(1, math.floor(2**plugin.entropy_limit) - 1)
        probe = re.compile(f"([\\'\"])[{charset}]{{{shortest},}}\\1")
        found = ids([probe])
        return lambda filename: found
    return lambda filename: None
