"""Sentencepiece vocabularies: training, loading, special ids, the vocab card, hashing.

Special ids are fixed for every elmokit vocabulary: ``<unk>``=0, ``<s>``=1, ``</s>``=2, ``<pad>``=3. Byte fallback is
on, so any UTF-8 text (any script) encodes without out-of-vocabulary pieces.
"""

from __future__ import annotations

import json
import random
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from elmokit.core.choices import VOCAB_TYPES
from elmokit.core.errors import CorpusError, ElmokitError
from elmokit.core.textfile import iter_lines, sha256_file

UNK_ID, BOS_ID, EOS_ID, PAD_ID = 0, 1, 2, 3


@dataclass
class Vocab:
    """A loaded sentencepiece model with its file hash."""

    path: Path
    sp: object  # sentencepiece.SentencePieceProcessor
    sha256: str

    @property
    def size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text, out_type=int)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(texts, out_type=int)

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids)

    def surfaces(self, ids: list[int]) -> list[str]:
        """The text each piece of one encoded line stands for, so that ``"".join(surfaces(ids))`` is the line as
        the model reads it (whitespace runs as one space, none at the ends). ``▁`` is a space (the line's first is
        dropped); a character spelled by byte-fallback pieces belongs to its last byte, the others stand for ``""``.
        """
        sp = self.sp
        out: list[str] = []
        pending = b""
        for i in ids:
            if sp.is_byte(i):
                pending += bytes([int(sp.id_to_piece(i)[3:5], 16)])
                try:
                    out.append(pending.decode("utf-8"))
                    pending = b""
                except UnicodeDecodeError:  # an incomplete character (or invalid bytes: shown once complete)
                    out.append("" if len(pending) < 4 else pending.decode("utf-8", errors="replace"))
                    pending = b"" if len(pending) >= 4 else pending
            else:
                pending = b""
                out.append(sp.id_to_piece(i).replace("\u2581", " "))
        if out and out[0].startswith(" "):
            out[0] = out[0][1:]
        return out


def load_vocab(path: str | Path) -> Vocab:
    """Load a ``.model`` file; raise :class:`ElmokitError` with what to do if it is missing or not a model."""
    import sentencepiece as spm

    p = Path(path)
    if not p.is_file():
        raise ElmokitError(f"{path}: vocabulary model not found; build one with `elmokit vocab CORPUS --out PREFIX`")
    sp = spm.SentencePieceProcessor()
    try:
        sp.load(str(p))
    except (OSError, RuntimeError) as e:
        raise ElmokitError(f"{path}: not a sentencepiece model ({e}); build one with `elmokit vocab`") from None
    if sp.eos_id() != EOS_ID or sp.bos_id() != BOS_ID or sp.unk_id() != UNK_ID:
        raise ElmokitError(
            f"{path}: special ids are unk={sp.unk_id()} bos={sp.bos_id()} eos={sp.eos_id()}, elmokit needs "
            f"unk={UNK_ID} bos={BOS_ID} eos={EOS_ID} pad={PAD_ID}; rebuild it with `elmokit vocab`"
        )
    return Vocab(path=p, sp=sp, sha256=sha256_file(p))


def _sample_lines(files: list[str], max_line_chars: int, k: int, seed: int) -> list[str]:
    """Reservoir sample of ``k`` non-empty lines over all files (validates every line on the way)."""
    rng = random.Random(seed)
    sample: list[str] = []
    seen = 0
    for f in files:
        for _, line in iter_lines(f, max_line_chars):
            if not line.strip():
                continue
            seen += 1
            if len(sample) < k:
                sample.append(line)
            else:
                j = rng.randrange(seen)
                if j < k:
                    sample[j] = line
    return sample


def measure(vocab: Vocab, lines: list[str]) -> dict[str, float]:
    """Character coverage (share of characters not needing byte fallback) and pieces per whitespace word."""
    sp = vocab.sp
    chars = covered = words = pieces = 0
    for line in lines:
        ws = line.split()
        words += len(ws)
        ids = sp.encode(line, out_type=int)
        pieces += len(ids)
        byte_pieces = sum(1 for i in ids if sp.is_byte(i))
        n = sum(len(w) for w in ws)
        chars += n
        # characters spelled out by byte-fallback pieces are not covered by the vocabulary
        covered += n - _chars_from_bytes(sp, ids, byte_pieces)
    return {
        "character_coverage": round(covered / max(chars, 1), 6),
        "pieces_per_word": round(pieces / max(words, 1), 4),
        "sample_lines": len(lines),
        "sample_words": words,
    }


def _chars_from_bytes(sp: object, ids: list[int], byte_pieces: int) -> int:
    """Number of characters spelled out by byte-fallback pieces in ``ids``."""
    if byte_pieces == 0:
        return 0
    raw = bytes(int(sp.id_to_piece(i)[3:5], 16) for i in ids if sp.is_byte(i))
    return len(raw.decode("utf-8", errors="replace"))


def _training_error(msg: str, size: int) -> ElmokitError:
    """sentencepiece's training error as what to do about it."""
    if "smaller than required_chars" in msg:
        return ElmokitError(
            f"--size {size} is too small: byte fallback needs 256 byte pieces, plus 4 special pieces and the "
            f"corpus's characters ({msg.strip().split('.')[-3].strip()}); pass a larger --size"
        )
    if "Vocabulary size" in msg or "vocab_size" in msg:
        return ElmokitError(
            f"sentencepiece could not build {size} pieces from this corpus ({msg.strip()}); pass a smaller --size"
        )
    return ElmokitError(f"sentencepiece training failed: {msg.strip()}")


def _write_card(
    out: Path,
    vocab,
    files: list[str],
    n_lines: int,
    model_type: str,
    user_symbols: list[str],
    character_coverage: float,
    max_line_chars: int,
    seed: int,
    command: str | None,
    note: str,
) -> dict:
    """``OUT_PREFIX.card.json``: what made the vocabulary (command, corpus and its sha256, settings) and what it does
    to a sample of the corpus (:func:`measure`); written aside and renamed. Returns the card."""
    stats = measure(vocab, _sample_lines(files, max_line_chars, 5000, seed))
    card = {
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        **({"note": note} if note else {}),
        "corpus": [str(f) for f in files],
        "corpus_sha256": {str(f): sha256_file(f) for f in files},
        "lines": n_lines,
        "model_type": model_type,
        "vocab_size": vocab.size,
        "byte_fallback": True,
        "special_ids": {"unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID, "pad": PAD_ID},
        "user_defined_symbols": user_symbols,
        "character_coverage_setting": character_coverage,
        "measured_on_sample": stats,
        "model_sha256": vocab.sha256,
    }
    card_path = Path(str(out) + ".card.json")
    tmp = card_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(card_path)
    return card


def train_vocab(
    files: list[str],
    out_prefix: str,
    size: int = 16000,
    model_type: str = "unigram",
    character_coverage: float = 0.9995,
    input_sentence_size: int = 2_000_000,
    user_symbols: list[str] | None = None,
    max_line_chars: int = 20000,
    seed: int = 1234,
    num_threads: int = 2,
    command: str | None = None,
    note: str = "",
) -> dict:
    """Train a sentencepiece model to ``OUT_PREFIX.model`` and write ``OUT_PREFIX.card.json``.

    Lines are read and validated by :func:`elmokit.core.textfile.iter_lines` (errors name file and line). At most
    ``input_sentence_size`` lines are sampled for training, so huge corpora train in bounded memory.

    Returns:
        The card (also written as JSON next to the model).
    """
    import sentencepiece as spm

    if model_type not in VOCAB_TYPES or model_type == "word":  # word vocabularies: elmokit.lm.words
        raise ElmokitError(f"--model-type must be one of {', '.join(VOCAB_TYPES)}, got {model_type!r}")
    if not files:
        raise CorpusError("no corpus files given; pass at least one text file")
    out = Path(out_prefix)
    out.parent.mkdir(parents=True, exist_ok=True)

    def sentences():
        for f in files:
            for _, line in iter_lines(f, max_line_chars):
                if line.strip():
                    yield line

    # validate everything first, so a bad line is reported before minutes of training
    n_lines = sum(1 for _ in sentences())
    if n_lines == 0:
        raise CorpusError(f"{files[0]}: no non-empty lines in the corpus; nothing to train a vocabulary on")
    tmp_prefix = str(out) + ".tmp"
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_prefix=tmp_prefix,
            vocab_size=size,
            model_type=model_type,
            # a character vocabulary holds every character that meets the coverage, whatever --size says; --size
            # is then only a cap (sentencepiece's soft limit), so one command works for English and Korean alike
            hard_vocab_limit=model_type != "char",
            character_coverage=character_coverage,
            byte_fallback=True,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            pad_id=PAD_ID,
            # the corpus's own "<unk>" (WikiText) can then be a user symbol, one piece distinct from the unk id
            unk_piece="<sp-unk>" if "<unk>" in (user_symbols or []) else "<unk>",
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            user_defined_symbols=user_symbols or [],
            max_sentence_length=max(4192, max_line_chars * 4),
            num_threads=num_threads,
            seed_sentencepiece_size=1_000_000,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise _training_error(str(e), size) from None
    Path(tmp_prefix + ".model").replace(str(out) + ".model")
    Path(tmp_prefix + ".vocab").replace(str(out) + ".vocab")
    vocab = load_vocab(str(out) + ".model")
    return _write_card(
        out,
        vocab,
        files,
        n_lines,
        model_type,
        user_symbols or [],
        character_coverage,
        max_line_chars,
        seed,
        command,
        note,
    )
