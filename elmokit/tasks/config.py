"""Typed configuration of a downstream run (``elmokit train-tagger`` / ``train-classifier``), loaded from YAML
with ``key=value`` overrides by :func:`elmokit.core.config.load_config`; unknown keys and wrong types fail at load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from elmokit.core.choices import (
    COLUMN_FORMATS,
    DTYPES,
    FEATURE_SOURCES,
    POOLINGS,
    PRECISIONS,
    SENTENCE_POOLINGS,
    TAG_KINDS,
    TASK_FORMATS,
    TASKS,
)
from elmokit.core.errors import ConfigError

SCHEMES = ("", "bio", "iob1", "bioes")
METRICS = ("auto", "accuracy", "span_f1")


@dataclass
class TaskDataConfig:
    """Where the examples are and how to read them."""

    format: str = "conllu"  # conllu | conll (token ... tag columns) | tsv | csv | jsonl | label_text (LABEL text
    #                         lines); a path hf:DIR[:SPLIT], hf:json:FILE, hf:csv:FILE or hf:NAME is a dataset
    text_column: str = ""  # tables: the text (classifier) or tokens (tagger) column, a name or a number from 0
    label_column: str = ""  # tables: the label (classifier) or tags (tagger) column; "" = the usual names
    train: str = ""
    dev: str = ""  # early stopping and LR annealing watch this split
    dev_size: int = 0  # with no dev file: hold out the last N training examples as dev (NSMC has no dev split)
    test: str = ""  # scored once with the best model at the end ("" = none)
    tag: str = "upos"  # conllu: upos | xpos
    tag_column: int = -1  # conll: which column holds the tag
    scheme: str = ""  # conll chunk tags as written in the file: bio | iob1 | bioes ("" = plain tags, e.g. POS)
    max_train: int = 0  # use only the first N training examples (0 = all)
    train_hdf5: str = ""  # biLM vectors of a split made by `elmokit embed BILM FILE OUT --layers all [--tokenized]`
    dev_hdf5: str = ""  # ("" = embed the split into train.cache_dir, or run the biLM on the fly)
    test_hdf5: str = ""


@dataclass
class TaskModelConfig:
    """What a word is made of (ELMo, word embedding, character CNN) and the BiLSTM on top."""

    bilm: str = ""  # biLM bundle (`elmokit bundle`); needed when use_elmo
    use_elmo: bool = True  # false: the same model without the biLM (the baseline the ELMo gain is measured against)
    pooling: str = "edges"  # how a word's pieces give its vector: edges | first | last | mean
    layer_norm: bool = False  # scalar mix: normalise each layer first (statistics over the batch, as AllenNLP)
    mix_l2: float = 0.001  # scalar mix: L2 on the layer weights (ELMo paper)
    elmo_output: bool = False  # a second scalar mix joined to the BiLSTM's output too (ELMo paper, section 3.3)
    word_dim: int = 100  # trainable word embedding (0 = none)
    word_min_count: int = 2  # training words seen fewer times share the unknown vector
    lowercase: bool = False  # word embedding lookup in lower case
    char_dim: int = 0  # character CNN embedding width (0 = no character CNN)
    char_filters: int = 50
    char_width: int = 3
    hidden: int = 200  # BiLSTM hidden size per direction
    lstm_layers: int = 1
    dropout: float = 0.5
    crf: bool = True  # tagger: CRF output (else per-word softmax)
    sentence_pooling: str = "max"  # classifier: max | mean | attention | max_mean (both side by side)


@dataclass
class TaskTrainConfig:
    """The optimisation and the feature source."""

    seed: int = 1
    batch_size: int = 32
    lr: float = 0.001  # Adam
    weight_decay: float = 0.0
    clip_norm: float = 5.0
    max_epochs: int = 30
    patience: int = 5  # stop after this many evaluations without a better dev score
    anneal_factor: float = 0.5  # multiply the LR by this when more than `anneal_patience` evaluations in a row
    anneal_patience: int = 2  # did not improve on the best dev score (torch ReduceLROnPlateau)
    min_lr: float = 1e-5
    ema_decay: float = 0.0  # evaluate, select and save a moving average of the weights (e.g. 0.999; 0 = off)
    eval_every: int = 0  # steps between dev evaluations (0 = once per epoch)
    metric: str = "auto"  # tagger: accuracy | span_f1 (auto: span_f1 when data.scheme is set); classifier: accuracy
    features: str = "cache"  # cache: embed each split once into HDF5, then read it; on_the_fly: run the biLM per batch
    cache_dir: str = "~/elmokit-runs/features"
    cache_dtype: str = "float16"  # float16 halves the cache; float32 makes it equal to on-the-fly
    fit_lines: int = 2000  # lines of training text on which the biLM's fit is measured (elmokit fit; 0 = skip)
    max_minutes: float = 0.0  # wall-clock budget for training (0 = none); the best model so far is kept
    threads: int = 0  # torch threads (0 = torch's default)
    log_every: int = 50
    mixed_precision: str = "no"  # no | bf16 (GPUs)
    trackers: list[str] = field(default_factory=list)  # accelerate trackers, e.g. [tensorboard]
    progress: bool = True


@dataclass
class TaskConfig:
    """A whole downstream configuration (one YAML file)."""

    task: str = "tagger"  # tagger | classifier
    out: str = ""  # run directory (the trained model goes to OUT/model)
    data: TaskDataConfig = field(default_factory=TaskDataConfig)
    model: TaskModelConfig = field(default_factory=TaskModelConfig)
    train: TaskTrainConfig = field(default_factory=TaskTrainConfig)


def check_task_config(cfg: TaskConfig, where: str = "config") -> None:
    """Value checks that types alone do not catch.

    Raises:
        ConfigError: naming the key, the value and what is allowed.
    """

    def bad(key: str, value, allowed) -> ConfigError:
        return ConfigError(f"{where}: {key}={value!r} is not one of {', '.join(map(repr, allowed))}")

    d, m, t = cfg.data, cfg.model, cfg.train
    for key, value, allowed in (
        ("task", cfg.task, TASKS),
        ("data.format", d.format, TASK_FORMATS),
        ("data.scheme", d.scheme, SCHEMES),
        ("data.tag", d.tag, TAG_KINDS),
        ("model.pooling", m.pooling, POOLINGS),
        ("model.sentence_pooling", m.sentence_pooling, SENTENCE_POOLINGS),
        ("train.features", t.features, FEATURE_SOURCES),
        ("train.cache_dtype", t.cache_dtype, DTYPES),
        ("train.metric", t.metric, METRICS),
        ("train.mixed_precision", t.mixed_precision, PRECISIONS),
    ):
        if value not in allowed:
            raise bad(key, value, allowed)
    if cfg.task == "classifier" and d.format in COLUMN_FORMATS:
        raise ConfigError(
            f"{where}: a classifier reads a table (data.format=tsv, csv, jsonl or label_text), got {d.format!r}"
        )
    if cfg.task == "tagger" and d.format == "label_text":
        raise ConfigError(
            f"{where}: a tagger reads conllu, conll or a table with tokens and tags (tsv, csv, jsonl), not label_text"
        )
    if not d.train or not (d.dev or d.dev_size > 0):
        raise ConfigError(
            f"{where}: data.train and data.dev (or data.dev_size) are required (pass e.g. "
            f"data.train=PATH data.dev=PATH)"
        )
    if d.train_hdf5 and d.dev_size and not d.dev:
        raise ConfigError(
            f"{where}: data.train_hdf5 with data.dev_size is not supported (the held-out dev would "
            f"need its own file); give data.dev and data.dev_hdf5"
        )
    if m.use_elmo and not m.bilm:
        raise ConfigError(
            f"{where}: model.use_elmo is true but model.bilm is empty; pass model.bilm=BUNDLE_DIR "
            f"(made by `elmokit bundle`) or model.use_elmo=false"
        )
    if not m.use_elmo and not m.word_dim and not m.char_dim:
        raise ConfigError(f"{where}: without ELMo the model needs model.word_dim or model.char_dim > 0")
    if t.batch_size < 1 or t.max_epochs < 1:
        raise ConfigError(f"{where}: train.batch_size and train.max_epochs must be >= 1")
    if not 0.0 <= t.ema_decay < 1.0:
        raise ConfigError(f"{where}: train.ema_decay must be in [0, 1) (0 = off; e.g. 0.999), got {t.ema_decay}")
