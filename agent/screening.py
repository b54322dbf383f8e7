"""What an answer must be before a model grades it.

A grader model can be talked round, and a cheap one often is; these checks cannot. An answer
that is too short, repeats its question, restates ownit's own explanation, tells the grader
what to decide, or says nothing about this code is "not shown" without asking a model, and
a model's verdict never overrides them. Each returns the reason, in words the author can act
on, without hinting at the answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Screen = Literal["empty", "copied_question", "copied_explanation", "instructions", "generic"]

MIN_WORDS = 4
_SHINGLE = 6  # words: a run this long shared with ownit's text is copied, not written
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*|[0-9]+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Asking the grader, not answering the question. Matched on the answer with spacing folded.
_INSTRUCTIONS = re.compile(
    r"""ignore\s+(?:all\s+|any\s+|the\s+)?(?:previous|prior|above|earlier|other)\s+
          (?:instructions?|prompts?|rules?|text)
      | disregard\s+(?:all\s+|the\s+)?(?:previous|prior|above|instructions?|rubric)
      | (?:mark|grade|rate|score|treat|consider|judge|label|set)\s+(?:this|these|it|them|
          all|every|each|the)(?:\s+\w+){0,3}\s+(?:as\s+)?["'`]?(?:understood|passed?|correct|
          full\s+marks)
      | \b(?:verdict|grade)s?["'`]?\s*[:=]\s*["'`]?(?:understood|pass)
      | \byou\s+(?:are|must|should|will)\s+(?:now\s+)?(?:a|an|the|grade|mark|pass|output|reply)
      | system\s+prompt | </?\s*(?:system|assistant|instructions?|answer)\s*>
      | (?:ANSWER|CODE|DIFF)-[0-9a-f]{8,}""",
    re.I | re.X,
)

# Words that fit any change: an answer made only of these says nothing about this one.
_GENERIC_WORDS = """
    about above after again against also always another answer anything because been before
    being below better between both bugs call called calls case cases change changed changes
    changing check checks class clean code coding correct correctly could data does doing done
    each easier edge either else ensure ensures error errors even every everything expected
    failure fine first from function functions good handle handled handles handling have here
    improve improved improves into issue issues just keep know like line lines logic made make
    makes making maintain maintainability method methods more most much must need needed needs
    never only other over part parts pass passes performance please possible pretty problem
    problems properly quality readability readable really refactor refactored return returns
    right same should since some something still sure test tested testing tests than that the
    their them then there these they thing things this those through time under unit update
    updated updates used uses using value values very want well were what when where which while
    will with without work works would your reason reasons purpose behaviour behavior support
    simple simpler cleaner safer safe already existing current new old added removed implement
    implemented implementation approach feature features requirement requirements work
"""
_GENERIC = frozenset(_GENERIC_WORDS.split())


@dataclass(frozen=True)
class Screened:
    reason: Screen
    feedback: str


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def code_terms(code: str) -> set[str]:
    """The names in code, and their parts: ``retry_after`` gives retry_after, retry, after;
    ``parseHeader`` gives parseheader, parse, header."""
    terms: set[str] = set()
    for ident in _IDENT.findall(code):
        terms.add(ident.lower())
        for part in re.split(r"_+|(?<=[a-z0-9])(?=[A-Z])", ident):
            if part:
                terms.add(part.lower())
    return {t for t in terms if len(t) >= 4 and t not in _GENERIC}


def _shingles(ws: list[str]) -> set[tuple[str, ...]]:
    return {tuple(ws[i : i + _SHINGLE]) for i in range(len(ws) - _SHINGLE + 1)}


def screen(answer: str, question: str, code: str, ownit_text: Iterable[str]) -> Screened | None:
    """Why ``answer`` cannot show ownership of ``question`` about ``code``; None when a grader
    should decide. ``ownit_text`` is everything ownit itself wrote about the change."""
    ws = words(answer)
    if len(ws) < MIN_WORDS:
        return Screened("empty", "No answer to grade: explain it in your own words.")
    if _INSTRUCTIONS.search(" ".join(answer.split())):
        return Screened(
            "instructions",
            "The answer addresses the grader instead of the question; answer the question.",
        )
    asked = set(words(question))
    own = [w for w in ws if len(w) >= 3]
    if own and sum(w in asked for w in own) / len(own) >= 0.8 and len(ws) <= 1.5 * len(asked):
        return Screened(
            "copied_question", "The answer repeats the question; say how the code answers it."
        )
    mine = _shingles(ws)
    if mine:
        theirs: set[tuple[str, ...]] = set()
        for text in ownit_text:
            theirs |= _shingles(words(text))
        if len(mine & theirs) / len(mine) >= 0.5:
            return Screened(
                "copied_explanation",
                "The answer restates ownit's explanation; show your own understanding.",
            )
    if not (set(ws) & code_terms(code)) and not (set(ws) & code_terms(question)):
        return Screened(
            "generic",
            "The answer would fit any change; name what in this code does it and how.",
        )
    return None
