"""One downstream example, as every reader gives it (:mod:`elmokit.tasks.readers`, :mod:`elmokit.tasks.tables`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Item:
    """One downstream example: its words and its target (a tag per word, or one label), and where it came from."""

    words: list[str]
    target: list[str] | str
    line: int = 0
