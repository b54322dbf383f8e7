"""The large-PR benchmark's account of where ownit's input tokens go (``ownit_spend``) reads a
real chunk prompt as ``agent.parts`` renders it: a change to the rendering that the account
does not follow would misstate the shares the issue's token floor is judged on."""

from __future__ import annotations

import sys
from pathlib import Path

from agent import prompts
from agent.diff import parse_diff
from agent.parts import ChunkFile, Context
from agent.tokens import count_tokens
from tests.llm_server import _messages_text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_large_pr import SPENT_ON, ownit_spend

DIFF = """\
--- a/pay.py
+++ b/pay.py
@@ -3,3 +3,3 @@ def charge(amount):
     total = amount
-    return total
+    return round(total)
 # end
--- /dev/null
+++ b/fresh.py
@@ -0,0 +1,2 @@
+def fresh():
+    return 1
"""


def test_the_benchmark_attributes_every_line_of_a_chunk_prompt() -> None:
    modified, new = parse_diff(DIFF).files
    context = Context("pay.py", ((1, "import math"),))
    diff = "\n\n".join(
        [ChunkFile.whole(modified).render(), ChunkFile.whole(new).render(), context.render()]
    )
    messages = prompts.load("chunk").render(
        schema="{}", nonce="abc123", diff=diff, title="t", repo="r", part="1", parts="1"
    )
    text = _messages_text({"messages": messages})
    synthesis = "## Part 1: pay.py\nSummary: rounds the charge"

    spend = ownit_spend([text, synthesis])

    assert list(spend) == list(SPENT_ON)
    own = ["    return total", "    return round(total)", "def fresh():", "    return 1"]
    assert spend["changed lines' text"] == count_tokens("\n".join(own))
    shown = [
        "4 -     return total",
        "4 +     return round(total)",
        "1 def fresh():",
        "2     return 1",
    ]
    assert spend["their numbers and +/-"] == count_tokens("\n".join(shown)) - count_tokens(
        "\n".join(own)
    )
    assert spend["git's context lines"] == count_tokens("3       total = amount\n5   # end")
    assert spend["hunk headings"] == count_tokens("@@ def charge(amount):\n@@")
    assert spend["repository context"] == count_tokens(context.render())
    assert spend["other calls"] == count_tokens(synthesis)
    assert spend["instructions"] > 200  # the system prompt and the user message around the diff
    assert ownit_spend(["a pr-agent prompt, with no ownit diff block"]) == {}
