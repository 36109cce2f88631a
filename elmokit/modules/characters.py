"""How a character biLM turns a word into character ids: the original ELMo's UTF-8 bytes, or a lexicon of code points
(ELMoForManyLangs). Each mapper also names itself with a sha256 (recorded in every file it helps make).

ELMo bytes (bilm-tf's ``UnicodeCharsVocabulary``, AllenNLP's ``ELMoCharacterMapper``): a word's UTF-8 bytes cut to
``max_chars - 2``, wrapped as 258 … 259 (begin and end of word) and padded with 260; the sentence tokens ``<S>`` and
``</S>`` are ``[258, 256 | 257, 259, 260, …]``; then every id + 1, so 0 is the padding of a missing word.

ManyLangsLexicon (ELMoForManyLangs' ``char.dic``/``word.dic``, lines ``token<TAB>id``): a word's code points cut to
``max_chars - 2``, each looked up (``<oov>`` if absent), wrapped in the ids of ``<eow>`` … ``<bow>`` (swapped:
ELMoForManyLangs' code swaps them and its models were trained so), padded with ``<pad>``; ``<bos>``/``<eos>`` are
``[<eow>, <bos>|<eos>, <bow>, <pad>, …]``; the word id is the cut word's (``<oov>`` if absent).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np

from elmokit.core.errors import CheckpointError

BOS_CHAR, EOS_CHAR, BOW_CHAR, EOW_CHAR, PAD_CHAR = 256, 257, 258, 259, 260
ID = re.compile(r"[0-9]{1,18}\Z")  # an id: ASCII digits only (isdigit() takes "²", which int() refuses)
LEXICON_SPECIALS = ("<oov>", "<pad>", "<bow>", "<eow>", "<bos>", "<eos>")
WORD_SPECIALS = ("<oov>", "<pad>")


class ElmoBytes:
    """The original ELMo's character ids (see the module docstring).

    Args:
        max_chars: ids per word (50).
    """

    kind = "elmo-bytes"
    has_words = False
    bos_token, eos_token = "<S>", "</S>"  # added around every sentence

    def __init__(self, max_chars: int = 50) -> None:
        self.max_chars = max_chars
        self.pad_id = PAD_CHAR + 1  # what fills a word's ids after its end
        self.sha256 = hashlib.sha256(f"{self.kind}:{max_chars}".encode()).hexdigest()
        self.bos = self._special(BOS_CHAR)
        self.eos = self._special(EOS_CHAR)
        self.chars = functools.lru_cache(maxsize=1 << 16)(self._chars)

    def _special(self, char: int) -> np.ndarray:
        ids = np.full(self.max_chars, PAD_CHAR, dtype=np.int64)
        ids[:3] = (BOW_CHAR, char, EOW_CHAR)
        return ids + 1

    def _chars(self, word: str) -> np.ndarray:
        """``(max_chars,)`` ids of one word."""
        if word == "<S>":  # as bilm-tf and AllenNLP map them
            return self.bos
        if word == "</S>":
            return self.eos
        data = word.encode("utf-8", "ignore")[: self.max_chars - 2]
        ids = np.full(self.max_chars, PAD_CHAR, dtype=np.int64)
        ids[0] = BOW_CHAR
        ids[1 : 1 + len(data)] = np.frombuffer(data, dtype=np.uint8)
        ids[1 + len(data)] = EOW_CHAR
        return ids + 1

    def word_id(self, word: str) -> int:
        """No word embedding: every word is row 0."""
        return 0


class ManyLangsLexicon:
    """ELMoForManyLangs' character (and word) lexicons (see the module docstring).

    Args:
        chars: character → id, with every entry of :data:`LEXICON_SPECIALS`.
        words: word → id with every entry of :data:`WORD_SPECIALS`, or ``None`` (no word embedding).
        max_chars: ids per word.
    """

    kind = "lexicon"
    bos_token, eos_token = "<bos>", "<eos>"

    def __init__(self, chars: dict[str, int], words: dict[str, int] | None, max_chars: int) -> None:
        self.char_ids, self.word_ids, self.max_chars = chars, words, max_chars
        self.has_words = words is not None
        blob = json.dumps([sorted(chars.items()), sorted(words.items()) if words else None, max_chars])
        self.sha256 = hashlib.sha256(f"{self.kind}:{blob}".encode()).hexdigest()
        self.bow, self.eow = chars["<eow>"], chars["<bow>"]  # swapped, as ELMoForManyLangs' models were trained
        self.oov, self.pad = chars["<oov>"], chars["<pad>"]
        self.pad_id = self.pad  # what fills a word's ids after its end
        self.bos = self._special(chars["<bos>"])
        self.eos = self._special(chars["<eos>"])
        self.chars = functools.lru_cache(maxsize=1 << 16)(self._chars)

    def _special(self, char: int) -> np.ndarray:
        ids = np.full(self.max_chars, self.pad, dtype=np.int64)
        ids[:3] = (self.bow, char, self.eow)
        return ids

    def _chars(self, word: str) -> np.ndarray:
        """``(max_chars,)`` ids of one word."""
        if word in ("<bos>", "<eos>"):
            return self.bos if word == "<bos>" else self.eos
        word = word[: self.max_chars - 2]
        ids = np.full(self.max_chars, self.pad, dtype=np.int64)
        ids[0] = self.bow
        ids[1 : 1 + len(word)] = [self.char_ids.get(c, self.oov) for c in word]
        ids[1 + len(word)] = self.eow
        return ids

    def word_id(self, word: str) -> int:
        """The word embedding's row for ``word`` (as cut to ``max_chars - 2`` characters)."""
        return self.word_ids.get(word[: self.max_chars - 2], self.word_ids["<oov>"])


def read_dic(path: Path, specials: tuple[str, ...]) -> dict[str, int]:
    """Read an ELMoForManyLangs ``.dic`` file (UTF-8, ``token<TAB>id`` per line, ids ``0, 1, ...``; a line holding
    only an id is the full-width space, whose token its writer's ``strip`` lost), refusing a malformed one.

    Raises:
        CheckpointError: a missing file, one that is not UTF-8, a line that is not ``token<TAB>id`` (the id a
            non-negative integer), or a missing special entry.
    """
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such lexicon; an ELMoForManyLangs model directory holds it beside config.json (copy it "
            f"from the downloaded model)"
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CheckpointError(
            f"{path}:{line}: not UTF-8 (byte {data[e.start]:#04x}); ELMoForManyLangs lexicons are UTF-8: re-encode "
            f"it (e.g. `iconv -f latin1 -t utf-8`) or use the file as published"
        ) from None
    out: dict[str, int] = {}
    for n, line in enumerate(io.StringIO(text, newline=None), 1):
        fields = line.strip().split("\t")
        if len(fields) == 1 and fields[0]:
            fields.insert(0, "\u3000")
        if len(fields) != 2 or not ID.match(fields[1]):
            raise CheckpointError(
                f"{path}:{n}: expected `token<TAB>id` with an id >= 0, got {line.rstrip()[:60]!r}; is this an "
                f"ELMoForManyLangs lexicon?"
            )
        out[fields[0]] = int(fields[1])
    missing = [s for s in specials if s not in out]
    if missing:
        raise CheckpointError(
            f"{path}: has no {', '.join(missing)} entry; ELMoForManyLangs lexicons hold {', '.join(specials)}"
        )
    return out


def write_dic(path: Path, entries: dict[str, int]) -> None:
    """Write a lexicon in the same format (:func:`read_dic` reads it back)."""
    with open(path, "w", encoding="utf-8") as f:
        for token, i in entries.items():
            f.write(f"{token}\t{i}\n")
