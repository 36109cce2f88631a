"""A downstream run's parts, set up once before its loop (:func:`start_task_run`) and held in a typed
:class:`TaskRun`: the splits and their lexicon, the biLM's features (an HDF5 cache per split, or the biLM on the
fly), the domain-fit check, the model, Adam and LR annealing, the state it resumes from and its log; and the steps
the loop takes at each evaluation (score dev, keep the best model, anneal, save the resumable state)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from elmokit.core.config import to_dict
from elmokit.core.errors import ConfigError
from elmokit.core.files import write_json
from elmokit.core.run_guard import check_fresh_out, fingerprint
from elmokit.core.runtime import RunLog, start_accelerator
from elmokit.tasks.averaging import WeightAverage
from elmokit.tasks.checkpoint import LoopState, resume_state, save_state
from elmokit.tasks.config import TaskConfig
from elmokit.tasks.lexicon import Lexicon
from elmokit.tasks.model_dir import build_model, save_task_model
from elmokit.tasks.predict import main_metric, predict_items, score_predictions
from elmokit.tasks.readers import read_items
from elmokit.tasks.tables import source_sha256

# what may change when a task run is resumed: its budget, logging and paths whose content is pinned by hash
RESUMABLE_KEYS = frozenset(
    {
        "out",
        "train.max_epochs",
        "train.max_minutes",
        "train.threads",
        "train.log_every",
        "train.trackers",
        "train.progress",
        "train.cache_dir",
        "data.train",
        "data.dev",
        "data.test",
        "data.train_hdf5",
        "data.dev_hdf5",
        "data.test_hdf5",
        "model.bilm",
        "train.fit_lines",
    }
)


@dataclass(kw_only=True)
class TaskRun:
    """What the downstream loop reads, built once by :func:`start_task_run`."""

    cfg: TaskConfig
    out: Path
    accelerator: Any
    splits: dict[str, list]  # train, dev (and test): lists of Item
    lexicon: Lexicon
    metric: str  # what selects the model on dev (accuracy, span_f1, macro_f1)
    bilm_sha: str  # "" without ELMo
    features: dict  # per split: the biLM's features, or None without ELMo
    cache_seconds: float  # spent writing the feature caches
    domain_fit: dict | None  # domain_fit.measure_fit's result on the training text (main process, with ELMo)
    model: Any  # as prepared by the accelerator
    raw_model: Any
    eval_model: Any  # what is evaluated, selected and saved: the trained model or the average of its weights
    average: WeightAverage | None
    trainable: list
    optimizer: Any
    plateau: Any  # ReduceLROnPlateau on the dev score
    run_print: dict
    loop: LoopState  # a fresh one, or the checkpoint's
    log: RunLog

    def evaluate(self, name: str) -> dict:
        """Scores of the evaluated model on split ``name``."""
        t = self.cfg.train
        preds = predict_items(
            self.eval_model,
            self.splits[name],
            self.lexicon,
            self.features[name],
            2 * t.batch_size,
            self.accelerator.device,
        )
        return score_predictions(self.splits[name], preds, self.cfg.data.scheme)

    def record(self, rec: dict) -> None:
        """One record of metrics.jsonl (and its numbers to the trackers)."""
        self.log.write(rec, {f"{rec['split']}/{k}": v for k, v in rec.items() if isinstance(v, (int, float))})

    def select(self) -> tuple[float, bool]:
        """Dev evaluation, the best model so far saved to ``OUT/model``, LR annealing. Returns the dev score and
        whether early stopping's patience has run out."""
        loop = self.loop
        scores = self.evaluate("dev")
        score = main_metric(scores, self.metric)
        self.record(
            {
                "step": loop.step,
                "split": "dev",
                "epoch": loop.epoch,
                "lr": self.optimizer.param_groups[0]["lr"],
                **scores,
                **mix_summary(self.eval_model.encoder),
            }
        )
        if loop.best is None or score > loop.best:
            loop.best, loop.best_step, loop.bad_evals = score, loop.step, 0
            if self.accelerator.is_main_process:
                save_task_model(
                    self.out / "model",
                    self.eval_model,
                    self.cfg,
                    self.lexicon,
                    self.bilm_sha,
                    {"dev": scores, "step": loop.step},
                )
        else:
            loop.bad_evals += 1
        self.plateau.step(score)
        return score, loop.bad_evals >= self.cfg.train.patience

    def end_evaluation(self, patience_out: bool, timed_out: bool, train_seconds: float) -> bool:
        """Record whether training stops and why, and save the resumable state. Returns True to stop."""
        loop = self.loop
        loop.stopped = patience_out or timed_out
        loop.stop_reason = "patience" if patience_out else ("time" if timed_out else "")
        loop.train_seconds = train_seconds
        if self.accelerator.is_main_process:
            loop.metrics_lines = self.log.lines  # what a resume keeps of metrics.jsonl
            save_state(self.out, self.raw_model, self.optimizer, self.plateau, self.average, loop, self.run_print)
        return loop.stopped


def start_task_run(cfg: TaskConfig, resume: bool, overwrite: bool) -> TaskRun:
    """Everything before the loop. ``resume`` continues ``OUT/checkpoint`` after checking its files against its
    manifest and the config, data and biLM against its fingerprint; a finished run (``results.json``) or a
    checkpoint is not started over without ``overwrite``."""
    from accelerate.utils import set_seed

    t, m = cfg.train, cfg.model
    out = Path(cfg.out)
    check_fresh_out(out, (out / "results.json").exists(), (out / "checkpoint").exists(), resume, overwrite)
    accelerator = start_accelerator(out, t.threads, t.mixed_precision, t.trackers)
    set_seed(t.seed)
    main = accelerator.is_main_process
    say = accelerator.print if t.progress else (lambda *a, **k: None)

    splits, lexicon = _read_splits(cfg)
    metric = ("span_f1" if cfg.data.scheme else "accuracy") if t.metric == "auto" else t.metric
    say(
        f"{cfg.task}: {len(splits['train'])} train / {len(splits['dev'])} dev examples, "
        f"{len(lexicon.labels)} labels, {len(lexicon.words)} words, {len(lexicon.chars)} chars; metric {metric}"
    )
    bilm = None
    if m.use_elmo:
        from elmokit.bilm.bundle import load_bilm

        bilm = load_bilm(m.bilm, device=str(accelerator.device))
    domain_fit = check_domain_fit(cfg, bilm, splits["train"]) if main else None
    t0 = time.time()
    with accelerator.main_process_first():  # the main process writes the caches, the others then read them
        features = _features(cfg, bilm, splits, t.progress and main)
    cache_seconds = time.time() - t0 if t.features == "cache" and bilm is not None else 0.0

    model = build_model(cfg, lexicon, bilm.num_layers if bilm else 0, 2 * bilm.dim if bilm else 0)
    trainable = list(model.parameters())  # the biLM is not part of the model: it only makes features
    optimizer = torch.optim.Adam(trainable, lr=t.lr, weight_decay=t.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=t.anneal_factor, patience=t.anneal_patience, min_lr=t.min_lr
    )
    raw_model = accelerator.unwrap_model(model)
    average = WeightAverage(raw_model, t.ema_decay) if t.ema_decay else None

    run_print = _fingerprint(cfg, bilm)
    resumed = resume and (out / "checkpoint" / "state.pt").is_file()
    loop = resume_state(out, run_print, raw_model, optimizer, plateau, average) if resumed else LoopState()
    if resumed:
        say(f"resumed at epoch {loop.epoch}, step {loop.step} (best dev {loop.best})")
    bilm_sha = bilm.sha256 if bilm else ""
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "run.json", {"config": to_dict(cfg), "bilm_sha256": bilm_sha})
    # a resume keeps the records its checkpoint saw (older checkpoints: those up to its step), a new run none
    keep = loop.metrics_lines if resumed else None
    log = RunLog(
        accelerator,
        out / "metrics.jsonl",
        keep,
        loop.step if resumed and keep is None else None,
        f"elmokit-{cfg.task}",
        to_dict(cfg),
        bool(t.trackers),
    )
    # the fields by name, several to a row
    # fmt: off
    return TaskRun(
        cfg=cfg, out=out, accelerator=accelerator, splits=splits, lexicon=lexicon, metric=metric, bilm_sha=bilm_sha,
        features=features, cache_seconds=cache_seconds, domain_fit=domain_fit, model=model, raw_model=raw_model,
        eval_model=average.model if average is not None else raw_model, average=average, trainable=trainable,
        optimizer=optimizer, plateau=plateau, run_print=run_print, loop=loop, log=log,
    )
    # fmt: on


def _read_splits(cfg: TaskConfig) -> tuple[dict[str, list], Lexicon]:
    """The train, dev (given, or the last ``data.dev_size`` training examples) and test examples, and the lexicon
    built from train; an unknown label fails here, naming its file and line, not mid-training."""
    d, m = cfg.data, cfg.model

    def read(path: str) -> list:
        return read_items(path, d.format, cfg.task, d.tag, d.tag_column, d.scheme, d.text_column, d.label_column)

    splits = {"train": read(d.train)}
    if d.dev:
        splits["dev"] = read(d.dev)
    else:  # the last dev_size training examples
        if d.dev_size >= len(splits["train"]):
            raise ConfigError(f"{d.train}: data.dev_size={d.dev_size} but only {len(splits['train'])} examples")
        splits["train"], splits["dev"] = splits["train"][: -d.dev_size], splits["train"][-d.dev_size :]
    if d.test:
        splits["test"] = read(d.test)
    if d.max_train:
        splits["train"] = splits["train"][: d.max_train]
    lexicon = Lexicon.build(splits["train"], m.word_min_count, m.lowercase)
    for name, items in splits.items():
        path = getattr(d, name) or d.train
        for it in items:
            lexicon.label_ids(it, path)
    return splits, lexicon


def _features(cfg: TaskConfig, bilm, splits: dict, progress: bool) -> dict:
    """Per split: ``EmbedFileFeatures`` (a given ``elmokit embed`` file), ``CachedFeatures`` (embedded once) or
    ``LiveFeatures`` (None without ELMo)."""
    from elmokit.embed import Embedder
    from elmokit.tasks.features import CachedFeatures, EmbedFileFeatures, LiveFeatures, build_cache

    if bilm is None:
        return {name: None for name in splits}
    emb = Embedder(bilm, pooling=cfg.model.pooling)  # batches of the biLM's own size (FrozenBiLM.batch_tokens)
    out = {}
    for name, items in splits.items():
        dump = getattr(cfg.data, f"{name}_hdf5")
        if dump:  # an `elmokit embed` file given for this split
            out[name] = EmbedFileFeatures(dump, bilm.sha256, items)
            continue
        if cfg.train.features == "on_the_fly":
            out[name] = LiveFeatures(bilm, cfg.model.pooling)
            continue
        path = build_cache(
            emb,
            [it.words for it in items],
            cfg.train.cache_dir,
            f"{Path(getattr(cfg.data, name) or cfg.data.train).name}-{name}",
            cfg.train.cache_dtype,
            progress,
        )
        out[name] = CachedFeatures(path)
    return out


def _fingerprint(cfg: TaskConfig, bilm) -> dict:
    """What makes a task run (:func:`elmokit.core.run_guard.fingerprint`): the config less :data:`RESUMABLE_KEYS`,
    the data files' and the biLM's sha256."""
    d = cfg.data
    files = {
        f"{k}_sha256": source_sha256(getattr(d, k)) if getattr(d, k) else ""
        for k in ("train", "dev", "test", "train_hdf5", "dev_hdf5", "test_hdf5")
    }
    return fingerprint(to_dict(cfg), RESUMABLE_KEYS, {**files, "bilm_sha256": bilm.sha256 if bilm else ""})


def mix_summary(encoder) -> dict:
    """The learned layer weights and gamma of each scalar mix: ``mix_weights``/``gamma`` for the input mix,
    ``mix_weights_output``/``gamma_output`` for the output mix (``elmo_output``); empty without ELMo."""
    out = {}
    for name, mix in encoder.mixes().items():
        suffix = "" if name == "input" else f"_{name}"
        out[f"mix_weights{suffix}"] = mix.normalized_weights().tolist()
        out[f"gamma{suffix}"] = float(mix.gamma.detach())
    return out


def check_domain_fit(cfg: TaskConfig, bilm, train_items: list) -> dict | None:
    """Does the biLM fit the training text (:mod:`elmokit.bilm.domain_fit`)? Prints the warning, with the command
    that adapts it, when it does not; the result goes into results.json. None when there is nothing to check."""
    from elmokit.bilm.domain_fit import adapt_arguments, measure_fit

    if bilm is None or cfg.train.fit_lines <= 0:
        return None
    if not bilm.has_softmax:
        return {"skipped": "an imported ELMo keeps no softmax to measure its perplexity with"}
    d = cfg.data
    r = measure_fit(
        bilm,
        [" ".join(it.words) for it in train_items],
        cfg.train.fit_lines,
        what=f"the training text ({d.train})",
        adapt_args=adapt_arguments([d.train], d.format, d.text_column),
        name=cfg.model.bilm,
    )
    if r["warning"]:
        print(r["warning"], file=sys.stderr, flush=True)
    return r
