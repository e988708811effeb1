"""Whether a model's text may be sent: short enough, every number grounded, no instructions repeated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ai.grounding import check_grounding

MAX_EXPLANATION_CHARS = 700  # "about 600": a little slack before an explanation counts as too long
MAX_ANSWER_CHARS = 900


def acceptance(kind: str, facts: Any, question: str = "", instructions: str = "") -> Callable[[str], str | None]:
    """A check for one call: None when the text is good, else why it is refused (kind: explain | ask)."""
    limit = MAX_EXPLANATION_CHARS if kind == "explain" else MAX_ANSWER_CHARS

    def accept(text: str) -> str | None:
        if len(text) > limit:
            return f"too long ({len(text)} characters)"
        if instructions and repeats_instructions(text, instructions):
            return "reveals its instructions"
        grounding = check_grounding(text, facts, question)
        return None if grounding.ok else f"numbers not in the data: {', '.join(grounding.unsupported)}"

    return accept


def repeats_instructions(text: str, instructions: str) -> bool:
    """True if the text repeats a line of the instructions (a prompt-injection success)."""
    flat = " ".join(text.lower().split())
    return any(len(line) > 25 and " ".join(line.lower().split()) in flat for line in instructions.splitlines())
