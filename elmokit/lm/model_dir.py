"""An LM's model directory (one direction; nothing else is needed to load it)::

    config.yaml      the resolved PretrainConfig (model, data, train)
    weights.pt       the model's state dict (tensors only; loaded with ``torch.load(weights_only=True)``)
    vocab.model      a copy of the sentencepiece model (model.encoder=pieces), or
    vocab.txt        a copy of the word vocabulary (model.encoder=char_cnn, bilm-tf's format) and, for
    vocab.chars.dic  model.chars=lexicon, of its character lexicon
    manifest.json    format, direction, vocab size and sha256, sha256 of every file, versions, training summary

Written here (:func:`write_model_files`, into a directory the caller commits) and read here (:func:`load_model`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from elmokit.core.errors import CheckpointError
from elmokit.core.files import ModelDir, read_manifest, safe_load, versions, write_model_dir

MODEL_FORMAT = "elmokit-lm/1"


def write_model_files(
    d: Path,
    state_dict: dict[str, torch.Tensor],
    config: dict,
    vocab_path: Path,
    vocab_sha: str,
    direction: str,
    vocab_size: int,
    summary: dict | None = None,
    extra_files: list[str] = (),
) -> None:
    """Write an LM's model directory into ``d`` (:func:`write_model_dir` plus a copy of its vocabulary);
    ``extra_files`` (already in ``d``, e.g. a checkpoint's training state) are listed in the manifest too."""
    from elmokit.lm.words import is_word_vocab, lexicon_path

    copies = {vocab_path: "vocab.txt" if is_word_vocab(vocab_path) else "vocab.model"}
    if config["model"].get("encoder") == "char_cnn" and config["model"].get("chars") == "lexicon":
        copies[lexicon_path(vocab_path)] = "vocab.chars.dic"
    for src, name in copies.items():
        shutil.copyfile(src, d / name)
    write_model_dir(
        d,
        MODEL_FORMAT,
        state_dict,
        config,
        {
            "direction": direction,
            "vocab_size": vocab_size,
            "vocab_sha256": vocab_sha,
            "summary": summary or {},
        },
        (*copies.values(), *extra_files),
    )


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a model directory, or a run directory (``elmokit pretrain --out``) holding ``model/``."""
    p = Path(path)
    if (p / "manifest.json").is_file():
        return p
    if (p / "model" / "manifest.json").is_file():
        return p / "model"
    if not p.exists():
        raise CheckpointError(f"{path}: no such model directory; pass the --out directory of `elmokit pretrain`")
    raise CheckpointError(
        f"{path}: not an elmokit model (no manifest.json here or in {p / 'model'}); training may not have "
        f"finished: resume it with `elmokit pretrain ... --resume`"
    )


@dataclass
class LoadedLM(ModelDir):
    """An LM's model directory (``model``: an ``elmokit.lm.model.LanguageModel``, ``cfg``: its
    ``PretrainConfig``), with its vocabulary. A task model's is :class:`elmokit.tasks.model_dir.TaskModel`."""

    vocab: Any = None  # its elmokit.lm.vocab.Vocab (or elmokit.lm.words.WordVocab for a char_cnn LM)
    mapper: Any = None  # a char_cnn LM: how it turns words into character ids (ElmoBytes or ManyLangsLexicon)

    def word_table(self, tokens) -> Any:
        """A char_cnn LM: the :class:`~elmokit.lm.words.WordTable` of a word token array (``None`` for pieces)."""
        return None if self.mapper is None else tokens.table(self.vocab, self.mapper)


def made_by(loaded: LoadedLM) -> dict:
    """What an output made from an LM records about it: its directory, weights and vocabulary hashes, and the
    versions that read it."""
    return {
        "model": str(loaded.path),
        "weights_sha256": loaded.manifest["files"]["weights.pt"],
        "vocab_sha256": loaded.manifest["vocab_sha256"],
        "versions": versions(),
    }


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedLM:
    """Load an LM model directory (or the run directory holding it).

    Raises:
        CheckpointError: missing/corrupt/truncated files, vocab/weights mismatch.
    """
    import yaml

    from elmokit.core.config import PretrainConfig, build_config
    from elmokit.lm.model import LanguageModel
    from elmokit.lm.vocab import load_vocab

    d = resolve_model_dir(path)
    manifest = read_manifest(d, MODEL_FORMAT, "an elmokit LM")
    cfg = build_config(PretrainConfig, yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8")), str(d))
    mapper = None
    if cfg.model.encoder == "char_cnn":
        from elmokit.lm.words import char_mapper, load_word_vocab, num_chars

        vocab = load_word_vocab(d / "vocab.txt")
        mapper = char_mapper(cfg.model.chars, cfg.model.max_chars, d / "vocab.txt")
    else:
        vocab = load_vocab(d / "vocab.model")
    if vocab.sha256 != manifest["vocab_sha256"] or vocab.size != manifest["vocab_size"]:
        raise CheckpointError(
            f"{d}: {vocab.path.name} does not match the manifest's vocab hash/size; the model is corrupt"
        )
    state = safe_load(d / "weights.pt", "weights")
    if mapper is None:
        model = LanguageModel(cfg.model, vocab.size)
    else:
        model = LanguageModel(cfg.model, vocab.size, num_chars=num_chars(mapper), char_pad_id=mapper.pad_id)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{d / 'weights.pt'}: weights do not fit config.yaml ({str(e)[:200]})") from None
    model.to(device).eval()
    return LoadedLM(model, cfg, manifest, d, vocab, mapper)


def check_vocab_fits(manifest: dict, vocab_sha: str, vocab_path: str, model_path: str) -> None:
    """Refuse a model trained with another vocabulary."""
    if manifest["vocab_sha256"] != vocab_sha:
        raise CheckpointError(
            f"{model_path}: was trained with vocab sha256 {manifest['vocab_sha256'][:12]}…, but {vocab_path} has "
            f"{vocab_sha[:12]}…; use the vocabulary the model was trained with (its copy is in the model directory)"
        )
