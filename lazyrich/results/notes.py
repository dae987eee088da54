"""A unit's theory notes (``theory.txt``, one line each): which theory ran, or why none did."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from lazyrich.store import THEORY_FILE

__all__ = ["read_notes", "theory_that_ran"]

_THEORY_NOTE = re.compile(r"^(?:phase \d+: )?theory(?:=auto chose (?P<chosen>[^\s:]+)|=(?P<named>\S+)$"
                          r"| (?P<skipped>\S+) skipped)")


def theory_that_ran(notes: Sequence[str]) -> str | None:
    """The theory that ran, from a run's theory notes (``theory.txt``: ``theory=auto chose exact: …``,
    ``theory=exact``, ``theory exact skipped: …`` → ``none``); None when the notes do not say."""
    for note in notes:
        match = _THEORY_NOTE.match(note.strip())
        if match:
            return match["chosen"] or match["named"] or "none"
    return None


def read_notes(run_dir: str | Path) -> list[str]:
    """The lines of a unit's ``theory.txt`` (none if it has no such file)."""
    path = Path(run_dir) / THEORY_FILE
    return path.read_text().splitlines() if path.is_file() else []
