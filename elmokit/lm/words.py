"""Word vocabularies and word streams: what the character-CNN LM (the original ELMo's architecture) reads and predicts.

Vocabulary file ``PREFIX.txt`` (bilm-tf's format, read by every ELMo tool): UTF-8, one token per line, the line number
its id; ``<S>``, ``</S>``, ``<UNK>`` first, then the corpus's whitespace words by descending count (ties by the
word's code points). Beside it ``PREFIX.chars.dic``, a character lexicon in ELMoForManyLangs' format (``char<TAB>id``:
its specials, then every character of the corpus by descending count), read when ``model.chars: lexicon`` (one code
point per position, e.g. one Hangul syllable), and ``PREFIX.card.json`` (command, corpus hashes, the share of
running words the vocabulary covers). Written by :func:`train_word_vocab`, read by :func:`load_word_vocab`.

Word token arrays (:func:`encode_word_corpus`): every line becomes ``<S> w1 … wn </S>``, the lines back to back, as
bilm-tf's training data; the backward LM reads the array reversed (``</S> wn … w1 <S>``, bilm-tf's reversed
sentences). A word of the vocabulary has its id; any other word gets an id ``>= V`` into the array's own list of
unknown words (``words-KEY.oov.txt`` beside ``words-KEY.npy``), so the character CNN reads its real characters (as
bilm-tf does) while the softmax's target is ``<UNK>``. The target after each sentence boundary (``<S>`` forward,
``</S>`` backward: fixed by the token before it) is left out of perplexities (:func:`scored`).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from elmokit.core.errors import CorpusError, ElmokitError
from elmokit.core.files import write_json
from elmokit.core.textfile import check_file, iter_lines, sha256_file
from elmokit.modules.characters import LEXICON_SPECIALS, ElmoBytes, ManyLangsLexicon, read_dic, write_dic

SPECIALS = ("<S>", "</S>", "<UNK>")
BOS_WORD, EOS_WORD, UNK_WORD = 0, 1, 2  # their ids
CHARS = ("bytes", "lexicon")  # model.chars: how a word becomes character ids
WORD_CACHE_FORMAT = 1


@dataclass
class WordVocab:
    """A loaded word vocabulary (see the module docstring)."""

    path: Path
    words: list[str]
    index: dict[str, int]
    sha256: str

    @property
    def size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """The ids of a line's whitespace words (``<UNK>`` for a word not in the vocabulary)."""
        return [self.index.get(w, UNK_WORD) for w in text.split()]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i] for i in ids)

    def surfaces(self, ids: list[int]) -> list[str]:
        """The text each id stands for, so that ``"".join(surfaces(ids))`` is the line (a space before every word
        but the first)."""
        return [("" if k == 0 else " ") + self.words[i] for k, i in enumerate(ids)]


def is_word_vocab(path: str | Path) -> bool:
    """A word vocabulary is named ``*.txt`` (a sentencepiece model ``*.model``)."""
    return str(path).endswith(".txt")


def lexicon_path(vocab_path: str | Path) -> Path:
    """The character lexicon written beside a word vocabulary: ``PREFIX.txt`` → ``PREFIX.chars.dic``."""
    p = Path(vocab_path)
    return p.with_name(p.name[: -len(".txt")] + ".chars.dic") if p.name.endswith(".txt") else p.with_suffix(".dic")


def load_word_vocab(path: str | Path) -> WordVocab:
    """Read a word vocabulary (bilm-tf's format), refusing a malformed one with the line and what to do.

    Raises:
        ElmokitError: missing file, not UTF-8, the specials not first, an empty or spaced token, a duplicate.
    """
    p = Path(path)
    if not p.is_file():
        raise ElmokitError(
            f"{path}: word vocabulary not found; build one with `elmokit vocab CORPUS --out PREFIX --model-type word`"
        )
    words: list[str] = []
    index: dict[str, int] = {}
    for n, line in iter_lines(p) if p.stat().st_size else ():
        word = line.strip()
        if not word or word != line or len(line.split()) != 1:
            raise ElmokitError(
                f"{path}:{n}: a vocabulary line holds one token with no spaces, got {line[:60]!r}; rebuild it with "
                f"`elmokit vocab --model-type word`"
            )
        if word in index:
            raise ElmokitError(f"{path}:{n}: {word!r} is already line {index[word] + 1}; each token once")
        index[word] = len(words)
        words.append(word)
    if tuple(words[:3]) != SPECIALS:
        raise ElmokitError(
            f"{path}: the first three lines must be {', '.join(SPECIALS)} (bilm-tf's vocabulary format), got "
            f"{', '.join(words[:3]) or 'nothing'}; rebuild it with `elmokit vocab --model-type word`"
        )
    return WordVocab(path=p, words=words, index=index, sha256=sha256_file(p))


def train_word_vocab(
    files: list[str],
    out_prefix: str,
    size: int = 0,
    min_count: int = 1,
    max_line_chars: int = 20000,
    command: str | None = None,
    note: str = "",
) -> dict:
    """Count the whitespace words of ``files`` and write ``PREFIX.txt``, ``PREFIX.chars.dic`` and
    ``PREFIX.card.json`` (see the module docstring), each written aside and renamed.

    Args:
        files: UTF-8 text, one sentence per line.
        out_prefix: where to write.
        size: lines of the vocabulary, its three specials included (0 = every word seen ``min_count`` times).
        min_count: the fewest occurrences a word needs.

    Returns:
        The card.
    """
    if not files:
        raise CorpusError("no corpus files given; pass at least one text file")
    if size and size < 4:
        raise ElmokitError(f"--size {size} leaves no room for words beside {', '.join(SPECIALS)}; pass 0 or more")
    words: Counter[str] = Counter()
    chars: Counter[str] = Counter()
    lines = 0
    for f in files:
        for _, line in iter_lines(f, max_line_chars):
            lines += 1
            words.update(line.split())
    if not words:
        raise CorpusError(f"{files[0]}: no words in the corpus; nothing to build a vocabulary from")
    for w, c in words.items():
        for ch in w:
            chars[ch] += c
    kept = sorted((w for w, c in words.items() if c >= min_count and w not in SPECIALS), key=lambda w: (-words[w], w))
    if size:
        kept = kept[: size - len(SPECIALS)]
    out = Path(out_prefix)
    out.parent.mkdir(parents=True, exist_ok=True)
    vocab_path = Path(f"{out}.txt")
    tmp = vocab_path.with_name(f".{vocab_path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(f"{w}\n" for w in (*SPECIALS, *kept)))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, vocab_path)
    dic = lexicon_path(vocab_path)
    entries = {s: i for i, s in enumerate(LEXICON_SPECIALS)}
    for ch, _ in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0])):
        if ch not in entries:
            entries[ch] = len(entries)
    tmp = dic.with_name(f".{dic.name}.tmp")
    write_dic(tmp, entries)
    os.replace(tmp, dic)
    running = sum(words.values())
    covered = sum(words[w] for w in kept)
    card = {
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        **({"note": note} if note else {}),
        "corpus": [str(f) for f in files],
        "corpus_sha256": {str(f): sha256_file(f) for f in files},
        "lines": lines,
        "model_type": "word",
        "vocab_size": len(SPECIALS) + len(kept),
        "min_count": min_count,
        "size_limit": size,
        "specials": list(SPECIALS),
        "running_words": running,
        "word_types": len(words),
        "running_words_covered": round(covered / running, 6),
        "characters": len(entries) - len(LEXICON_SPECIALS),
        "model_sha256": sha256_file(vocab_path),
        "lexicon_sha256": sha256_file(dic),
    }
    write_json(Path(f"{out}.card.json"), card)
    return card


# --- words as characters ---------------------------------------------------------------------------------------


def char_mapper(chars: str, max_chars: int, vocab_path: str | Path) -> ElmoBytes | ManyLangsLexicon:
    """How the LM turns a word into character ids: bilm-tf's UTF-8 bytes, or the lexicon beside the vocabulary."""
    if chars == "bytes":
        return ElmoBytes(max_chars)
    if chars == "lexicon":
        dic = lexicon_path(vocab_path)
        if not dic.is_file():
            raise ElmokitError(
                f"{dic}: model.chars=lexicon reads the character lexicon beside the vocabulary, and it is missing; "
                f"rebuild the vocabulary with `elmokit vocab --model-type word` (it writes both)"
            )
        return ManyLangsLexicon(read_dic(dic, LEXICON_SPECIALS), None, max_chars)
    raise ElmokitError(f"model.chars must be one of {', '.join(CHARS)}, got {chars!r}")


def word_chars(mapper: ElmoBytes | ManyLangsLexicon, word: str) -> np.ndarray:
    """``(max_chars,)`` character ids of a word; ``<S>``/``</S>`` are the mapper's sentence tokens."""
    if word == "<S>":
        return mapper.bos
    if word == "</S>":
        return mapper.eos
    return mapper.chars(word)


def char_table(mapper: ElmoBytes | ManyLangsLexicon, words: list[str]) -> np.ndarray:
    """``(len(words), max_chars)`` character ids (int32) of every word, row ``i`` for id ``i``."""
    if not words:
        return np.zeros((0, mapper.max_chars), dtype=np.int32)
    return np.stack([word_chars(mapper, w) for w in words]).astype(np.int32)


class CharInputs(NamedTuple):
    """A batch of words as the character-CNN LM reads it: each distinct word once."""

    chars: Any  # torch.Tensor (U, max_chars): character ids of the batch's U distinct words
    index: Any  # torch.Tensor (batch, time): which of them is at each position

    def to(self, device) -> CharInputs:
        return CharInputs(self.chars.to(device), self.index.to(device))

    def rows(self, start: int, stop: int) -> CharInputs:
        """Rows ``start:stop`` of the batch (the distinct words kept whole)."""
        return CharInputs(self.chars, self.index[start:stop])


@dataclass
class WordTable:
    """Every id of a word token array with its characters: ``chars[i]`` for id ``i`` (the vocabulary's words, then
    the array's unknown words). Turns windows of ids into the model's inputs and targets."""

    chars: np.ndarray  # (V + unknown words, max_chars) int32
    vocab_size: int

    def inputs(self, ids) -> CharInputs:
        """``ids`` ``(batch, time)`` (numpy or torch) → :class:`CharInputs` (torch, on the CPU)."""
        import torch

        arr = np.asarray(ids)
        uniq, inverse = np.unique(arr, return_inverse=True)
        chars = torch.from_numpy(self.chars[uniq].astype(np.int64))  # (U, max_chars)
        return CharInputs(chars, torch.from_numpy(inverse.reshape(arr.shape).astype(np.int64)))  # (batch, time)

    def targets(self, ids):
        """``ids`` ``(batch, time)`` → the softmax's targets: an unknown word is ``<UNK>``."""
        import torch

        t = torch.from_numpy(np.array(ids, dtype=np.int64))  # a copy: the array may be a read-only memory map
        return torch.where(t >= self.vocab_size, UNK_WORD, t)


def scored(targets, reverse: bool):
    """Which targets a perplexity counts: all but the token that starts a sentence in reading order (``<S>``
    forward, ``</S>`` backward), which the token before it fixes. (Training scores them too, as bilm-tf does: every
    position is then a target, so the mean loss is the same however the streams are split over processes.)"""
    return targets != (EOS_WORD if reverse else BOS_WORD)


@dataclass
class WordTokens:
    """A word token array and its unknown words (ids ``V + i`` is ``oov[i]``)."""

    ids: np.ndarray  # (n,) int32, memory-mapped
    oov: list[str]

    def table(self, vocab: WordVocab, mapper: ElmoBytes | ManyLangsLexicon) -> WordTable:
        return WordTable(char_table(mapper, vocab.words + self.oov), vocab.size)


def encode_word_lines(lines: list[str], vocab: WordVocab) -> WordTokens:
    """Lines already read, as :func:`encode_word_corpus` lays them out (in memory: for samples)."""
    index, oov = dict(vocab.index), []
    ids = []
    for line in lines:
        ids.append(BOS_WORD)
        for w in line.split():
            i = index.get(w)
            if i is None:
                i = index[w] = vocab.size + len(oov)
                oov.append(w)
            ids.append(i)
        ids.append(EOS_WORD)
    return WordTokens(np.asarray(ids, dtype=np.int32), oov)


def word_coverage(lines: list[str], vocab: WordVocab) -> float:
    """Share of the running words of ``lines`` that the vocabulary holds."""
    words = [w for line in lines for w in line.split()]
    return sum(w in vocab.index for w in words) / max(len(words), 1)


def _word_cache_key(sources: list[str], vocab: WordVocab, max_line_chars: int) -> str:
    h = hashlib.sha256(f"words={WORD_CACHE_FORMAT};vocab={vocab.sha256};max_line_chars={max_line_chars}".encode())
    for s in sources:
        if s.startswith("hf:"):
            raise CorpusError(f"{s}: hub datasets are read for sentencepiece vocabularies only; save it as a text file")
        st = check_file(s).stat()
        h.update(f"{Path(s).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def encode_word_corpus(
    sources: list[str], vocab: WordVocab, cache_dir: str | Path = "~/.cache/elmokit", max_line_chars: int = 20000
) -> WordTokens:
    """Encode text files into a cached, memory-mapped word token array (see the module docstring); a second run
    with the same files and vocabulary reads the cache. Two passes over the text (count, then fill), so memory
    holds the unknown words, never the corpus."""
    if not sources:
        raise CorpusError("no corpus files given; set data.train (and data.valid) in the config")
    cache = Path(os.path.expanduser(str(cache_dir)))
    cache.mkdir(parents=True, exist_ok=True)
    key = _word_cache_key(sources, vocab, max_line_chars)
    out, oov_path = cache / f"words-{key}.npy", cache / f"words-{key}.oov.txt"
    if out.exists() and oov_path.exists():  # the .npy is renamed last: it exists only when both are complete
        text = oov_path.read_text(encoding="utf-8")
        return WordTokens(np.load(out, mmap_mode="r"), text.split("\n")[:-1] if text else [])
    total = sum(len(line.split()) + 2 for s in sources for _, line in iter_lines(s, max_line_chars))
    if total == 0:
        raise CorpusError(f"{sources[0]}: no lines to encode")
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.npy")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int32, shape=(total,))
    index, oov = dict(vocab.index), {}
    V, pos = vocab.size, 0
    for s in sources:
        for _, line in iter_lines(s, max_line_chars):
            ids = [BOS_WORD]
            for w in line.split():
                i = index.get(w)
                if i is None:
                    i = index[w] = V + len(oov)
                    oov[w] = i
                ids.append(i)
            ids.append(EOS_WORD)
            arr[pos : pos + len(ids)] = ids
            pos += len(ids)
    assert pos == total, (pos, total)
    arr.flush()
    del arr
    tmp_oov = oov_path.with_name(f".{oov_path.name}.{os.getpid()}.tmp")
    tmp_oov.write_text("".join(f"{w}\n" for w in oov), encoding="utf-8")
    os.replace(tmp_oov, oov_path)
    os.replace(tmp, out)
    return WordTokens(np.load(out, mmap_mode="r"), list(oov))


def word_counts(ids: np.ndarray, vocab_size: int, n_types: int, chunk: int = 1 << 24) -> np.ndarray:
    """How often each vocabulary id is a target in a word token array ``ids`` holding ``n_types`` distinct ids (an
    unknown word counts as ``<UNK>``), for the sampled softmax's proposal; chunked, so a memory-mapped corpus is not
    loaded whole.

    Returns:
        ``(vocab_size,)`` int64 counts.
    """
    counts = np.zeros(max(n_types, vocab_size), dtype=np.int64)
    for i in range(0, len(ids), chunk):
        counts += np.bincount(np.asarray(ids[i : i + chunk]), minlength=len(counts))
    out = counts[:vocab_size].copy()
    out[UNK_WORD] += counts[vocab_size:].sum()
    return out


def num_chars(mapper: ElmoBytes | ManyLangsLexicon) -> int:
    """Rows of the character embedding the mapper's ids need (262 for bilm-tf's bytes, as AllenNLP reads them)."""
    if isinstance(mapper, ElmoBytes):
        return int(mapper.pad_id) + 1  # ids 1 .. 261 (261 the padding after a word's end), row 0 a missing word
    return max(mapper.char_ids.values()) + 1
