"""The trained downstream model directory, and building a model from its config.

Layout (``RUN/model/``; self-contained but for the biLM, which it pins by hash)::

    config.yaml     the resolved TaskConfig
    weights.pt      the model's state dict (tensors only; loaded with ``torch.load(weights_only=True)``)
    lexicon.json    words, characters and labels
    manifest.json   format, task, biLM bundle path and sha256, sha256 of every file, versions, dev/test scores

Loading checks the biLM's hash, so a model never silently runs on another biLM than the one it was trained with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from elmokit.core.config import build_config, to_dict
from elmokit.core.errors import CheckpointError
from elmokit.core.files import (
    ModelDir,
    atomic_dir,
    commit_dir,
    read_manifest,
    safe_load,
    write_json,
    write_model_dir,
)
from elmokit.tasks.config import TaskConfig
from elmokit.tasks.lexicon import Lexicon

TASK_FORMAT = "elmokit-task/1"


def build_model(cfg: TaskConfig, lexicon: Lexicon, num_layers: int = 0, elmo_dim: int = 0) -> nn.Module:
    """The :class:`~elmokit.tasks.models.Tagger` or ``Classifier`` that ``cfg`` describes."""
    from elmokit.modules.crf import allowed_transitions
    from elmokit.tasks.models import Classifier, Encoder, Tagger

    m = cfg.model
    encoder = Encoder(
        num_layers,
        elmo_dim,
        hidden=m.hidden,
        lstm_layers=m.lstm_layers,
        dropout=m.dropout,
        use_elmo=m.use_elmo,
        vocab_size=len(lexicon.words) if m.word_dim else 0,
        word_dim=m.word_dim,
        num_chars=len(lexicon.chars) if m.char_dim else 0,
        char_dim=m.char_dim,
        char_filters=m.char_filters,
        char_width=m.char_width,
        mix_l2=m.mix_l2,
        layer_norm=m.layer_norm,
        elmo_output=m.elmo_output,
    )
    if cfg.task == "classifier":
        return Classifier(len(lexicon.labels), encoder, m.sentence_pooling)
    scheme = {"iob1": "bio"}.get(cfg.data.scheme, cfg.data.scheme)
    constraints = allowed_transitions(lexicon.labels, scheme) if m.crf and scheme else None
    return Tagger(len(lexicon.labels), encoder, crf=m.crf, constraints=constraints)


def save_task_model(
    out: Path, model: nn.Module, cfg: TaskConfig, lexicon: Lexicon, bilm_sha: str, scores: dict | None = None
) -> Path:
    """Write the model directory atomically (temp directory, then rename)."""
    tmp = atomic_dir(out)
    write_json(tmp / "lexicon.json", lexicon.to_dict())
    write_model_dir(
        tmp,
        TASK_FORMAT,
        model.state_dict(),
        to_dict(cfg),
        {
            "task": cfg.task,
            "use_elmo": cfg.model.use_elmo,
            "bilm": str(Path(cfg.model.bilm).expanduser().resolve()) if cfg.model.use_elmo else "",
            "bilm_sha256": bilm_sha,
            "scores": scores or {},
        },
        ("lexicon.json",),
    )
    commit_dir(tmp, out)
    return out


@dataclass
class TaskModel(ModelDir):
    """A downstream model directory (``model``: a Tagger or Classifier, ``cfg``: its ``TaskConfig``) with what it
    needs to run: its lexicon and its biLM (None without ELMo)."""

    lexicon: Lexicon | None = None
    bilm: nn.Module | None = None


def load_task_model(path: str | Path, bilm: str | Path | None = None, device: str | None = None) -> TaskModel:
    """Load a model directory (or a run directory holding ``model/``) and its biLM.

    Args:
        bilm: a biLM bundle to use instead of the path recorded at training time (moved files); its hash must
            equal the recorded one.
        device: where the model and its biLM run (None: the GPU when there is one, else the CPU; see
            :func:`elmokit.core.runtime.inference_device`).

    Raises:
        CheckpointError: not a model directory, a corrupt file, a missing biLM or one with another hash.
    """
    import yaml

    from elmokit.bilm.bundle import load_bilm
    from elmokit.core.runtime import inference_device

    device = inference_device(device)
    d = Path(path)
    if not (d / "manifest.json").is_file() and (d / "model" / "manifest.json").is_file():
        d = d / "model"
    if not (d / "manifest.json").is_file():
        raise CheckpointError(
            f"{path}: not a trained elmokit model (no manifest.json); pass the --out directory "
            f"of `elmokit train-tagger` / `train-classifier` or its model/ folder"
        )
    manifest = read_manifest(d, fmt=TASK_FORMAT, what="a downstream model")  # format and every file's sha256
    cfg = build_config(TaskConfig, yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8")), str(d))
    lexicon = Lexicon.from_dict(json.loads((d / "lexicon.json").read_text(encoding="utf-8")))
    loaded_bilm = None
    num_layers = elmo_dim = 0
    if manifest["use_elmo"]:
        where = Path(bilm) if bilm else Path(manifest["bilm"])
        if not where.exists():
            raise CheckpointError(
                f"{path}: its biLM {where} is missing; pass the bundle (sha256 "
                f"{manifest['bilm_sha256'][:12]}…) with --bilm"
            )
        loaded_bilm = load_bilm(where, device=str(device))
        if loaded_bilm.sha256 != manifest["bilm_sha256"]:
            raise CheckpointError(
                f"{where}: biLM sha256 {loaded_bilm.sha256[:12]}… is not the one this model was "
                f"trained with ({manifest['bilm_sha256'][:12]}…); pass the right bundle"
            )
        num_layers, elmo_dim = loaded_bilm.num_layers, 2 * loaded_bilm.dim
    model = build_model(cfg, lexicon, num_layers, elmo_dim)
    model.load_state_dict(safe_load(d / "weights.pt", "weights"))
    model.to(device).eval()
    return TaskModel(model, cfg, manifest, d, lexicon, loaded_bilm)
