"""Reading plain-text corpus files strictly: UTF-8 with file:line errors, CRLF normalised, over-long lines split.

Rules (documented in the README, section "Corpus files"):
- one sentence (or paragraph) per line; empty lines are kept (each line, empty or not, ends with ``</s>``);
- ``\\r\\n`` and a lone trailing ``\\r`` are normalised to ``\\n``;
- invalid UTF-8 and NUL bytes are errors naming the file, the line and the byte column;
- a line longer than ``max_line_chars`` characters is split at whitespace into pieces of at most that length (a
  100k-token line becomes several lines instead of one huge encode).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from elmokit.core.errors import CorpusError


def check_file(path: str | Path) -> Path:
    """Return ``path`` as a Path if it is a readable, non-empty file; raise :class:`CorpusError` otherwise."""
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"{path}: corpus file not found; check the path (or the environment variable in it)")
    if not p.is_file():
        raise CorpusError(f"{path}: not a regular file; pass text files, one sentence per line")
    if p.stat().st_size == 0:
        raise CorpusError(f"{path}: corpus file is empty; give a file with at least one line of text")
    return p


def split_long_line(line: str, max_chars: int) -> list[str]:
    """Split ``line`` at whitespace into chunks of at most ``max_chars`` characters (hard cut inside a giant word)."""
    if len(line) <= max_chars:
        return [line]
    out: list[str] = []
    start = 0
    n = len(line)
    while start < n:
        end = min(start + max_chars, n)
        if end < n:
            cut = line.rfind(" ", start + 1, end)
            if cut > start:
                end = cut
        chunk = line[start:end].strip()
        if chunk:
            out.append(chunk)
        start = end
    return out or [""]


def iter_lines(path: str | Path, max_line_chars: int = 20000) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for every line of a UTF-8 file, validated and normalised.

    Raises:
        CorpusError: missing/empty file, invalid UTF-8, NUL byte (message names file, line and column).
    """
    p = check_file(path)
    with open(p, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if b"\x00" in raw:
                col = raw.index(b"\x00") + 1
                raise CorpusError(
                    f"{path}:{lineno}: NUL byte at byte column {col}; this looks like a binary or UTF-16 file. "
                    f"Convert it to UTF-8 text (e.g. `iconv -f UTF-16 -t UTF-8`) or remove the NUL bytes"
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CorpusError(
                    f"{path}:{lineno}: invalid UTF-8 at byte column {e.start + 1} ({e.reason}); "
                    f"re-encode the file as UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8`)"
                ) from None
            for piece in split_long_line(text, max_line_chars):
                yield lineno, piece


def conllu_form(cols: list[str]) -> str | None:
    """The word of a CoNLL-U line split on tabs: its FORM (column 2), or ``None`` for a multiword-token range
    (``1-2``) or an empty node (``1.1``), which are not words of the sentence."""
    return None if "-" in cols[0] or "." in cols[0] else cols[1]


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
