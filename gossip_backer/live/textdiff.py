"""The smallest edit that turns one text into another, as byte-offset splices.

pycrdt's Text counts in UTF-8 bytes, and deleting inside a character panics: every offset here
is a byte offset on a character boundary. The search narrows in steps, each cheap on what the
previous one left: a common prefix and suffix (memcmp speed), then a line diff of the middle,
then a word diff inside each changed run of lines when it is small, then a character diff inside
a word replaced by one word; last, an insertion or deletion that could as well sit a few
characters left or right (the same text either way) is slid to the best word boundary. Whole
words, not stray characters, are what an edit deletes and inserts: a diff that deleted the end
of one word and kept the same letters of its neighbour would be the same text here, but would
glue words together when merged with another node's concurrent edit. Plain difflib on the
characters of a 100 KB note takes minutes; this takes milliseconds for an ordinary save.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

CHAR_DIFF_MAX = 4000  # characters of a changed run of lines still diffed word by word
SLIDE_MAX = 256  # bytes on each side of an insertion or deletion within which it may slide
_LETTER = r"[^\s!-/:-@\[-`{-~]"  # a character of a word: all but spaces and ASCII punctuation
# (an emoji or another symbol inside a word keeps it one word: "w1😀n1", not "w1", "😀", "n1")
WORD = re.compile(rf"{_LETTER}+|[\s\S]")
_WORD_TAIL = re.compile(rf"{_LETTER}*$")
_WORD_HEAD = re.compile(rf"{_LETTER}*")


@dataclass(frozen=True, slots=True)
class Splice:
    """Replace `delete` bytes at byte offset `at` with `insert`."""

    at: int
    delete: int
    insert: str


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix, by halving (each comparison is a memcmp)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _back_to_boundary(data: bytes, pos: int) -> int:
    """Move `pos` left until it is not inside a UTF-8 character."""
    while 0 < pos < len(data) and (data[pos] & 0xC0) == 0x80:
        pos -= 1
    return pos


def _trim(old: bytes, new: bytes) -> tuple[int, int]:
    """Bytes of common prefix and suffix, both on character boundaries, not overlapping."""
    pre = _common_prefix(old, new)
    pre = min(_back_to_boundary(old, pre), _back_to_boundary(new, pre))
    limit = min(len(old), len(new)) - pre
    suf = _common_prefix(old[::-1][:limit], new[::-1][:limit])
    while suf and ((len(old) - suf < len(old) and (old[len(old) - suf] & 0xC0) == 0x80)
                   or (len(new) - suf < len(new) and (new[len(new) - suf] & 0xC0) == 0x80)):
        suf -= 1
    # out of words cut in two: the kept part ends and starts between words
    head = old[:pre].decode("utf-8")
    pre -= _blen(head[_WORD_TAIL.search(head).start():])
    tail = old[len(old) - suf:].decode("utf-8")
    suf -= _blen(tail[:_WORD_HEAD.match(tail).end()])
    return pre, suf


def _blen(s: str) -> int:
    return len(s.encode("utf-8"))


def _splices(at: int, a: list[str], b: list[str], inner) -> list[Splice]:
    """Splices from a diff of two token lists; `inner(pos, ra, rb)` refines a replaced run."""
    out: list[Splice] = []
    pos = at
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        ra, rb = "".join(a[i1:i2]), "".join(b[j1:j2])
        if tag == "replace" and inner is not None:
            out += inner(pos, a[i1:i2], b[j1:j2])
        elif tag != "equal":
            out.append(Splice(pos, _blen(ra), rb))
        pos += _blen(ra)
    return out


def _grown(a: str, b: str) -> bool:
    """Is one word the other with one run of letters added? (Only then is a character diff
    safe to merge: another word put in a word's place is a whole-word replacement.)"""
    short, long_ = sorted((a, b), key=len)
    pre = 0
    while pre < len(short) and short[pre] == long_[pre]:
        pre += 1
    suf = 0
    while suf < len(short) - pre and short[-1 - suf] == long_[-1 - suf]:
        suf += 1
    return pre + suf == len(short)


def _chars(at: int, a: list[str], b: list[str]) -> list[Splice]:
    if len(a) == 1 and len(b) == 1 and _grown(a[0], b[0]):  # letters typed into a word, or
        return _splices(at, list(a[0]), list(b[0]), None)  # deleted from it: keep the others
    return [Splice(at, _blen("".join(a)), "".join(b))]


def _words(at: int, a: list[str], b: list[str]) -> list[Splice]:
    ra, rb = "".join(a), "".join(b)
    if len(ra) + len(rb) > CHAR_DIFF_MAX:
        return [Splice(at, _blen(ra), rb)]
    return _splices(at, WORD.findall(ra), WORD.findall(rb), _chars)


def diff(old: bytes, new: bytes) -> list[Splice]:
    """Splices, in increasing offset order (of `old`), that turn `old` into `new` (both UTF-8)."""
    if old == new:
        return []
    pre, suf = _trim(old, new)
    a = old[pre:len(old) - suf].decode("utf-8")
    b = new[pre:len(new) - suf].decode("utf-8")
    if not a or not b:
        return _slid(old, [Splice(pre, _blen(a), b)])
    lines = a.splitlines(keepends=True), b.splitlines(keepends=True)
    return _slid(old, _splices(pre, *lines, _words))


def _boundary(left: str | None, right: str | None) -> int:
    """How good a place for an edit's edge the point between two characters is (None: the
    text's edge): a line break or the text's edge, then a space, then punctuation."""
    if left is None or right is None or "\n" in (left, right):
        return 3
    if left.isspace() or right.isspace():
        return 2
    return 0 if (left.isalnum() or left == "_") and (right.isalnum() or right == "_") else 1


def _slid(old: bytes, splices: list[Splice]) -> list[Splice]:
    """Each pure insertion or deletion moved, among the places that give the same text, to the
    best word boundary (kept where it is if none is better). A word with punctuation in it
    ("w6.n1" typed after "w1.n1") may otherwise be inserted rotated inside its neighbour
    ("w1" + ".n1 w6" + ".n1"): merged with another node's concurrent removal of that
    neighbour, the typed word comes out broken (".n1 w6~"; seed 21046, with an emoji)."""
    out: list[Splice] = []
    for k, s in enumerate(splices):
        if (s.delete == 0) == (s.insert == ""):  # a replacement (or nothing) stays
            out.append(s)
            continue
        lo = out[-1].at + out[-1].delete if out else 0
        hi = splices[k + 1].at if k + 1 < len(splices) else len(old)
        start = _forward_to_boundary(old, max(lo, s.at - SLIDE_MAX))
        end = _back_to_boundary(old, min(hi, s.at + s.delete + SLIDE_MAX))
        moving = s.insert or old[s.at:s.at + s.delete].decode("utf-8")
        left = old[start:s.at].decode("utf-8")
        text = left + moving + old[s.at + s.delete:end].decode("utf-8")
        before = _char_before(old, start)
        after = old[end:end + 4].decode("utf-8", "ignore")[:1] or None
        at = _best_place(text, len(left), len(moving), before, after)
        if at == len(left):
            out.append(s)
            continue
        offset = start + _blen(text[:at])
        moved = text[at:at + len(moving)]
        out.append(Splice(offset, 0, moved) if s.insert else Splice(offset, _blen(moved), ""))
    return out


def _best_place(text: str, at: int, n: int, before: str | None, after: str | None) -> int:
    """Where the `n` characters at `at` of `text` may sit (any place giving the same text once
    they are taken out) with the best boundaries on both sides; `at` unless one is better."""
    lo = at
    while lo > 0 and text[lo - 1] == text[lo - 1 + n]:
        lo -= 1
    hi = at
    while hi + n < len(text) and text[hi] == text[hi + n]:
        hi += 1

    def score(i: int) -> int:
        left = text[i - 1] if i > 0 else before
        right = text[i + n] if i + n < len(text) else after
        return _boundary(left, text[i]) + _boundary(text[i + n - 1], right)

    best = at
    for i in range(lo, hi + 1):
        if score(i) > score(best):
            best = i
    return best


def _forward_to_boundary(data: bytes, pos: int) -> int:
    """Move `pos` right until it is not inside a UTF-8 character."""
    while 0 < pos < len(data) and (data[pos] & 0xC0) == 0x80:
        pos += 1
    return pos


def _char_before(data: bytes, pos: int) -> str | None:
    if pos == 0:
        return None
    start = _back_to_boundary(data, pos - 1)
    return data[start:pos].decode("utf-8")


def apply(old: bytes, splices: list[Splice]) -> bytes:
    """`old` with `splices` applied (a check for the tests and the simulator)."""
    out = bytearray(old)
    for s in reversed(splices):
        out[s.at:s.at + s.delete] = s.insert.encode("utf-8")
    return bytes(out)


__all__ = ["Splice", "diff", "apply"]
