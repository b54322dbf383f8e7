"""Prompt templates live in ``prompts/`` as files; this is the only code that reads them.

Templates use ``string.Template`` (``$name``): substitution is a single pass, so ``$`` inside a
diff is inserted as text and never expanded. A prompt's version is the hash of its files, which
the ledger records and the chunk cache keys on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template


@dataclass(frozen=True)
class Prompt:
    name: str
    system: Template
    user: Template
    version: str

    def render(self, **values: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system.substitute(values)},
            {"role": "user", "content": self.user.substitute(values)},
        ]


def _read(filename: str) -> str:
    return (resources.files("agent") / "_data" / "prompts" / filename).read_text(encoding="utf-8")


@cache
def load(name: str) -> Prompt:
    system, user = _read(f"{name}_system.md"), _read(f"{name}_user.md")
    digest = hashlib.sha256(f"{system}\0{user}".encode()).hexdigest()[:12]
    return Prompt(name, Template(system), Template(user), digest)


def version() -> str:
    """One version for the whole prompt set used by a review: its templates and the reply
    schemas (the shape the prompts show and the JSON schema sent as ``response_format``)."""
    from agent.schema import ChunkReview, Synthesis, reply_shape

    schemas = [
        f"{reply_shape(m)}\0{json.dumps(m.model_json_schema(), sort_keys=True)}"
        for m in (ChunkReview, Synthesis)
    ]
    parts = "".join([*(load(n).version for n in ("chunk", "synthesis")), *schemas])
    return hashlib.sha256(parts.encode()).hexdigest()[:12]


def fence_nonce(text: str) -> str:
    """A fence marker the fenced text cannot contain, so the text cannot close its own fence.

    Deterministic (derived from the text) so recorded requests replay byte for byte.
    """
    salt = 0
    while True:
        nonce = hashlib.sha256(f"{salt}:{text}".encode()).hexdigest()[:16]
        if nonce not in text:
            return nonce
        salt += 1
