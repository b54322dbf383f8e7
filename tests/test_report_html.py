"""The HTML report in a real browser: Debian's Chromium driven by Playwright (no browser
download: ``executable_path``). The page is opened from disk as a finance lead would, and the
tests assert on what Chromium lays out and shows, not on the markup: bar heights measured on the
page against the hand-built data, legend and table text as rendered, the over-budget bar past
the 100 % line.

Skipped when Playwright or Chromium is missing, unless ``OWNIT_REQUIRE_BROWSER=1`` (``.ci/run``
sets it after installing Chromium), which makes a missing browser a failure.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.ledger.formats import render_html
from agent.ledger.reports import Overview
from tests.report_data import XSS_IMG, XSS_SCRIPT, overview

CHROMIUM = os.environ.get("OWNIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
REQUIRED = os.environ.get("OWNIT_REQUIRE_BROWSER") == "1"

# Spies installed before the page's own code: a script that ran would leave a trace here.
SPY = """
window.__ran = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (...args) => { window.__ran.push(name + ":" + args.join(",")); };
}
"""


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed: .venv/bin/pip install -e '.[test]'"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set OWNIT_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _unavailable()
    if reason:
        if REQUIRED:
            pytest.fail(f"{reason} (OWNIT_REQUIRE_BROWSER=1: the browser tests must run)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@dataclass
class Opened:
    page: Any
    requests: list[str] = field(default_factory=list)  # every URL but the page's own
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    dialogs: list[str] = field(default_factory=list)

    def ran(self) -> list[str]:
        return list(self.page.evaluate("window.__ran")) + self.dialogs


def open_page(
    browser: Any, path: Path, overview: Overview, ownership: str = "", **context: Any
) -> Opened:
    path.write_text(render_html(overview, ownership), encoding="utf-8")
    url = path.as_uri()
    ctx = browser.new_context(viewport={"width": 1200, "height": 900}, **context)
    page = ctx.new_page()
    opened = Opened(page)
    page.add_init_script(SPY)
    page.on("request", lambda r: r.url != url and opened.requests.append(r.url))
    page.on(
        "console",
        lambda m: m.type in ("error", "warning") and opened.errors.append(f"{m.type}: {m.text}"),
    )
    page.on("pageerror", lambda e: opened.errors.append(f"pageerror: {e}"))

    def on_dialog(d: Any) -> None:
        opened.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    # Anything the page asks the network for is refused, and recorded above.
    ctx.route(
        "**/*", lambda route: route.continue_() if route.request.url == url else route.abort()
    )
    page.goto(url, wait_until="load")
    return opened


@pytest.fixture
def shown(browser: Any, tmp_path: Path) -> Iterator[Opened]:
    """The overview page with its Content-Security-Policy switched off: what the tests see is
    what escaping alone protects, and a fetch is attempted (then refused) rather than blocked."""
    opened = open_page(browser, tmp_path / "report.html", overview(), bypass_csp=True)
    yield opened
    opened.page.context.close()


def series(team: str | None, rest_of: int) -> str:
    """The chart's name for a by_team row: --top's rest joins "other teams"."""
    return "other teams" if rest_of else "(not recorded)" if team is None else team


def box(locator: Any) -> dict[str, float]:
    b = locator.bounding_box()
    assert b is not None, "not laid out"
    return dict(b)


def test_spend_over_time_bars_are_proportional_to_each_teams_spend(shown: Opened) -> None:
    page = shown.page
    data = overview().by_team
    expected = {(series(r.key[0], r.rest_of), r.period): r.cost_usd for r in data.rows}
    segs = page.locator("svg.stacked rect.seg")
    assert segs.count() == len(expected) == 9
    per_dollar = []
    drawn = {}
    for i in range(segs.count()):
        seg = segs.nth(i)
        key = (seg.get_attribute("data-series"), seg.get_attribute("data-period"))
        drawn[key] = box(seg)
        per_dollar.append(drawn[key]["height"] / expected[key])
    assert set(drawn) == set(expected)
    assert max(per_dollar) / min(per_dollar) == pytest.approx(1, abs=0.01)
    # Stacked: each period's segments touch, in one column; the columns share a baseline.
    for period in ("2026-09", "2026-10", "2026-11"):
        boxes = sorted((b for (_, p), b in drawn.items() if p == period), key=lambda b: b["y"])
        for upper, lower in itertools.pairwise(boxes):
            assert upper["y"] + upper["height"] == pytest.approx(lower["y"], abs=0.1)
            assert upper["x"] == pytest.approx(lower["x"], abs=0.1)
    bottoms = {
        period: max(b["y"] + b["height"] for (_, p), b in drawn.items() if p == period)
        for period in ("2026-09", "2026-10", "2026-11")
    }
    assert max(bottoms.values()) - min(bottoms.values()) < 0.5
    # Each period's total is written over its bar, and every period is labelled.
    text = page.locator("svg.stacked").text_content() or ""
    for label in ("$204", "$326+", "$665", "2026-09", "2026-10", "2026-11"):
        assert label in text


def test_legend_names_every_team_with_its_colour(shown: Opened) -> None:
    page = shown.page
    items = page.locator('ul.legend[aria-label="Teams"] li')
    names = [items.nth(i).inner_text() for i in range(items.count())]
    assert len(names) == 5
    for team, amount in (
        ("payments", "$983.55"),
        ("search", "$140.65"),
        (XSS_SCRIPT, "$58.10"),
        ("(not recorded)", "$3.50"),
        ("other teams", "$9.75"),
    ):
        assert any(n.startswith(team) and amount in n for n in names), (team, names)
    # The legend's swatch is the colour of that team's bars, and no two teams share one.
    colours = {}
    for i in range(items.count()):
        series = items.nth(i).get_attribute("data-series")
        swatch = items.nth(i).locator("rect").get_attribute("fill")
        seg = shown.page.locator(f'svg.stacked rect.seg[data-series="{series}"]').first
        assert seg.get_attribute("fill") == swatch
        colours[series] = swatch
    assert len(set(colours.values())) == len(colours)


def test_top_repos_and_prs_bars_and_the_rest(shown: Opened) -> None:
    page = shown.page
    bars = page.locator("svg.top").first.locator("rect.hbar")
    widths = [box(bars.nth(i))["width"] for i in range(bars.count())]
    assert len(widths) == 3
    assert [w / widths[0] for w in widths] == pytest.approx([1, 275 / 300, 250 / 300], abs=0.005)
    top = page.locator("#top").inner_text()
    for text in ("acme/api", "acme/web", XSS_IMG, "$300.00", "(12 more repos): $41.00"):
        assert text in top
    assert "acme/api#101" in top and "acme/web#7" in top


def test_growth_names_rising_teams_and_drivers(shown: Opened) -> None:
    growth = shown.page.locator("#growth").inner_text()
    assert "more PRs ×1.40, bigger PRs ×1.12" in growth
    assert "pricier models ×2.50" in growth
    assert "+144%" in growth and "+182%" in growth
    assert "search" not in growth  # it fell: not rising


def test_over_budget_bar_is_marked_over_and_past_the_budget_line(shown: Opened) -> None:
    page = shown.page
    full = box(page.locator("svg.burn line.full"))["x"]
    state = {}
    for team in ("payments", XSS_SCRIPT, "search"):
        group = page.locator("svg.burn g.budget").filter(has_text=team).first
        state[team] = group.get_attribute("data-state")
        spent = box(group.locator("rect.spent"))
        state[team + " end"] = spent["x"] + spent["width"]
        state[team + " text"] = group.locator("text.value").text_content()
    assert state["payments"] == "over" and "OVER" in state["payments text"]
    assert state["payments end"] > full + 10
    assert "122%" in state["payments text"]
    assert state[XSS_SCRIPT] == "ok" and state[XSS_SCRIPT + " end"] < full
    assert state["search"] == "warning" and "warning" in state["search text"]
    row = page.locator("#budgets tr.state-over")
    assert row.count() == 1 and "payments" in row.inner_text()


def test_the_report_table_shows_every_period_row_and_total(shown: Opened) -> None:
    table = shown.page.locator("#report table").inner_text()
    for text in (
        "2026-09",
        "2026-10",
        "2026-11",
        "payments",
        "search",
        XSS_SCRIPT,
        "(not recorded)",
        "(37 more teams)",
        "612.30",
        "60.40+",
        "~1.50M",
        "+144%▲",
        "total 2026-11",
        "grand total",
        "~1,195.55+",
        "~326.35+",
    ):
        assert text in table, text
    notes = shown.page.locator("#report").inner_text()
    assert "+ at least this much: 4 call(s) have no known price" in notes


def test_nothing_left_the_page_and_nothing_ran(shown: Opened) -> None:
    page = shown.page
    assert shown.requests == []
    assert shown.errors == []
    assert shown.ran() == []
    assert page.locator("script, img, iframe, object, embed, link").count() == 0
    body = page.locator("body").inner_text()
    assert body.count(XSS_SCRIPT) >= 4  # legend, tables, growth, budgets: as text
    assert XSS_IMG in body
    # Attributes that carry the names hold them whole, as values.
    segs = page.locator("svg.stacked rect.seg").all()
    assert XSS_SCRIPT in {s.get_attribute("data-series") for s in segs}


def test_with_its_policy_the_page_loads_cleanly(browser: Any, tmp_path: Path) -> None:
    """As shipped (policy on; scripts on, then off as some readers have them): no violation
    reported, the same content shown, and the policy in force refuses an injected script."""
    for js in (True, False):
        opened = open_page(browser, tmp_path / "report.html", overview(), java_script_enabled=js)
        assert opened.errors == [] and opened.requests == []
        assert "grand total" in opened.page.locator("#report").inner_text()
        if js:
            ran = opened.page.evaluate(
                """() => { const s = document.createElement("script");
                s.textContent = "window.__ran.push('injected')"; document.body.append(s);
                return window.__ran.length; }"""
            )
            assert ran == 0
            assert any("Content Security Policy" in e for e in opened.errors)
        opened.page.context.close()


def test_charts_are_labelled_for_screen_readers(shown: Opened) -> None:
    page = shown.page
    for name in (
        "Spend per period, stacked by team",
        "Top repos by spend",
        "Top PRs by spend",
        "Growth against the previous period, %",
        "Budget burn this month",
    ):
        chart = page.get_by_role("img", name=name)
        assert chart.count() == 1, name
        assert chart.locator("desc").text_content()


def test_printing_keeps_the_charts_and_drops_the_navigation(shown: Opened) -> None:
    page = shown.page
    page.emulate_media(media="print")
    assert not page.locator("nav").is_visible()
    assert page.locator("svg.stacked").is_visible()
    assert len(page.pdf()) > 1000


def test_the_ownership_section_shows_each_teams_owned_share(browser: Any, tmp_path: Path) -> None:
    from agent.ledger.ownership import OwnershipReport, OwnershipRow, html_section

    rows = [
        OwnershipRow("2026-10", ("payments",), reviewed=4, owned=3, hours=[2.0, 4.0, 30.0]),
        OwnershipRow("2026-10", (XSS_IMG,), reviewed=4, owned=1, hours=[1.0]),
    ]
    totals = [
        OwnershipRow("2026-09", (), reviewed=2, owned=0),
        OwnershipRow(
            "2026-10", (), reviewed=8, owned=4, hours=[1.0, 2.0, 4.0, 30.0], change_pts=50
        ),
    ]
    report = OwnershipReport(("team",), "month", None, None, rows, totals)
    opened = open_page(browser, tmp_path / "r.html", overview(), html_section(report))
    page = opened.page
    bars = page.locator("svg.owned rect.hbar")
    widths = [box(bars.nth(i))["width"] for i in range(bars.count())]
    assert len(widths) == 2 and widths[1] / widths[0] == pytest.approx(1 / 3, abs=0.01)
    text = page.locator("#ownership").inner_text()
    for shown_text in ("payments", XSS_IMG, "75% of 4", "25% of 4", "+50 pts", "3.0"):
        assert shown_text in text
    assert "Ownership" in page.locator("nav").inner_text()
    assert opened.ran() == [] and opened.requests == []
    page.context.close()
