"""Tag schemes (IOB1, BIO = IOB2, BIOES) and conversions between them, and the spans they encode."""

from __future__ import annotations


def split_tag(tag: str) -> tuple[str, str]:
    """``B-PER`` -> (``B``, ``PER``); ``O`` -> (``O``, ``""``); only the first ``-`` splits."""
    prefix, _, typ = tag.partition("-")
    return prefix, typ


def iob1_to_bio(tags: list[str]) -> list[str]:
    """IOB1 (B only between two adjacent chunks of one type) → BIO (every chunk starts with B)."""
    out = []
    prev_p, prev_t = "O", ""
    for tag in tags:
        p, t = split_tag(tag)
        if p == "I" and (prev_p == "O" or prev_t != t):
            tag = f"B-{t}"
        out.append(tag)
        prev_p, prev_t = split_tag(tag)
    return out


def bioes_to_bio(tags: list[str]) -> list[str]:
    """BIOES → BIO."""
    out = []
    for tag in tags:
        p, t = split_tag(tag)
        out.append(f"B-{t}" if p == "S" else f"I-{t}" if p == "E" else tag)
    return out


def spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """``(type, start, end_inclusive)`` of the chunks of a BIO sequence (an I after O or another type starts one)."""
    out = []
    cur = None
    for i, tag in enumerate([*tags, "O"]):
        p, t = split_tag(tag)
        if cur and (p in ("B", "O") or t != cur[0]):
            out.append((cur[0], cur[1], i - 1))
            cur = None
        if p == "B" or (p == "I" and cur is None):
            cur = (t, i)
    return out
