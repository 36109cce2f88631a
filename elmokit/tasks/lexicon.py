"""The vocabularies a downstream model owns: words (for the trainable embedding), characters (for the CNN) and
labels (tags or classes). Ids 0 and 1 are padding and unknown for words and characters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from elmokit.core.errors import CorpusError
from elmokit.tasks.items import Item

PAD, UNK = 0, 1


@dataclass
class Lexicon:
    """Word, character and label vocabularies built from the training split."""

    words: list[str] = field(default_factory=lambda: ["<pad>", "<unk>"])
    chars: list[str] = field(default_factory=lambda: ["<pad>", "<unk>"])
    labels: list[str] = field(default_factory=list)
    lowercase: bool = False

    def __post_init__(self) -> None:
        self._w = {w: i for i, w in enumerate(self.words)}
        self._c = {c: i for i, c in enumerate(self.chars)}
        self._l = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def build(cls, items: list[Item], min_count: int = 2, lowercase: bool = False) -> Lexicon:
        """Words seen at least ``min_count`` times, every character, every label (in first-seen order)."""
        wc: Counter[str] = Counter()
        chars: dict[str, None] = {}
        labels: dict[str, None] = {}
        for it in items:
            for w in it.words:
                wc[w.lower() if lowercase else w] += 1
                chars.update(dict.fromkeys(w))
            labels.update(dict.fromkeys(it.target if isinstance(it.target, list) else [it.target]))
        words = sorted((w for w, n in wc.items() if n >= min_count), key=lambda w: (-wc[w], w))
        return cls(["<pad>", "<unk>", *words], ["<pad>", "<unk>", *chars], list(labels), lowercase)

    def word_id(self, w: str) -> int:
        return self._w.get(w.lower() if self.lowercase else w, UNK)

    def char_ids(self, w: str) -> list[int]:
        return [self._c.get(c, UNK) for c in w]

    def label_ids(self, item: Item, path: str | Path = "") -> list[int] | int:
        """The target's ids.

        Raises:
            CorpusError: a label not seen in training, naming the file and line.
        """
        targets = item.target if isinstance(item.target, list) else [item.target]
        for t in targets:
            if t not in self._l:
                raise CorpusError(
                    f"{path}:{item.line}: label {t!r} was not seen in the training data (known: "
                    f"{', '.join(self.labels[:20])}{' ...' if len(self.labels) > 20 else ''}); fix the file or "
                    f"train on data that has it"
                )
        ids = [self._l[t] for t in targets]
        return ids if isinstance(item.target, list) else ids[0]

    def to_dict(self) -> dict:
        return {"words": self.words, "chars": self.chars, "labels": self.labels, "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, d: dict) -> Lexicon:
        return cls(list(d["words"]), list(d["chars"]), list(d["labels"]), bool(d["lowercase"]))
