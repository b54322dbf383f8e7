"""The review graph. It ends at the finished ``Review``; reporters run after it.

load → mask ─┬─ (routing.triage) → triage ─┬─ plan ─┬─ (dry run) ──────────────────────► END
             └────────────────────────────┘         └─ explain xN (Send, async, bounded)
                                                         → synthesize → END

The path a run took is in the stream of its updates (``triage`` is there or not) and each
chunk's route says whether the triage's rating chose its model ("rule 'risky' (triage: high)").
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from agent import nodes
from agent.context import ReviewContext
from agent.state import ExplainTask, InputState, OutputState, State


def route_after_mask(state: State, runtime: Runtime[ReviewContext]) -> Literal["triage", "plan"]:
    """To the triage pass when routing.triage is set and there is a file to rate."""
    if state.diff is None:
        raise ValueError("mask node did not produce a diff")
    router = runtime.context.router
    if router is None or router.triage is None:
        return "plan"
    return "triage" if nodes.to_rate(state, runtime.context) else "plan"


def route_after_plan(state: State) -> list[Send] | Literal["synthesize", "__end__"]:
    if state.plan is None or state.diff is None:
        raise ValueError("plan node did not produce a plan")
    if state.dry_run:
        return "__end__"
    if not state.plan.chunks or state.refused:
        # An empty or fully excluded diff, or a plan over the cost limit: still a review, with
        # its coverage and why.
        return "synthesize"
    parts = len(state.plan.chunks)
    title = state.title or "(untitled)"
    repo = state.source.repo or "(unknown)"
    return [
        Send("explain", ExplainTask(chunk=c, parts=parts, diff=state.diff, title=title, repo=repo))
        for c in state.plan.chunks
    ]


def build_graph() -> CompiledStateGraph[State, ReviewContext, InputState, OutputState]:
    graph = StateGraph(
        State, context_schema=ReviewContext, input_schema=InputState, output_schema=OutputState
    )
    graph.add_node("load", nodes.load)
    graph.add_node("mask", nodes.mask)
    graph.add_node("triage", nodes.triage)
    graph.add_node("plan", nodes.plan)
    graph.add_node("explain", nodes.explain)  # type: ignore[arg-type]
    graph.add_node("synthesize", nodes.synthesize)
    graph.add_edge(START, "load")
    graph.add_edge("load", "mask")
    graph.add_conditional_edges("mask", route_after_mask, ["triage", "plan"])
    graph.add_edge("triage", "plan")
    graph.add_conditional_edges("plan", route_after_plan, ["explain", "synthesize", END])
    graph.add_edge("explain", "synthesize")
    graph.add_edge("synthesize", END)
    return graph.compile(name="ownit-review")
