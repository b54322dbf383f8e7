"""Hostile paths and model replies cannot drive the terminal or break ownit's Markdown.

Text from the diff (paths) and from the model (summary, walkthroughs, questions, reasons) is
built into reviews here with escape sequences, rich markup, Markdown structure and HTML in
every field that is rendered; the Markdown, the terminal output (plain and rich), the dry run,
the progress lines and the JSON must stay inert, keep ownit's own structure, and still show the
hostile text to the reader.
"""

from __future__ import annotations

import io
import json
import random
import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token
from rich.console import Console

from agent.chunking import pack
from agent.config import ModelEntry
from agent.diff import parse_diff
from agent.ledger import RunInfo
from agent.plan import Plan
from agent.providers import resolve
from agent.render.artifacts import render_json
from agent.render.markdown import footer, render_markdown
from agent.render.safe import md_block, md_code, md_inline, one_line, rich_text, visible
from agent.render.terminal import TerminalProgress, print_dry_run, print_review
from agent.result import (
    Anchor,
    Coverage,
    DroppedCounts,
    FileNote,
    NotReviewed,
    Question,
    Review,
    Usage,
)
from agent.review import DryRun, Estimate
from agent.schema import Dropped
from agent.sources import DiffSource

ESC_SEQS = "\x1b[2J\x1b]0;pwned\x07"
BIDI = "\u202e"
# A path as git would quote it in a diff: ESC, a newline, backticks, rich markup (a closing
# tag alone would make rich raise), a bidi override.
PATH = f"src/evil{ESC_SEQS}\nname`x`[red]b[/red][/]{BIDI}.py"
PATH2 = "img\x1b]0;title\x07``.png`"
# One line of model text, for fields placed inside ownit's own lines.
LINE = (
    f"Does **it** _close_ `code {ESC_SEQS}` the *bold or_ | pipe [a](http://x) "
    f"![i](http://x/p.png) <b>x</b> <img src=x onerror=alert(1)> &#x1b;[2J {BIDI}rtl ~~s~~ `` \\"
)
# Model prose: every block-level construct that could leave its section.
PROSE = (
    f"Intro {ESC_SEQS} {BIDI}reversed\n"
    "## Injected heading\n"
    "```\nfenced code swallowing the rest\n"
    "<script>alert(1)</script>\n"
    "<img src=x onerror=alert(1)>\n"
    "<!-- hide everything after\n"
    "</details>\n"
    "---\n"
    "> quoted\n"
    "Setext\n===\n"
    "    indented code\n"
    "- ok item\n- # heading in an item\n-     code in an item\n"
    "| a | b |\n|---|---|\n"
    "[ref]: http://evil.example\n"
    "~~~\n"
    "&#x1b;[2J entity and &#x202e; too\n"
    "[click](javascript:alert(1)) ![pixel](http://evil.example/p.png)\n"
    "\t\ttabbed code\n"
    "***\n"
    "- [ ] task\n"
)
HOSTILE_MARKERS = ("\x1b[2J", "\x1b]0;", "\x07", BIDI)


def run_info(**fields: Any) -> RunInfo:
    base: dict[str, Any] = {"id": "0123456789abcdef", "started_at": datetime.now(UTC)}
    return RunInfo(**{**base, **fields})


def usage(**fields: Any) -> Usage:
    base: dict[str, Any] = {
        "models": ["openai/gpt-local"],
        "calls": 1,
        "failed_calls": 0,
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "cost_usd": 0.0012,
        "cost_complete": True,
    }
    return Usage(**{**base, **fields})


def hostile_review() -> Review:
    return Review(
        run=run_info(
            repo=f"acme/pay{ESC_SEQS}[red]ments",
            team=f"pay[bold]{ESC_SEQS} _it_ <b>x</b> *",
            pr_number=7,
        ),
        summary=PROSE,
        risk="high",
        risk_reasons=[LINE, PROSE, "## reason heading", "1. ordered", "- dash", "> quote", "<!--"],
        files=[
            FileNote(path=PATH, status="modified", walkthrough=PROSE),
            FileNote(path=PATH2, status=f"added{ESC_SEQS}", walkthrough=LINE),
        ],
        questions=[
            Question(
                rank=1,
                question=LINE + "\n## Question heading",
                category="failure_mode",
                priority="high",
                why_it_matters=PROSE,
                anchor=Anchor(path=PATH, side="new", start_line=1, end_line=2),
            ),
            Question(
                rank=2,
                question="`unclosed code **",
                category="intent",
                priority="low",
                why_it_matters="ends in a backslash \\",
                anchor=Anchor(path=PATH2, side="old", start_line=3, end_line=3),
            ),
        ],
        dropped=DroppedCounts(
            questions_invalid=1,
            examples=[Dropped(kind="question", what=PROSE, reason=LINE)],
        ),
        coverage=Coverage(
            files_total=3,
            files_reviewed=2,
            hunks_total=3,
            hunks_reviewed=2,
            not_reviewed=[NotReviewed(path=PATH, hunks=1, reason=PROSE)],
        ),
        usage=usage(
            models=[f"openai/{ESC_SEQS}[red]m"], unpriced_models=[f"x{ESC_SEQS}"], cost_usd=0.0
        ),
        complete=False,
        problems=[PROSE, LINE],
        notes=[PROSE],
        interrupted=f"SIGINT{ESC_SEQS}",
        ledger_error=PROSE,
    )


# ---- what counts as inert --------------------------------------------------------------------

INVISIBLE = {0x061C, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0x2060, 0xFEFF}
INVISIBLE |= set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def raw_controls(text: str) -> list[str]:
    """Control characters (but newline and tab) and invisible bidi/zero-width characters."""
    return [
        c
        for c in text
        if (unicodedata.category(c) == "Cc" and c not in "\n\t") or ord(c) in INVISIBLE
    ]


def assert_inert(text: str) -> None:
    assert raw_controls(text) == []


def console(terminal: bool, color_system: str | None = None) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    con = Console(
        file=out,
        force_terminal=terminal,
        color_system=color_system,  # type: ignore[arg-type]
        width=400,  # no wrapping inside the strings looked for
    )
    return con, out


def assert_terminal_safe(text: str) -> None:
    """Rich's own styling and cursor codes are ESC sequences (and a live display writes CRs);
    the hostile ones must not be there."""
    for marker in HOSTILE_MARKERS:
        assert marker not in text
    assert [c for c in raw_controls(text) if c not in "\x1b\r"] == []


# ---- Markdown structure ----------------------------------------------------------------------


def parse(text: str) -> list[Token]:
    """Tokens as CommonMark with GitHub's tables and strikethrough (what rich and GitHub use)."""
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    out: list[Token] = []
    for token in md.parse(text):
        out.append(token)
        out.extend(token.children or [])
    return out


def plain(inline: Token) -> str:
    return "".join(
        t.content for t in inline.children or [] if t.type in ("text", "code_inline", "softbreak")
    )


def headings(tokens: list[Token]) -> list[tuple[int, str]]:
    found = []
    for i, t in enumerate(tokens):
        if t.type == "heading_open":
            inline = next(x for x in tokens[i + 1 :] if x.type == "inline")
            found.append((int(t.tag[1]), plain(inline)))
    return found


def types(tokens: list[Token]) -> list[str]:
    return [t.type for t in tokens]


def test_markdown_is_inert() -> None:
    assert_inert(render_markdown(hostile_review()))


def test_markdown_keeps_ownits_structure() -> None:
    review = hostile_review()
    tokens = parse(render_markdown(review))
    assert headings(tokens) == [
        (1, f"ownit review: {visible(review.run.repo or '')} #7"),
        (2, "Summary"),
        (2, "Questions for the author"),
        (2, "Walkthrough"),
        (3, f"{one_line(PATH)} (modified)"),
        (3, f"{one_line(PATH2)} (added{visible(ESC_SEQS)})"),
        (2, "Not reviewed"),
    ]
    kinds = types(tokens)
    for forbidden in ("html_block", "html_inline", "fence", "code_block", "table_open"):
        assert forbidden not in kinds, forbidden
    for forbidden in ("link_open", "image"):
        assert forbidden not in kinds, forbidden
    assert kinds.count("hr") == 1  # the footer's rule
    # ownit's own quotes: interrupted, incomplete, one note, the ledger error.
    assert kinds.count("blockquote_open") == 4
    # The footer is still one emphasised line at the end.
    last = [t for t in tokens if t.type == "inline"][-1]
    children = types(last.children or [])
    assert children[0] == "em_open" and children[-1] == "em_close"
    assert children.count("em_open") == 1
    assert plain(last).startswith("files 2/3 · hunks 2/3 · model openai/")
    assert plain(last).endswith("· run 0123456789ab")


def test_each_question_stays_one_list_item_with_its_anchor_in_code() -> None:
    review = hostile_review()
    tokens = parse(render_markdown(review))
    items = [t for t in tokens if t.type == "list_item_open" and t.info in ("1", "2")]
    assert [t.info for t in items] == ["1", "2"]
    codes = [t.content for t in tokens if t.type == "code_inline"]
    for q in review.questions:
        assert one_line(str(q.anchor)) in codes
    # The question text is all inside its bold, as one line.
    strong = [
        i for i, t in enumerate(tokens) if t.type == "strong_open" and tokens[i + 1].type == "text"
    ]
    texts = []
    for i in strong:
        end = next(j for j in range(i, len(tokens)) if tokens[j].type == "strong_close")
        texts.append("".join(t.content for t in tokens[i + 1 : end] if t.type == "text"))
    assert any(
        x.startswith("Does **it** _close_") and x.endswith("## Question heading") for x in texts
    )


def test_hostile_text_is_still_shown() -> None:
    text = render_markdown(hostile_review())
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)
    for shown in (
        "\\x1b[2J",
        "\\x1b]0;pwned\\x07",
        "\\u202e",
        "## Injected heading",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&lt;img src=x onerror=alert(1)&gt;",
        "&lt;!-- hide everything after",
        "&lt;/details&gt;",
        "&amp;#x1b;[2J entity",
        "[click](javascript:alert(1))",
        "## Question heading",
        "[red]b[/red][/]",
    ):
        assert shown in html, shown


def test_plain_terminal_output_is_inert() -> None:
    con, out = console(terminal=False)
    print_review(hostile_review(), con)
    text = out.getvalue()
    assert_inert(text)
    assert "\\x1b[2J" in text and "Injected heading" in text


def test_plain_terminal_output_is_inert_even_from_raw_markdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plain printer does not rely on the Markdown being escaped already."""
    monkeypatch.setattr("agent.render.terminal.render_markdown", lambda review: PROSE)
    con, out = console(terminal=False)
    print_review(hostile_review(), con)
    assert_inert(out.getvalue())


@pytest.mark.parametrize("color_system", [None, "truecolor"])
def test_rich_terminal_output_is_inert(color_system: str | None) -> None:
    con, out = console(terminal=True, color_system=color_system)
    print_review(hostile_review(), con)
    text = out.getvalue()
    assert_terminal_safe(text)
    if color_system is None:
        assert "\x1b" not in text  # no styling at all: nothing can be an escape sequence
    assert "\\x1b[2J" in text and "Injected heading" in text and "[red]b[/red]" in text


# ---- dry run and progress --------------------------------------------------------------------

QUOTED = '"b/src/evil\\033[2J\\nname`x`[red]b[/red][/]\\342\\200\\256.py"'
DIFF = f"""diff --git {QUOTED.replace('"b/', '"a/', 1)} {QUOTED}
--- {QUOTED.replace('"b/', '"a/', 1)}
+++ {QUOTED}
@@ -1 +1 @@
-a
+b
diff --git "a/img\\033]0;pwned\\007.png" "b/img\\033]0;pwned\\007.png"
Binary files "a/img\\033]0;pwned\\007.png" and "b/img\\033]0;pwned\\007.png" differ
""".encode()


def dry_run_result() -> DryRun:
    diff = parse_diff(DIFF)
    assert diff.files[0].path == PATH.replace(ESC_SEQS, "\x1b[2J")
    packing = pack(diff, 10_000)
    hostile = f"evil{ESC_SEQS}[/]"
    plan = Plan(
        model_name=hostile,
        model=f"openai/{hostile}",
        context_window=32_000,
        budget=10_000,
        chunks=packing.chunks,
        skipped=packing.skipped,
        files_total=len(diff.files),
        hunks_total=1,
        prompt_tokens=1_000,
        output_tokens=100,
    )
    model = resolve(hostile, ModelEntry(model=f"openai/{hostile}"), {})
    estimates = [
        Estimate(hostile, f"openai/{hostile}", False, (f"KEY{ESC_SEQS}[/]",), 32_000, None),
        Estimate("plain", "openai/plain", True, (), 32_000, 0.5),
    ]
    source = DiffSource(data=DIFF, origin=f"file {PATH}")
    return DryRun(source=source, model=model, plan=plan, estimates=estimates)


def test_dry_run_output_is_inert() -> None:
    result = dry_run_result()
    con, out = console(terminal=False)
    print_dry_run(result, con)
    text = out.getvalue()
    assert_inert(text)
    # Markup in paths and names is shown, not interpreted (a lone "[/]" would raise).
    assert "[red]b[/red][/]" in text and "img\\x1b]0;pwned\\x07.png" in text
    assert "KEY\\x1b[2J" in text

    con, out = console(terminal=True, color_system="truecolor")
    print_dry_run(result, con)
    assert_terminal_safe(out.getvalue())


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_labels_are_inert(terminal: bool) -> None:
    con, out = console(terminal=terminal, color_system="truecolor" if terminal else None)
    progress = TerminalProgress(con)
    progress.planned(2)
    progress.chunk_done(PATH, ok=True)
    progress.chunk_done(f"{PATH} +1 more", ok=False)
    progress.close()
    text = out.getvalue()
    assert_terminal_safe(text)
    if not terminal:
        assert_inert(text)
        assert f"[1/2] {one_line(PATH)}: done" in text


def test_footer_for_the_terminal_is_one_safe_line() -> None:
    line = footer(hostile_review())
    assert_inert(line)
    assert "\n" not in line
    assert "team pay[bold]\\x1b[2J" in line


# ---- JSON ------------------------------------------------------------------------------------


def test_json_is_inert_and_exact() -> None:
    review = hostile_review().model_copy(update={"summary": PROSE + "\x9b2J\x7f\u2066\U000e0041"})
    text = render_json(review)
    assert_inert(text)
    assert "\U000e0041" not in text
    assert json.loads(text) == review.model_dump(mode="json")
    assert Review.model_validate_json(text) == review


# ---- the helpers -----------------------------------------------------------------------------


def test_visible_and_one_line() -> None:
    assert visible(ESC_SEQS) == "\\x1b[2J\\x1b]0;pwned\\x07"
    assert visible("a\r\nb\rc\x00\x7f\x9b") == "a\nb\\x0dc\\x00\\x7f\\x9b"
    assert visible(f"x{BIDI}\u2066\u200d\ufeff") == "x\\u202e\\u2066\\u200d\\ufeff"
    assert visible("plain\ttext\nüñí €") == "plain\ttext\nüñí €"
    assert visible(visible(ESC_SEQS)) == visible(ESC_SEQS)
    assert one_line("a\nb\tc\x1b") == "a\\nb\\tc\\x1b"
    assert rich_text("[red]x\n").plain == "[red]x\\n"


@pytest.mark.parametrize(
    "path", ["a.py", "we`ird.py", "`x`", "a``b```c", " spaced ", "", "x\n`y", "<b>&amp;"]
)
def test_md_code_holds_any_path(path: str) -> None:
    tokens = parse(f"### {md_code(path)} (modified)\n\n- {md_code(path)}: x\n")
    codes = [t.content for t in tokens if t.type == "code_inline"]
    assert codes == [one_line(path) or " "] * 2
    assert md_code("payments/client.py:3-5") == "`payments/client.py:3-5`"


@pytest.mark.parametrize(
    "text",
    [
        "What is the intent behind `import time` in payments/client.py?",
        "Why does retry_charge() sleep between attempts, and what if it raises?",
        "60 changed line(s) in 3 file(s) (high threshold).",
        "x < 5 and a & b, see [Errno 17] or a -> b",
        "How does `# Total attempts` work with `a < b`?",
    ],
)
def test_md_inline_keeps_ordinary_text(text: str) -> None:
    assert md_inline(text) == text


def test_md_inline_in_a_table_cell_stays_one_cell() -> None:
    """A PR comment may put values in a table: a pipe must not add a column."""
    for text in (LINE, "a | b", "|", "x\\|y"):
        tokens = parse(f"| a | b |\n|---|---|\n| {md_inline(text)} | x |\n")
        cells = [tokens[i + 1] for i, t in enumerate(tokens) if t.type == "td_open"]
        assert [c.content for c in cells][1:] == ["x"], text  # extra cells would be cut


def test_md_inline_in_a_heading_keeps_a_trailing_hash() -> None:
    assert headings(parse(f"# ownit review: {md_inline('acme/x #')}\n")) == [
        (1, "ownit review: acme/x #")
    ]


def test_md_block_keeps_ordinary_prose() -> None:
    prose = (
        "Adds a **retry** loop to `charge()`, with `max_attempts < 5`.\n\n"
        "- first item\n- second, with snake_case\n  continued\n\n1. one\n2. two\n"
        "Then 3 * 4 = 12, and a_b."
    )
    assert md_block(prose) == prose


def test_md_inline_cannot_close_the_construct_around_it() -> None:
    for text in (LINE, "a **b", "a_ b", "x*", "*", "~~s", "end\\", "`", "```", "a | b"):
        tokens = parse(f"1. **{md_inline(text)}**  \n   `anchor`\n\n_{md_inline(text)} · run_\n")
        kinds = types(tokens)
        assert kinds.count("strong_open") == 1 and kinds.count("em_open") == 1, text
        assert "anchor" in [t.content for t in tokens if t.type == "code_inline"], text


@pytest.mark.parametrize("line", PROSE.splitlines())
def test_md_inline_at_the_start_of_an_item_cannot_start_a_block(line: str) -> None:
    tokens = parse(f"- {md_inline(line)}\n- next\n")
    kinds = types(tokens)
    assert kinds.count("list_item_open") == 2
    for forbidden in ("heading_open", "html_block", "fence", "code_block", "hr", "blockquote_open"):
        assert forbidden not in kinds, (line, forbidden)
    assert kinds.count("bullet_list_open") == 1 and "ordered_list_open" not in kinds


def test_md_block_keeps_lists_but_nothing_else() -> None:
    tokens = parse("## Summary\n\n" + md_block(PROSE) + "\n\n## Next\n")
    assert headings(tokens) == [(2, "Summary"), (2, "Next")]
    kinds = types(tokens)
    assert "bullet_list_open" in kinds  # "- ok item" is still a list
    for forbidden in (
        "html_block",
        "html_inline",
        "fence",
        "code_block",
        "hr",
        "blockquote_open",
        "table_open",
        "link_open",
        "image",
    ):
        assert forbidden not in kinds, forbidden


# Fragments combined at random: whatever their order, nothing can leave its place.
ATOMS = [
    "`",
    "``",
    "```",
    "~~~",
    "\\",
    "*",
    "**",
    "_",
    "__",
    "~~",
    "<",
    ">",
    "<b>",
    "</details>",
    "<!--",
    "-->",
    "&#x1b;",
    "&amp;",
    "[",
    "]",
    "](x)",
    "![",
    "|",
    "#",
    "## ",
    "---",
    "===",
    "- ",
    "1. ",
    "    ",
    "\t",
    "\n",
    "\n\n",
    " ",
    "a",
    "word",
    ESC_SEQS,
    BIDI,
    ":-:",
    "[x]: /u",
    "- [ ] ",
]


def test_random_mixtures_stay_in_place() -> None:
    rng = random.Random(12)
    for _ in range(400):
        text = "".join(rng.choice(ATOMS) for _ in range(rng.randint(1, 14)))
        if not md_inline(text):
            continue  # an empty question is not valid, and "****" would be a rule
        doc = (
            f"# T\n\n{md_block(text)}\n\n## Q\n\n"
            f"1. **{md_inline(text)}**  \n   {md_code(text)} · intent  \n"
            f"   _W:_ {md_inline(text)}\n\n"
            f"### {md_code(text)} ({md_inline(text)})\n\n{md_block(text)}\n\n"
            f"- {md_inline(text)}\n\n---\n_{md_inline(text)} · run x_\n"
        )
        assert_inert(doc)
        tokens = parse(doc)
        assert headings(tokens)[:2] == [(1, "T"), (2, "Q")], text
        assert [h[0] for h in headings(tokens)] == [1, 2, 3], text
        kinds = types(tokens)
        for forbidden in ("html_block", "html_inline", "fence", "code_block", "table_open"):
            assert forbidden not in kinds, (text, forbidden)
        assert "link_open" not in kinds and "image" not in kinds, text
        assert kinds.count("hr") == 1 and "blockquote_open" not in kinds, text
        footer_line = types([t for t in tokens if t.type == "inline"][-1].children or [])
        assert kinds.count("strong_open") >= 1, text
        assert footer_line[0] == "em_open" and footer_line[-1] == "em_close", text


# ---- ordinary reviews render as before -------------------------------------------------------


def test_plain_review_renders_exactly_as_before() -> None:
    review = Review(
        run=run_info(repo="acme/payments", team="payments", pr_number=42),
        summary="Adds retries to `charge()`.\n\n- one\n- two",
        risk="medium",
        risk_reasons=["touches payments/client.py"],
        files=[FileNote(path="payments/client.py", status="modified", walkthrough="Retries.")],
        questions=[
            Question(
                rank=1,
                question="What happens when `charge()` times out?",
                category="failure_mode",
                priority="high",
                why_it_matters="A double charge costs money.",
                anchor=Anchor(path="payments/client.py", side="new", start_line=3, end_line=5),
            )
        ],
        coverage=Coverage(
            files_total=2,
            files_reviewed=1,
            hunks_total=3,
            hunks_reviewed=2,
            not_reviewed=[NotReviewed(path="assets/logo.png", hunks=1, reason="binary file")],
        ),
        usage=usage(),
        complete=True,
        problems=[],
        notes=["uncommitted changes were not included"],
    )
    assert render_markdown(review) == (
        "# ownit review: acme/payments #42\n\n"
        "> Note: uncommitted changes were not included\n\n"
        "**Risk: medium**\n\n"
        "- touches payments/client.py\n\n"
        "## Summary\n\n"
        "Adds retries to `charge()`.\n\n- one\n- two\n\n"
        "## Questions for the author\n\n"
        "Be ready to answer each of these before you merge. To show you own the change, answer "
        "in a reply, one `Q<n>:` per question (`ownit questions` prints a form).\n\n"
        "1. **What happens when `charge()` times out?**  \n"
        "   `payments/client.py:3-5` · failure mode · high priority  \n"
        "   _Why it matters:_ A double charge costs money.\n\n"
        "## Walkthrough\n\n"
        "### `payments/client.py` (modified)\n\n"
        "Retries.\n\n"
        "## Not reviewed\n\n"
        "- `assets/logo.png` (1 hunk): binary file\n\n"
        "---\n"
        "_files 1/2 · hunks 2/3 · model openai/gpt-local · 1 call · 100 in / 20 out tokens · "
        "$0.0012 · team payments · run 0123456789ab_\n"
    )


def test_credentials_are_redacted_before_escaping(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "zq_-9f8e7d6c5b4a_"  # escaping would split it: z q \_ - ... \_
    monkeypatch.setenv("EXAMPLE_API_KEY", secret)
    review = hostile_review().model_copy(update={"summary": f"key {secret}", "notes": [secret]})
    text = render_markdown(review)
    assert secret not in text and secret.replace("_", "\\_") not in text
    assert "9f8e7d6c5b4a" not in text
