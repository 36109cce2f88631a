"""Typed configuration: dataclasses per section, YAML loading, ``key=value`` overrides.

Unknown keys and values of the wrong type fail at load time with a :class:`ConfigError` that names the file and
the key. Paths may use environment variables (``${ELMOKIT_DATA}/wikitext-2/wiki.train.tokens``); an unset variable
is an error, never a silent literal.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elmokit.core.errors import ConfigError


@dataclass
class ModelConfig:
    """The one-direction language model. ``size`` picks a builder in :mod:`elmokit.lm.model`; other keys override it."""

    size: str = "tiny"
    cell: str = "lstm"  # lstm | gru | rnn
    num_layers: int = 1
    embed_dim: int = 32
    hidden_size: int = 64
    proj_size: int = 0  # LSTM only: 0 = no projection (plain LSTM); > 0 = LSTMP as in ELMo
    residual: bool = True  # add each layer's input to its output from the second layer on
    dropout: float = 0.0
    tie_embeddings: bool = False  # needs proj_size (or hidden_size) == embed_dim
    head: str = "sampled"  # sampled | full (training head; evaluation always uses the full softmax)
    num_samples: int = 1024  # negatives shared across the batch
    sampling_alpha: float = 0.75  # negatives drawn from unigram counts ** alpha
    impl: str = "auto"  # auto | fused | torch: LSTMP kernel (fused = elmokit's CPU kernel, torch = nn.LSTM)
    cell_clip: float = 0.0  # LSTMP only: clip each cell state to [-cell_clip, cell_clip] (bilm-tf: 3); 0 = off
    proj_clip: float = 0.0  # LSTMP only: clip each projected output likewise (bilm-tf: 3); 0 = off
    # the token encoder: pieces (an embedding per sentencepiece piece) | char_cnn (the original ELMo: one position per
    # whitespace word, its characters through a CNN, highways and a projection to embed_dim; data.vocab is then a
    # word vocabulary from `elmokit vocab --model-type word`, the softmax's output)
    encoder: str = "pieces"
    chars: str = "bytes"  # char_cnn: bytes (UTF-8, as bilm-tf reads them) | lexicon (code points: PREFIX.chars.dic)
    max_chars: int = 50  # char_cnn: character ids per word (the word cut to max_chars - 2)
    char_dim: int = 16  # char_cnn: width of a character embedding
    filters: list[list[int]] = field(default_factory=list)  # char_cnn: [[width, count], ...]
    num_highway: int = 2  # char_cnn: highway layers over the filters' outputs
    char_activation: str = "relu"  # char_cnn: of the convolutions, relu | tanh
    encoder_from: str = ""  # char_cnn: a run or model directory whose token encoder this LM starts from (the
    #                         backward LM takes the forward's, so the pair holds one, as bilm-tf's files do)
    train_encoder: bool = False  # with encoder_from: train that encoder further (`elmokit bundle --encoder backward`
    #                              then writes it back for both directions); False keeps it frozen, one for the pair


@dataclass
class DataConfig:
    """Corpus files (or ``hf:NAME[:split]``) and the vocabulary."""

    vocab: str = ""
    train: list[str] = field(default_factory=list)
    valid: list[str] = field(default_factory=list)
    cache_dir: str = "~/.cache/elmokit"
    num_proc: int = 2  # processes for encoding
    max_line_chars: int = 20000  # longer lines are split at whitespace before encoding


@dataclass
class TrainConfig:
    """The pretraining loop. ``batch_size`` is the global number of streams (all processes together)."""

    seed: int = 1234
    batch_size: int = 16
    bptt: int = 20
    grad_accum: int = 1  # split each process's streams into this many micro-batches
    optimizer: str = "adam"  # adam | sgd | adagrad
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    head_steps: int = 0  # > 0: the first head_steps steps train the softmax head alone (every other weight frozen, at
    #                      train.lr), then everything at the schedule, which starts then (a new head over a pretrained
    #                      LM: `pretrain --init-from BILM`, `adapt`); validated at step head_steps and at the end
    schedule: str = "cosine"  # cosine | linear | constant (after warmup)
    min_lr_ratio: float = 0.1
    clip_norm: float = 1.0
    epochs: int = 1
    epoch_state: str = "carry"  # carry | reset: at an epoch boundary each stream's state carries on into its start
    #                             again, or every stream restarts from zero at once (elmokit before session 22, with
    #                             reset_every 0: a shock that diverged a char-CNN backward LM; recipes/README)
    reset_every: int = 100  # each stream restarts from a zero state once every this many steps, the streams
    #                         staggered (stream g at the steps ≡ g * reset_every / batch_size): the zero start that
    #                         embed and evaluate read from stays in training, a few streams a step; 0 = never
    max_steps: int = 0  # 0 = epochs * steps per epoch
    schedule_steps: int = 0  # 0 = the run's length; else the LR schedule spans this many steps and the run may end
    #                          before it decays (max_steps < schedule_steps: a deliberately early-stopped decay)
    max_minutes: float = 0.0  # 0 = no wall-clock budget; else checkpoint, finish and stop when exceeded
    max_cpu_minutes: float = 0.0  # 0 = off; else stop likewise once this process has used this much CPU time (all
    #                               its threads): an equal budget for runs that share a machine (the cell family)
    stop_at_step: int = 0  # 0 = off; stop after this step as if interrupted (for time-sliced jobs and tests)
    eval_every: int = 500
    eval_batch_size: int = 10
    eval_max_tokens: int = 0  # 0 = whole validation set
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    precision: str = "no"  # no | bf16 (bf16 autocast, GPU only)
    threads: int = 0  # 0 = torch default
    trackers: list[str] = field(default_factory=list)  # accelerate trackers, e.g. [tensorboard]


@dataclass
class PretrainConfig:
    """A whole ``elmokit pretrain`` configuration (one YAML file)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand_path(value: str, where: str = "config") -> str:
    """Expand ``~`` and ``$VAR`` / ``${VAR}``; an unset variable raises :class:`ConfigError`."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in os.environ:
            raise ConfigError(
                f"{where}: environment variable {name} is not set (in {value!r}); "
                f"export it, e.g. `export {name}=/path/to/data`, or pass the path as an override"
            )
        return os.environ[name]

    return os.path.expanduser(_ENV.sub(sub, value))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check (and gently coerce: int -> float, str from the command line) ``value`` against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str) and value.strip().startswith("["):  # a nested list on the command line
            import yaml

            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                raise ConfigError(f"{where}: {key} must be a list, got {value!r}") from None
        if isinstance(value, str):
            value = [v for v in value.split(",") if v] if value else []
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be a list, got {type(value).__name__} {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: unsupported annotation for {key}")  # pragma: no cover - not used
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{where}: {key} must be {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _build(cls: type, data: dict[str, Any], prefix: str, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: section {prefix.rstrip('.') or '<top>'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {prefix}{unknown[0]} (known in {prefix.rstrip('.') or 'top level'}: "
            f"{', '.join(sorted(names))})"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, data[f.name], f"{prefix}{f.name}.", where)
        else:
            kwargs[f.name] = _coerce(data[f.name], tp, prefix + f.name, where)
    return cls(**kwargs)


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ``["train.lr=0.1", "model.size=small"]`` into a nested dict of strings."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (e.g. train.lr=0.001)")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p} is not a section")
        node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_raw(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """The YAML file merged with ``key=value`` overrides, as nested dicts, and a description for error messages.

    Raises:
        ConfigError: missing file, bad YAML, bad override.
    """
    import yaml

    data: dict[str, Any] = {}
    where = "command line"
    if path is not None:
        where = str(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}:{line} is not valid YAML: {getattr(e, 'problem', e)}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
        data = loaded or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections (model:, data:, train:)")
    if overrides:
        data = _merge(data, parse_overrides(overrides))
        where = f"{where} (with overrides)"
    return data, where


def build_config(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    """Validate nested dicts into the dataclass ``cls``; unknown keys and wrong types raise :class:`ConfigError`."""
    return _build(cls, data, "", where)


def load_config(cls: type, path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """Load a config dataclass ``cls`` from YAML (or nothing), apply ``key=value`` overrides, validate.

    Raises:
        ConfigError: missing file, bad YAML, unknown key, wrong type.
    """
    data, where = load_raw(path, overrides)
    return build_config(cls, data, where)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as plain nested dicts (for YAML/JSON)."""
    return dataclasses.asdict(cfg)
