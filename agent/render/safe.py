"""Untrusted text made safe to show: on a terminal, and inside ownit's own Markdown.

Two sources of text reach the renderers that nobody at ownit wrote: the diff (file paths may
hold newlines, escape sequences, backticks) and the model's replies (which may hold anything a
prompt injection asks for). Every such value goes through one of these before it is printed:

- ``visible``: what a terminal gets. Control characters and invisible spoofing characters are
  shown as escapes (``\\x1b``, ``\\u202e``), so a reply cannot clear the screen, set the window
  title, rewrite a line or reorder what the reader sees.
- ``one_line``: ``visible`` for a value that must stay on one line (a path, a progress label).
- ``md_inline``: text placed inside a Markdown line ownit builds (a list item, a bold question).
- ``md_block``: multi-line prose (summary, walkthrough) that must stay one section's paragraphs.
- ``md_code``: an inline code span (a path, an anchor) that nothing can break out of.
- ``rich_text``: a value for a rich table cell or label, where ``[...]`` would be markup.

The Markdown functions also ``redact`` credentials first (see ``_source``).

The Markdown escapes keep ordinary text byte-identical: only what could start HTML, an entity, a
link or image, a table, or a block (heading, fence, quote, rule...) is escaped, and code spans
that open and close on one line are kept as they are (their content is literal).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from agent.redact import redact

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["HIDDEN", "md_block", "md_code", "md_inline", "one_line", "rich_text", "visible"]

# What ``visible`` escapes. C0 controls but \t and \n, DEL and C1 controls; lone surrogates
# (undecodable path bytes); bidi marks, embeddings, overrides and isolates; zero-width and other
# invisible characters; line/paragraph separators; Unicode "tag" characters (used to hide text).
HIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str) -> str:
    """Every control character (but newline and tab) and invisible spoofing character shown as
    a Python-style escape: ESC as the four characters ``\\x1b``, U+202E as ``\\u202e``.

    A CRLF line ending counts as a newline; a lone CR (which would rewrite the line) does not.
    Other text, backslashes included, is unchanged, so this is idempotent."""
    return HIDDEN.sub(_escape, text.replace("\r\n", "\n"))


def one_line(text: str) -> str:
    """``visible``, with newlines and tabs also shown as ``\\n`` and ``\\t``."""
    return visible(text).replace("\n", "\\n").replace("\t", "\\t")


# ---- Markdown ---------------------------------------------------------------------------------


def _source(text: str) -> str:
    """Markdown values are redacted before they are escaped: escaping can split a credential
    (``abc\\_-def``) so that redacting the rendered document would miss it, and the ``***``
    redaction writes must be escaped like any other text."""
    return visible(redact(text))


_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# What a character reference needs to be decoded (``&#x1b;`` would become a real ESC).
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_ATX = re.compile(r"#{1,6}(?:[ \t]|$)")
_FENCE = re.compile(r"(?:`{3,}|~{3,})")
_RULE = re.compile(r"([-*_])(?:[ \t]*\1){2,}[ \t]*$")  # --- *** ___ - - -
# A setext underline (=== / ---) or a table's delimiter row (|---|:-:|).
_UNDERLINE = re.compile(r"(?:=+|[-:|][-:| \t]*)[ \t]*$")
_LIST = re.compile(r"([-+*]|[0-9]{1,9}[.)])(?:[ \t]+|$)")


def _columns(space: str) -> int:
    cols = 0
    for c in space:
        cols = cols + 4 - cols % 4 if c == "\t" else cols + 1
    return cols


def _line_start(line: str, keep_lists: bool) -> tuple[str, str]:
    """Split ``line`` into an escaped opening and the rest, so that the line cannot begin a
    block (heading, rule, setext underline, table row, quote, fence, indented code).

    With ``keep_lists``, list markers stay (a list item cannot leave its section), and what
    follows them is checked the same way; otherwise a list marker is escaped too."""
    body = line.lstrip(" \t")
    # Four columns of indentation make indented code: at most three are kept.
    head = " " * min(_columns(line[: len(line) - len(body)]), 3)
    while body:
        if _RULE.match(body) or _UNDERLINE.match(body) or _ATX.match(body):
            return head + "\\" + body[0], body[1:]
        if body[0] == ">" or _FENCE.match(body):
            return head + "\\" + body[0], body[1:]
        item = _LIST.match(body)
        if item is None:
            break
        marker = item.group(1)
        if not keep_lists:
            # "-" / "+" / "1." / "1)": escape the character that makes it a marker.
            return head + marker[:-1] + "\\" + marker[-1], body[len(marker) :]
        head += marker + " "
        body = body[item.end() :]
    return head, body


def _closer(s: str, start: int, length: int) -> int | None:
    """Where the code span opened by ``length`` backticks before ``start`` ends, searched as
    CommonMark parsers do (the first run of exactly as many backticks), on this line only."""
    i = s.find("`", start)
    while i != -1:
        j = i
        while j < len(s) and s[j] == "`":
            j += 1
        if j - i == length:
            return j
        i = s.find("`", j)
    return None


def _inline(s: str, strict: bool) -> str:
    """Escape one line's inline text. Code spans that close on the line are kept verbatim;
    outside them HTML, entities, links, images and table pipes are neutralised. ``strict``
    also escapes emphasis and strikethrough delimiters, so the text cannot close a construct
    around it (``**...**``, ``_..._``)."""
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            if i + 1 < n and s[i + 1] in _PUNCT:
                out.append(s[i : i + 2])  # already an escape: a literal character
                i += 2
                continue
            # At the end it would escape what follows (the closing ``**``).
            out.append("\\\\" if strict and i + 1 == n else "\\")
        elif c == "`":
            j = i
            while j < n and s[j] == "`":
                j += 1
            end = _closer(s, j, j - i)
            if end is None:
                out.append("\\`" * (j - i))
                i = j
            else:
                out.append(s[i:end])
                i = end
            continue
        elif c == "<":
            # "< " cannot start a tag or an autolink; at the end, what follows is not known.
            out.append(c if i + 1 < n and s[i + 1] in " \t" else "&lt;")
        elif c == "&":
            out.append("&amp;" if _ENTITY.match(s, i) else c)
        elif (
            c == "|"
            # "[" at the start of a line could begin a link definition or a task-list box;
            # elsewhere a link or image needs "](", which is broken at the "]".
            or (c == "[" and i == 0)
            or (c == "]" and s.startswith("(", i + 1))
            or (strict and c in "*~")
        ):
            out.append("\\" + c)
        elif strict and c == "_":
            # Between two letters or digits "_" can neither open nor close emphasis.
            inside = 0 < i < n - 1 and s[i - 1].isalnum() and s[i + 1].isalnum()
            out.append(c if inside else "\\_")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def md_inline(text: str) -> str:
    """Text for inside one Markdown line ownit writes (a list item, a bold question): on one
    line (newlines become spaces), no HTML, no block start, and nothing that could close the
    surrounding emphasis or code span."""
    flat = re.sub(r"\s*\n\s*", " ", _source(text)).strip()
    head, rest = _line_start(flat, keep_lists=False)
    out = head + _inline(rest, strict=True)
    if out.endswith("#"):  # would be read as the closing sequence of a heading
        stripped = out.rstrip("#")
        out = stripped + "\\" + out[len(stripped) :]
    return out


def md_block(text: str) -> str:
    """Multi-line prose that stays paragraphs (and lists) of the section it is placed in: no
    line starts a heading, rule, quote, fence, table, HTML block, link definition or indented
    code; no HTML anywhere. Inline emphasis and code spans are kept."""
    lines = []
    for line in _source(text).split("\n"):
        if not line.strip():
            lines.append("")
            continue
        head, rest = _line_start(line, keep_lists=True)
        lines.append(head + _inline(rest, strict=False))
    return "\n".join(lines)


def md_code(text: str) -> str:
    """An inline code span holding ``one_line(text)`` literally, whatever backticks it has."""
    s = one_line(redact(text))
    longest = max((len(run) for run in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    # Parsers strip one space from each side when both have one, and need a space between
    # the fence and a backtick inside.
    if not s:
        s = " "
    elif s[0] == "`" or s[-1] == "`" or (s[0] == s[-1] == " " and s.strip(" ")):
        s = f" {s} "
    return f"{fence}{s}{fence}"


# ---- rich -------------------------------------------------------------------------------------


def rich_text(text: str) -> Text:
    """A value for a rich table cell or column: on one line, and never read as markup."""
    from rich.text import Text  # here: the ledger's reports use no rich

    return Text(one_line(text))
