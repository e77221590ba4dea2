"""A side-by-side line diff of two texts, for the GUI's version and conflict views.

`side_by_side` turns difflib's opcodes into rows of (left line number, left text, right line
number, right text, kind), kind one of "same", "changed", "removed", "added": a removed line has
no right side, an added one no left side, and a changed block pairs its lines up in order. Long
runs of unchanged lines are folded to CONTEXT lines around each change ("skip" rows say how many
were left out), so a one-line change in a long file stays one screen.
"""

from __future__ import annotations

import difflib

CONTEXT = 3
MAX_TEXT = 2 * 1024 * 1024


def as_text(data: bytes) -> str | None:
    """The bytes as text, or None when they are not UTF-8 text (binary, or too large)."""
    if len(data) > MAX_TEXT or b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def side_by_side(left: str, right: str, context: int = CONTEXT) -> list[dict]:
    a, b = left.splitlines(), right.splitlines()
    rows: list[dict] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += _fold([_row(i, a[i], j, b[j], "same")
                           for i, j in zip(range(i1, i2), range(j1, j2))],
                          context, first=i1 == 0, last=i2 == len(a))
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + k, j1 + k
            has_left, has_right = i < i2, j < j2
            kind = "changed" if has_left and has_right else ("removed" if has_left else "added")
            rows.append(_row(i if has_left else None, a[i] if has_left else None,
                             j if has_right else None, b[j] if has_right else None, kind))
    return rows


def _row(i: int | None, left: str | None, j: int | None, right: str | None, kind: str) -> dict:
    return {"left_no": None if i is None else i + 1, "left": left,
            "right_no": None if j is None else j + 1, "right": right, "kind": kind}


def _fold(same: list[dict], context: int, *, first: bool, last: bool) -> list[dict]:
    keep_head = 0 if first else context
    keep_tail = 0 if last else context
    if len(same) <= keep_head + keep_tail + 1:
        return same
    skipped = len(same) - keep_head - keep_tail
    skip = {"left_no": None, "left": None, "right_no": None, "right": None, "kind": "skip",
            "count": skipped}
    return same[:keep_head] + [skip] + same[len(same) - keep_tail:]
