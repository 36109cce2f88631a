"""``elmokit pretrain``: one direction of the biLM, one readable accelerate loop, exact resume.

The loop, top to bottom: config → accelerator → vocab and token streams → model → optimizer and schedule →
(resume) → for each step: a window of ``bptt`` tokens from every local stream, forward with the carried state,
backward, clip, step; log, validate, checkpoint. At the end: the self-contained model directory and a PNG of the
curves.

Many processes (``accelerate launch --num_processes N``): ``train.batch_size`` is the global number of streams; each
process owns a contiguous block of ``batch_size / N`` streams (see :class:`~elmokit.lm.corpus.StreamBatcher`), so the
carried state stays valid and every process runs the same number of steps. Every process draws the same shared
negatives (the head's own generator, same seed), while dropout masks come from the global RNG seeded per process.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from elmokit.core.choices import DIRECTIONS, HEADS, PRECISIONS
from elmokit.core.config import PretrainConfig, build_config, load_raw, to_dict
from elmokit.core.errors import ConfigError, ElmokitError
from elmokit.core.files import atomic_dir, commit_dir, removed_on_disk_error, write_json
from elmokit.core.run_guard import check_fresh_out, fingerprint, hold_run_lock, remove_torn_dirs
from elmokit.core.runtime import RunLog, start_accelerator
from elmokit.lm.checkpoint import RunState, list_checkpoints, resume_checkpoint, save_checkpoint, verified_checkpoint
from elmokit.lm.corpus import StreamBatcher, encode_corpus, unigram_counts
from elmokit.lm.evaluate import (
    Perplexity,
    clips_state,
    count_text,
    runaway_streams,
    runaway_warning,
    stream_nll_by_stream,
)
from elmokit.lm.model import ENCODER_KEYS, LanguageModel, count_parameters, resolve_model_config
from elmokit.lm.model_dir import check_vocab_fits, load_model, write_model_files
from elmokit.lm.optim import OPTIMIZERS, SCHEDULES, lr_lambda, make_optimizer, schedule_budget_warning, schedule_length
from elmokit.lm.vocab import load_vocab
from elmokit.modules.recurrent import detach_state, restart_rows, stack_problem

# what may change when a run is resumed: its budget, its logging, and paths whose content the fingerprint pins by
# hash (the vocabulary, the token arrays); every other key of the config makes the run (run_guard.fingerprint)
RESUMABLE_KEYS = frozenset(
    {
        "train.max_minutes",
        "train.max_cpu_minutes",
        "train.stop_at_step",
        "train.max_steps",
        "train.epochs",
        "train.eval_every",
        "train.eval_batch_size",
        "train.eval_max_tokens",
        "train.checkpoint_every",
        "train.keep_checkpoints",
        "train.log_every",
        "train.threads",
        "train.trackers",
        "data.cache_dir",
        "data.num_proc",
        "data.vocab",
        "data.train",
        "data.valid",
    }
)


def load_pretrain_config(config: str | None, overrides: list[str] | tuple[str, ...] = ()) -> PretrainConfig:
    """Load and validate a pretraining config; the model section starts from its named size."""
    raw, where = load_raw(config, overrides)
    cfg = build_config(PretrainConfig, raw, where)
    cfg.model = resolve_model_config(cfg.model, set((raw.get("model") or {}).keys()))
    m, t = cfg.model, cfg.train
    checks = [
        (m.head in HEADS, f"model.head must be sampled or full, got {m.head!r}"),
        (t.optimizer in OPTIMIZERS, f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, got {t.optimizer!r}"),
        (t.schedule in SCHEDULES, f"train.schedule must be one of {', '.join(SCHEDULES)}, got {t.schedule!r}"),
        (t.precision in PRECISIONS, f"train.precision must be one of {', '.join(PRECISIONS)}, got {t.precision!r}"),
        (t.batch_size > 0 and t.bptt > 0, "train.batch_size and train.bptt must be positive"),
        (t.grad_accum > 0, "train.grad_accum must be positive"),
        (t.epoch_state in ("carry", "reset"), f"train.epoch_state must be carry or reset, got {t.epoch_state!r}"),
        (
            t.reset_every >= 0,
            f"train.reset_every must be >= 0 (steps between a stream's restarts; 0 = never), got {t.reset_every}",
        ),
        (t.log_every > 0, f"train.log_every must be positive (steps between train-loss records), got {t.log_every}"),
        (t.max_steps >= 0, f"train.max_steps must be >= 0 (0 = train.epochs epochs), got {t.max_steps}"),
        (t.max_steps > 0 or t.epochs > 0, f"train.epochs must be positive when train.max_steps=0, got {t.epochs}"),
        (
            min(t.eval_every, t.checkpoint_every, t.keep_checkpoints, t.stop_at_step, t.eval_max_tokens) >= 0,
            "train.eval_every, checkpoint_every, keep_checkpoints, stop_at_step and eval_max_tokens must be >= 0",
        ),
        (
            min(t.max_minutes, t.max_cpu_minutes, t.warmup_steps) >= 0,
            "train.max_minutes, train.max_cpu_minutes and train.warmup_steps must be >= 0",
        ),
        (t.head_steps >= 0, f"train.head_steps must be >= 0 (0 = no head-only phase), got {t.head_steps}"),
        (t.schedule_steps >= 0, "train.schedule_steps must be >= 0 (0 = the run's length)"),
        (0 <= m.dropout < 1, "model.dropout must be in [0, 1)"),
        (bool(cfg.data.vocab), "data.vocab is required (a .model file from `elmokit vocab`)"),
        (bool(cfg.data.train), "data.train is required (one or more text files)"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(f"{where}: {msg}")
    problem = stack_problem(m.cell, m.proj_size, m.impl, m.cell_clip, m.proj_clip)  # the recurrent stack's own rules
    problem = problem or encoder_problem(m, cfg.data.vocab)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    from elmokit.core.config import expand_path

    cfg.data.vocab = expand_path(cfg.data.vocab, where)
    cfg.data.train = [s if s.startswith("hf:") else expand_path(s, where) for s in cfg.data.train]
    cfg.data.valid = [s if s.startswith("hf:") else expand_path(s, where) for s in cfg.data.valid]
    return cfg


def encoder_problem(m, vocab: str) -> str:
    """What is wrong with the token encoder's settings (``model.encoder`` and its ``char_cnn`` keys) for this
    vocabulary, or ``""``."""
    from elmokit.lm.model import ENCODERS
    from elmokit.lm.words import CHARS, is_word_vocab
    from elmokit.modules.char_cnn import ACTIVATIONS

    if m.encoder not in ENCODERS:
        return f"model.encoder must be one of {', '.join(ENCODERS)}, got {m.encoder!r}"
    if m.encoder == "pieces":
        if vocab and is_word_vocab(vocab):
            return (
                f"data.vocab {vocab} is a word vocabulary: it is for model.encoder=char_cnn (the original ELMo); "
                f"pieces read a sentencepiece .model"
            )
        return "model.encoder_from is for model.encoder=char_cnn" if m.encoder_from else ""
    if vocab and not is_word_vocab(vocab):
        return (
            f"model.encoder=char_cnn predicts whole words: data.vocab must be a word vocabulary (PREFIX.txt from "
            f"`elmokit vocab CORPUS --out PREFIX --model-type word`), got {vocab}"
        )
    bad_filter = [f for f in m.filters if len(f) != 2 or not 1 <= f[0] <= m.max_chars - 2 or f[1] < 1]
    checks = [
        (m.chars in CHARS, f"model.chars must be one of {', '.join(CHARS)}, got {m.chars!r}"),
        (m.max_chars >= 3, f"model.max_chars must be >= 3 (begin, end and one character), got {m.max_chars}"),
        (m.char_dim > 0, f"model.char_dim must be positive, got {m.char_dim}"),
        (bool(m.filters), "model.filters must list [width, count] pairs, e.g. [[1, 32], [2, 32], [3, 64]]"),
        (
            not bad_filter,
            f"model.filters: {bad_filter[:1]} is not [width, count] with 1 <= width <= max_chars - 2 and count >= 1",
        ),
        (m.num_highway >= 0, f"model.num_highway must be >= 0, got {m.num_highway}"),
        (
            bad_filter or sum(n for _, n in m.filters) != m.embed_dim,
            f"model.filters add up to {sum(n for _, n in m.filters if not bad_filter)} features, model.embed_dim's "
            f"width: bilm-tf's files have no projection then (AllenNLP reads one), so the biLM could not be "
            f"exported; use filters that add up to another number",
        ),
        (m.char_activation in ACTIVATIONS, f"model.char_activation must be relu or tanh, got {m.char_activation!r}"),
        (not m.tie_embeddings, "model.tie_embeddings needs a pieces encoder (a char_cnn has no input embedding)"),
    ]
    return next((msg for ok, msg in checks if not ok), "")


def _array_sha256(a) -> str:
    """sha256 of a token array's bytes (the data a run reads, whatever its files are called)."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    flat = np.asarray(a).reshape(-1)
    for i in range(0, len(flat), 1 << 24):
        h.update(np.ascontiguousarray(flat[i : i + (1 << 24)]).tobytes())
    return h.hexdigest()


@dataclass(kw_only=True)
class RunData:
    """The vocabulary and the token arrays a run reads. With a word vocabulary (``model.encoder=char_cnn``): the
    word token arrays, the character mapper and each array's :class:`~elmokit.lm.words.WordTable`."""

    vocab: Any  # elmokit.lm.vocab.Vocab or elmokit.lm.words.WordVocab
    train: Any  # np.ndarray (n,) token ids, memory-mapped
    valid: Any  # the same for the validation text, or None
    mapper: Any = None  # word streams: ElmoBytes or ManyLangsLexicon
    train_words: Any = None  # word streams: the arrays' WordTable
    valid_words: Any = None

    def counts(self):
        """Unigram counts of the targets ``(V,)`` (the sampled softmax's proposal)."""
        if self.mapper is None:
            return unigram_counts(self.train, self.vocab.size)
        from elmokit.lm.words import word_counts

        return word_counts(self.train, self.vocab.size, len(self.train_words.chars))


def read_data(cfg: PretrainConfig, accelerator, progress: bool) -> RunData:
    """The vocabulary and the train and validation token arrays (the main process builds the token cache, the
    others then read it)."""
    d, m = cfg.data, cfg.model
    if m.encoder == "char_cnn":
        from elmokit.lm.words import char_mapper, encode_word_corpus, load_word_vocab

        vocab = load_word_vocab(d.vocab)
        mapper = char_mapper(m.chars, m.max_chars, d.vocab)
        with accelerator.main_process_first():
            train = encode_word_corpus(d.train, vocab, d.cache_dir, d.max_line_chars)
            valid = encode_word_corpus(d.valid, vocab, d.cache_dir, d.max_line_chars) if d.valid else None
        return RunData(
            vocab=vocab,
            train=train.ids,
            valid=valid.ids if valid is not None else None,
            mapper=mapper,
            train_words=train.table(vocab, mapper),
            valid_words=valid.table(vocab, mapper) if valid is not None else None,
        )
    vocab = load_vocab(d.vocab)
    with accelerator.main_process_first():
        train_tokens = encode_corpus(d.train, vocab, d.cache_dir, d.num_proc, d.max_line_chars, progress=progress)
        valid_tokens = (
            encode_corpus(d.valid, vocab, d.cache_dir, d.num_proc, d.max_line_chars, progress=progress)
            if d.valid
            else None
        )
    return RunData(vocab=vocab, train=train_tokens, valid=valid_tokens)


def encoder_source(cfg: PretrainConfig, data: RunData):
    """``model.encoder_from``: the LM whose token encoder this one starts from (the backward LM takes the forward's,
    so that the pair holds one encoder, as bilm-tf's files do), checked to have the same encoder shape and characters;
    ``None`` without it."""
    m = cfg.model
    if not m.encoder_from:
        return None
    src = load_model(m.encoder_from)
    theirs = src.cfg.model
    if theirs.encoder != "char_cnn":
        raise ConfigError(f"model.encoder_from {m.encoder_from}: is a {theirs.encoder} LM; it has no character CNN")
    for key in ENCODER_KEYS:
        if getattr(theirs, key) != getattr(m, key):
            raise ConfigError(
                f"model.encoder_from {m.encoder_from}: its model.{key} is {getattr(theirs, key)!r}, this run's "
                f"{getattr(m, key)!r}; the encoder is taken whole: use the same model settings as that run"
            )
    if src.mapper.sha256 != data.mapper.sha256:
        raise ConfigError(
            f"model.encoder_from {m.encoder_from}: reads words with another character lexicon than {cfg.data.vocab}'s; "
            f"use the vocabulary that run used"
        )
    return src


def _new_model(cfg: PretrainConfig, data: RunData, init_from: str | None, encoder_from=None) -> LanguageModel:
    """The LM at its initial weights (the same on every process), its head's unigram counts from the training
    tokens; ``init_from``: the weights of that model directory (which must share the vocabulary and shape);
    ``encoder_from``: a loaded LM whose token encoder this one takes (see :func:`encoder_source`), frozen unless
    ``model.train_encoder``."""
    from accelerate.utils import set_seed

    from elmokit.lm.words import num_chars

    set_seed(cfg.train.seed)
    vocab, mapper = data.vocab, data.mapper
    model = LanguageModel(
        cfg.model,
        vocab.size,
        seed=cfg.train.seed,
        num_chars=0 if mapper is None else num_chars(mapper),
        char_pad_id=None if mapper is None else mapper.pad_id,
    )
    model.head.set_counts(torch.from_numpy(data.counts()))
    if encoder_from is not None:
        model.token_encoder.load_state_dict(encoder_from.model.token_encoder.state_dict())
        model.token_encoder.requires_grad_(cfg.model.train_encoder)
    if init_from:
        loaded = load_model(init_from)
        check_vocab_fits(loaded.manifest, vocab.sha256, cfg.data.vocab, init_from)
        try:
            model.load_state_dict(loaded.model.state_dict())
        except RuntimeError as e:
            raise ConfigError(f"--init-from {init_from}: its shape does not fit this config ({str(e)[:200]})") from None
    return model


def _write_model(
    run_dir: Path, model: LanguageModel, cfg: PretrainConfig, vocab, direction: str, summary: dict
) -> Path:
    """``run_dir/model`` (written aside, then renamed) with ``summary`` and the last validation in its manifest,
    and ``curves.png``."""
    from elmokit.core.plots import plot_curves

    model_dir = run_dir / "model"
    records = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln]
    vals = [r for r in records if r["split"] == "valid"]
    if vals:
        summary["final_valid"] = vals[-1]
    head = [r for r in vals if cfg.train.head_steps and r["step"] == cfg.train.head_steps]
    if head:
        summary["head_valid"] = head[0]  # the validation at the end of the head phase (train.head_steps)
    tmp = atomic_dir(model_dir)
    with removed_on_disk_error(
        tmp, model_dir, " the model", "the checkpoints are intact: free space, then run again with --resume"
    ):
        write_model_files(
            tmp, model.state_dict(), to_dict(cfg), vocab.path, vocab.sha256, direction, vocab.size, summary
        )
    commit_dir(tmp, model_dir)
    plot_curves(records, run_dir / "curves.png", title=f"{direction} LM: {cfg.model.size}")
    return model_dir


@dataclass(kw_only=True)
class PretrainRun:
    """What the pretraining loop reads, built once by :func:`_start_run`: the run's config, processes, data, model,
    optimizer, schedule, the state it resumes from, and its log."""

    cfg: PretrainConfig
    direction: str
    run_dir: Path
    accelerator: Any
    vocab: Any
    batcher: StreamBatcher
    valid_tokens: Any  # the validation token array, or None
    valid_table: Any  # word streams: the validation array's WordTable (None for pieces)
    valid_words: int  # whitespace words and characters of the validation text (0: not counted)
    valid_chars: int
    total_steps: int
    run_print: dict  # the run's fingerprint (run_guard.fingerprint)
    model: Any  # as prepared by the accelerator
    unwrapped: LanguageModel
    optimizer: Any
    scheduler: Any
    state: RunState  # where the loop starts (a fresh one, or the checkpoint's)
    log: RunLog

    def validate(self, at_step: int, clock: dict[str, float]) -> None:
        """Full-softmax loss and perplexity on the validation tokens (main process), written to the log; warns
        about runaway streams."""
        from tqdm.auto import tqdm

        if self.valid_tokens is None:
            return
        t, accelerator = self.cfg.train, self.accelerator
        if accelerator.is_main_process:
            per_nll, per_n = stream_nll_by_stream(
                self.unwrapped,
                self.valid_tokens,
                self.direction == "backward",
                t.eval_batch_size,
                t.bptt,
                t.eval_max_tokens,
                accelerator.device,
                words=self.valid_table,
            )
            nll, n = float(per_nll.sum()), int(per_n.sum())
            runaway = runaway_streams(per_nll, per_n)
            ppl = Perplexity(nll, n, self.valid_words, self.valid_chars)
            rec = {
                "step": at_step,
                "split": "valid",
                "loss": nll / n,
                "ppl": ppl.subword_ppl,
                "word_ppl": ppl.word_ppl,  # None when the words are not counted (eval_max_tokens)
                "bits_per_char": ppl.bits_per_char,
                "runaway_streams": len(runaway),
                **clock,
            }
            warning = runaway_warning(
                per_nll, per_n, runaway, f"validation at step {at_step}", clips_state(self.unwrapped)
            )
            if warning:
                tqdm.write(warning)
            self.log.write(rec, {"valid/loss": rec["loss"], "valid/ppl": rec["ppl"]})
        accelerator.wait_for_everyone()

    def save(self, step: int, states: list, window: tuple[float, int]) -> None:
        """A checkpoint at ``step``: weights, optimizer, schedule, carried states, RNGs and the loss window."""
        save_checkpoint(
            self.accelerator,
            self.run_dir,
            step,
            self.model,
            self.optimizer,
            self.scheduler,
            states,
            self.cfg,
            self.vocab,
            self.direction,
            self.cfg.train.keep_checkpoints,
            self.run_print,
            window,
            self.log.lines,
        )


def _start_run(
    cfg: PretrainConfig,
    direction: str,
    run_dir: Path,
    resume: bool,
    init_from: str | None,
    progress: bool,
    overwrite: bool,
    resume_from: str | None,
    init_print: dict | None = None,
) -> PretrainRun:
    """Everything before the loop: the accelerator, the run directory's checks, the token streams, the model, the
    optimizer and schedule, the checkpoint resumed from (its files verified first) and the run's log."""
    from accelerate.utils import set_seed

    t = cfg.train
    accelerator = start_accelerator(run_dir, t.threads, t.precision, t.trackers)
    if t.precision == "bf16" and accelerator.device.type == "cpu":
        raise ConfigError("train.precision=bf16 is for GPUs (bf16 matmul is far slower than fp32 on CPUs); use no")
    main = accelerator.is_main_process
    world, rank, device = accelerator.num_processes, accelerator.process_index, accelerator.device
    hold_run_lock(run_dir, rank, "elmokit pretrain")  # one live writer per run (each process its own rank's lock)
    # every process sees the same directory, so every process stops here
    check_fresh_out(
        run_dir, (run_dir / "model" / "manifest.json").exists(), bool(list_checkpoints(run_dir)), resume, overwrite
    )
    if main:
        if overwrite and not resume:
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_torn_dirs(run_dir)
    accelerator.wait_for_everyone()
    checkpoint = verified_checkpoint(run_dir, resume_from) if resume else None

    data = read_data(cfg, accelerator, main and progress)
    vocab = data.vocab
    batcher = StreamBatcher(data.train, t.batch_size, t.bptt, rank, world, direction == "backward", data.train_words)
    if batcher.local_batch % t.grad_accum:
        raise ConfigError(
            f"train.batch_size/{world} processes = {batcher.local_batch} streams per process is not "
            f"divisible by train.grad_accum={t.grad_accum}"
        )
    encoder = encoder_source(cfg, data)
    total_steps = t.max_steps or t.epochs * batcher.steps_per_epoch
    if t.head_steps >= total_steps:
        raise ConfigError(
            f"train.head_steps={t.head_steps} leaves no step to train the rest (the run has {total_steps} steps)"
        )
    valid_words, valid_chars = (
        count_text(cfg.data.valid, cfg.data.max_line_chars) if cfg.data.valid and not t.eval_max_tokens else (0, 0)
    )
    run_print = fingerprint(
        to_dict(cfg),
        RESUMABLE_KEYS,
        {
            "direction": direction,
            "world_size": world,
            "vocab_sha256": vocab.sha256,
            "train_tokens_sha256": _array_sha256(data.train),
            "valid_tokens_sha256": _array_sha256(data.valid) if data.valid is not None else "",
            **({"lexicon_sha256": data.mapper.sha256} if data.mapper is not None else {}),
            **({"encoder_from_sha256": encoder.manifest["files"]["weights.pt"]} if encoder is not None else {}),
            "schedule_steps": schedule_length(t, total_steps),
            **(init_print or {}),  # what init_from was made from (e.g. a biLM's weights), pinned by its caller
        },
    )

    model = _new_model(cfg, data, init_from if checkpoint is None else None, encoder)
    set_seed(t.seed + 1000 * rank + 1)  # dropout masks independent per process
    optimizer = make_optimizer(t, model.to(device).parameters())
    # not passed through accelerator.prepare: a prepared scheduler steps once per process per step
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, head_then_schedule(cfg, total_steps))
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    state = RunState(states=[None] * t.grad_accum)
    if checkpoint is not None:
        state = resume_checkpoint(checkpoint, run_print, unwrapped, optimizer, scheduler, world, rank, device)
        if main:
            print(f"resuming from {checkpoint} (step {state.step})", flush=True)
    elif resume and main:
        print(f"no checkpoint in {run_dir}; starting from scratch", flush=True)
    if main:
        write_json(
            run_dir / "run.json",
            {
                "direction": direction,
                "config": to_dict(cfg),
                "world_size": world,
                "total_steps": total_steps,
                "parameters": count_parameters(unwrapped),
                "steps_per_epoch": batcher.steps_per_epoch,
            },
        )
    keep_step = state.step if checkpoint is not None and state.metrics_lines is None else None
    log = RunLog(
        accelerator,
        run_dir / "metrics.jsonl",
        state.metrics_lines,
        keep_step,
        f"elmokit-pretrain-{direction}",
        to_dict(cfg),
        bool(t.trackers),
    )
    # the fields by name, several to a row
    # fmt: off
    return PretrainRun(
        cfg=cfg, direction=direction, run_dir=run_dir, accelerator=accelerator, vocab=vocab, batcher=batcher,
        valid_tokens=data.valid, valid_table=data.valid_words, valid_words=valid_words, valid_chars=valid_chars,
        total_steps=total_steps, run_print=run_print, model=model, unwrapped=unwrapped, optimizer=optimizer,
        scheduler=scheduler, state=state, log=log,
    )
    # fmt: on


def _forget_empty_run_dir(run_dir: Path, fresh: bool) -> None:
    """A run refused before it wrote anything leaves no directory behind (only its lock file was there)."""
    from elmokit.core.run_guard import release_run_lock

    if fresh and run_dir.is_dir() and all(p.name.startswith(".lock") for p in run_dir.iterdir()):
        release_run_lock(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def pretrain(
    config: str | None,
    direction: str,
    out: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool = False,
    init_from: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    resume_from: str | None = None,
    init_print: dict | None = None,
) -> Path:
    """Train one direction; returns the model directory ``OUT/model``. See the module docstring.

    ``resume`` continues from the newest checkpoint (``resume_from``: a chosen one, a directory or a step), after
    checking its files against their sha256 and the config, vocabulary and data against the run's fingerprint.
    A run directory with checkpoints or a finished model is refused without ``resume`` or ``overwrite``.
    ``init_print``: entries added to the run's fingerprint by the caller that made ``init_from`` (so that a resume
    refuses a changed source, e.g. ``elmokit.bilm.char_pair.pretrain_from_bilm``'s biLM)."""
    from tqdm.auto import tqdm

    if direction not in DIRECTIONS:
        raise ConfigError(f"--direction must be forward or backward, got {direction!r}")
    cfg = load_pretrain_config(config, overrides)
    run_dir = Path(out).expanduser()
    fresh = not run_dir.exists()
    try:
        run = _start_run(
            cfg,
            direction,
            run_dir,
            resume or bool(resume_from),
            init_from,
            progress,
            overwrite,
            resume_from,
            init_print,
        )
    except ElmokitError:
        _forget_empty_run_dir(run_dir, fresh)
        raise
    t, accelerator, model, optimizer, scheduler = cfg.train, run.accelerator, run.model, run.optimizer, run.scheduler
    main, world, device = accelerator.is_main_process, accelerator.num_processes, accelerator.device
    tokens_per_step = t.batch_size * t.bptt
    step, states, total_steps = run.state.step, run.state.states, run.total_steps
    bar = tqdm(
        total=total_steps,
        initial=step,
        disable=not (main and progress),
        unit="step",
        dynamic_ncols=True,
        desc=f"pretrain {direction}",
    )
    start, cpu_start = time.time(), time.process_time()

    def clock() -> dict[str, float]:
        """Seconds since this process started training: wall clock and its CPU time (for curves over time)."""
        return {"wall_s": round(time.time() - start, 2), "cpu_s": round(time.process_time() - cpu_start, 2)}

    # the window of the next train-loss record: its loss sum and steps (carried over a resume, so the first record
    # after one averages the same steps as an uninterrupted run), and the steps timed in this process
    window_start, window_steps, timed_steps = time.time(), run.state.window[1], 0
    window_loss = torch.tensor(run.state.window[0], device=device)
    stop_reason = "done"
    first_step, budget_checked = step, t.max_minutes <= 0 or t.schedule == "constant"
    head_ids = {id(p) for p in run.unwrapped.head.parameters()}
    body = [p for p in run.unwrapped.parameters() if id(p) not in head_ids]  # what the head phase keeps frozen
    model.train()
    while step < total_steps:
        epoch, s = divmod(step, run.batcher.steps_per_epoch)
        if s == 0 and t.epoch_state == "reset":
            states = [None] * t.grad_accum  # every stream restarts from a zero state (else it carries on from its end)
        for m in range(t.grad_accum):
            xm, ym = run.batcher.batch(s, m, t.grad_accum)  # (micro, bptt) each
            xm, ym = xm.to(device), ym.to(device)
            if t.reset_every and states[m] is not None:  # the streams whose turn it is restart from zero
                due = run.batcher.restarts(step, t.reset_every, m, t.grad_accum)  # (micro,) bool
                if due.any():
                    states[m] = restart_rows(states[m], torch.from_numpy(due).to(device))
            sync = contextlib.nullcontext() if m == t.grad_accum - 1 else accelerator.no_sync(model)
            with sync, accelerator.autocast():
                loss, new_state = model(xm, ym, states[m])
                accelerator.backward(loss / t.grad_accum)
            states[m] = detach_state(new_state)
            window_loss += loss.detach().float() / t.grad_accum
        if step < t.head_steps:  # the head phase (train.head_steps): only the softmax head trains
            for p in body:
                p.grad = None  # the optimizer skips a weight without a gradient (no update, no moments)
        if t.clip_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), t.clip_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        window_steps += 1
        timed_steps += 1

        if step % t.log_every == 0 or step == total_steps:
            loss_avg = accelerator.reduce(window_loss, "mean").item() / window_steps
            tps = tokens_per_step * timed_steps / max(time.time() - window_start, 1e-9)
            if main:
                lr = scheduler.get_last_lr()[0]
                rec = {
                    "step": step,
                    "split": "train",
                    "epoch": epoch,
                    "loss": loss_avg,
                    "ppl": math.exp(min(loss_avg, 50)),
                    "tokens_per_s": tps,
                    "lr": lr,
                    **clock(),
                }
                run.log.write(rec, {"train/loss": loss_avg, "train/tokens_per_s": tps, "lr": lr})
                bar.set_postfix(loss=f"{loss_avg:.3f}", ppl=f"{rec['ppl']:.1f}", tok_s=f"{tps:,.0f}")
            window_start, window_loss, window_steps, timed_steps = time.time(), torch.zeros((), device=device), 0, 0
        bar.update(1)
        if not budget_checked and (step - first_step >= 100 or time.time() - start > 120):
            budget_checked = True
            warning = schedule_budget_warning(
                step, first_step, total_steps, time.time() - start, t.max_minutes, t.schedule
            )
            if warning and main:
                tqdm.write(warning)
        if step < total_steps and ((t.eval_every and step % t.eval_every == 0) or step == t.head_steps):
            run.validate(step, clock())
        if _out_of_time(t, accelerator, start, cpu_start):
            stop_reason = "time budget"
        elif t.stop_at_step and step >= t.stop_at_step:
            stop_reason = f"stop_at_step={t.stop_at_step}"
        if (t.checkpoint_every and step % t.checkpoint_every == 0) or stop_reason != "done":
            run.save(step, states, (window_loss.item(), window_steps))
        if stop_reason != "done":
            break
    bar.close()
    if stop_reason.startswith("stop_at_step"):
        run.log.close()
        if main:
            print(f"stopped after step {step} ({stop_reason}); continue with --resume", flush=True)
        accelerator.end_training()
        return run.run_dir / "model"

    # --- the end: validation, the model directory, the curves ---------------------------------------------------
    run.validate(step, clock())
    run.log.close()
    if main:
        summary = {
            "steps": step,
            "tokens": step * tokens_per_step,
            "wall_minutes_last_run": (time.time() - start) / 60,
            "cpu_minutes_last_run": (time.process_time() - cpu_start) / 60,
            "stopped_by": stop_reason,
            "schedule_done": step / schedule_length(t, total_steps),
            "world_size": world,
            "parameters": count_parameters(run.unwrapped),
        }
        model_dir = _write_model(run.run_dir, run.unwrapped, cfg, run.vocab, direction, summary)
        print(f"model written to {model_dir}", flush=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return run.run_dir / "model"


def head_then_schedule(cfg: PretrainConfig, total_steps: int):
    """The learning-rate factor by step: ``train.lr`` through the head phase (``train.head_steps``), then the
    configured schedule (warmup and decay) over the steps after it. A function of the step alone, so a resume in
    either phase continues exactly."""
    h = cfg.train.head_steps
    after = lr_lambda(cfg, total_steps - h)

    def f(step: int) -> float:
        return 1.0 if step < h else after(step - h)

    return f


def _out_of_time(t, accelerator, start: float, cpu_start: float) -> bool:
    """Has the run used its wall-clock (``train.max_minutes``) or CPU (``train.max_cpu_minutes``) budget? Every
    process gets the same answer (the max over processes), so all of them stop at the same step."""
    if t.max_minutes <= 0 and t.max_cpu_minutes <= 0:
        return False
    over = (t.max_minutes > 0 and time.time() - start > 60 * t.max_minutes) or (
        t.max_cpu_minutes > 0 and time.process_time() - cpu_start > 60 * t.max_cpu_minutes
    )
    flag = torch.tensor(float(over), device=accelerator.device)
    if accelerator.num_processes > 1:
        flag = accelerator.reduce(flag, "max")
    return bool(flag)
