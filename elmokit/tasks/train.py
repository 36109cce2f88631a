"""``elmokit train-tagger`` / ``train-classifier``: one readable accelerate loop for downstream models.

Top to bottom: config → accelerator → splits and lexicon → biLM features (an HDF5 cache per split, or the biLM
on the fly) → model, Adam, LR annealing on plateau → (resume) → epochs of length-bucketed batches: forward,
backward, clip, step; evaluate on dev every epoch (or ``eval_every`` steps): the best model so far is written to
``OUT/model``, the LR is annealed when dev stops improving, and training stops early after ``patience``
evaluations without improvement. At the end the best model is scored on dev and test, and PNGs of the curves and
of the learned scalar-mix weights are written. With ``train.ema_decay`` a moving average of the weights
(``tasks/averaging.py``) is what is evaluated, selected and saved.

Many processes: each takes every N-th batch of the same epoch order (equal counts), so the global batch is
``batch_size * N``; every process evaluates the whole dev set itself (same numbers everywhere).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from elmokit.checkpoint import safe_load, write_json
from elmokit.config import build_config, expand_path, load_raw, to_dict
from elmokit.errors import ConfigError
from elmokit.tasks.averaging import WeightAverage
from elmokit.tasks.batching import collate, make_batches
from elmokit.tasks.checkpoint import LoopState, resume_state, save_state
from elmokit.tasks.config import TaskConfig, check_task_config
from elmokit.tasks.lexicon import Lexicon
from elmokit.tasks.model_dir import build_model, save_task_model
from elmokit.tasks.predict import main_metric, predict_items, score_predictions
from elmokit.tasks.readers import read_items
from elmokit.tasks.tables import source_sha256
from elmokit.run_guard import check_fresh_out, fingerprint
from elmokit.runtime import RunLog, start_accelerator

# what may change when a task run is resumed: its budget, logging and paths whose content is pinned by hash
RESUMABLE_KEYS = frozenset({
    "out", "train.max_epochs", "train.max_minutes", "train.threads", "train.log_every", "train.trackers",
    "train.progress", "train.cache_dir", "data.train", "data.dev", "data.test", "data.train_hdf5", "data.dev_hdf5",
    "data.test_hdf5", "model.bilm", "train.fit_lines",
})


def load_task_config(config: str | None, overrides: list[str] | tuple[str, ...] = (), task: str = "",
                     out: str | None = None) -> TaskConfig:
    """Load, check and path-expand a downstream config (``task`` forces tagger/classifier)."""
    raw, where = load_raw(config, overrides)
    if task:
        if raw.get("task", task) != task:
            raise ConfigError(f"{where}: task is {raw['task']!r}; use `elmokit train-{raw['task']}` for it")
        raw["task"] = task
    if out:
        raw["out"] = out
    cfg = build_config(TaskConfig, raw, where)
    check_task_config(cfg, where)
    if not cfg.out:
        raise ConfigError(f"{where}: no output directory; set out: in the config or pass --out DIR")
    d = cfg.data
    d.train, d.dev, d.test = (expand_path(p, where) if p else p for p in (d.train, d.dev, d.test))
    d.train_hdf5, d.dev_hdf5, d.test_hdf5 = (expand_path(p, where) if p else p
                                             for p in (d.train_hdf5, d.dev_hdf5, d.test_hdf5))
    cfg.out = expand_path(cfg.out, where)
    if cfg.model.bilm:
        cfg.model.bilm = expand_path(cfg.model.bilm, where)
    cfg.train.cache_dir = expand_path(cfg.train.cache_dir, where)
    return cfg


def _features(cfg: TaskConfig, bilm, splits: dict, progress: bool) -> dict:
    """Per split: ``EmbedFileFeatures`` (a given ``elmokit embed`` file), ``CachedFeatures`` (embedded once) or
    ``LiveFeatures`` (None without ELMo)."""
    from elmokit.embed import Embedder
    from elmokit.tasks.features import CachedFeatures, EmbedFileFeatures, LiveFeatures, build_cache

    if bilm is None:
        return {name: None for name in splits}
    emb = Embedder(bilm, pooling=cfg.model.pooling, batch_tokens=2000)
    out = {}
    for name, items in splits.items():
        dump = getattr(cfg.data, f"{name}_hdf5")
        if dump:  # an `elmokit embed` file given for this split
            out[name] = EmbedFileFeatures(dump, bilm.sha256, items)
            continue
        if cfg.train.features == "on_the_fly":
            out[name] = LiveFeatures(bilm, cfg.model.pooling)
            continue
        path = build_cache(emb, [it.words for it in items], cfg.train.cache_dir,
                           f"{Path(getattr(cfg.data, name) or cfg.data.train).name}-{name}", cfg.train.cache_dtype,
                           progress)
        out[name] = CachedFeatures(path)
    return out


def _fingerprint(cfg: TaskConfig, bilm) -> dict:
    """What makes a task run (:func:`elmokit.run_guard.fingerprint`): the config less :data:`RESUMABLE_KEYS`,
    the data files' and the biLM's sha256."""
    d = cfg.data
    files = {f"{k}_sha256": source_sha256(getattr(d, k)) if getattr(d, k) else ""
             for k in ("train", "dev", "test", "train_hdf5", "dev_hdf5", "test_hdf5")}
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
    """Does the biLM fit the training text (:mod:`elmokit.fit`)? Prints the warning, with the command that adapts
    it, when it does not; the result goes into results.json. None when there is nothing to check."""
    from elmokit.bilm import BiLM

    if bilm is None or cfg.train.fit_lines <= 0:
        return None
    if not isinstance(bilm, BiLM):
        return {"skipped": "an imported ELMo keeps no softmax to measure its perplexity with"}
    from elmokit.fit import adapt_arguments, measure_fit

    d = cfg.data
    r = measure_fit(cfg.model.bilm, [" ".join(it.words) for it in train_items], cfg.train.fit_lines,
                    what=f"the training text ({d.train})", adapt_args=adapt_arguments([d.train], d.format, d.text_column))
    if r["warning"]:
        print(r["warning"], file=sys.stderr, flush=True)
    return r


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


def _still_stopped(loop: LoopState, patience: int, out_of_time: bool) -> bool:
    """Does a resumed run stay stopped? One that early stopping ended does; one that its time budget ended goes on
    when the budget is now larger (``--resume train.max_minutes=...``; runs saved before ``stop_reason`` existed:
    the patience not run out means the time did)."""
    reason = loop.stop_reason if loop.stop_reason is not None else (
        "patience" if loop.bad_evals >= patience else "time")
    return loop.stopped and not (reason == "time" and not out_of_time)


def _loop_summary(loop: LoopState) -> dict:
    """What results.json says of the loop: steps, epochs, the best step, minutes and seconds per epoch."""
    per_epoch = sum(loop.epoch_seconds) / len(loop.epoch_seconds) if loop.epoch_seconds else None
    return {"best_step": loop.best_step, "steps": loop.step, "epochs": loop.epoch,
            "train_minutes": loop.train_seconds / 60, "seconds_per_epoch": per_epoch}


def _write_plots(run: Path, cfg: TaskConfig, metric: str, encoder) -> None:
    """``curves.png`` from ``metrics.jsonl`` and, with ELMo, ``mix_weights.png``."""
    from elmokit.plots import plot_mix_weights, plot_task_curves

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    plot_task_curves(records, run / "curves.png", metric, title=f"{cfg.task} ({Path(cfg.data.train).name})")
    if encoder.mixes():
        plot_mix_weights(list(encoder.mixes().values()), run / "mix_weights.png",
                         [f"scalar mix ({name})" for name in encoder.mixes()])


def train_task(cfg: TaskConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Train, select on dev, score on test. Returns the summary also written to ``OUT/results.json``.

    ``resume`` continues ``OUT/checkpoint`` after checking its files against its manifest and the config, data and
    biLM against its fingerprint; a finished run (``results.json``) or a checkpoint is not started over without
    ``overwrite``."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    t, m, d = cfg.train, cfg.model, cfg.data
    run = Path(cfg.out)
    check_fresh_out(run, (run / "results.json").exists(), (run / "checkpoint").exists(), resume, overwrite)
    accelerator = start_accelerator(run, t.threads, t.mixed_precision, t.trackers)
    set_seed(t.seed)
    main = accelerator.is_main_process
    say = accelerator.print if t.progress else (lambda *a, **k: None)

    # --- data, biLM features, model -------------------------------------------------------------------------------
    splits, lexicon = _read_splits(cfg)
    metric = ("span_f1" if d.scheme else "accuracy") if t.metric == "auto" else t.metric
    say(f"{cfg.task}: {len(splits['train'])} train / {len(splits['dev'])} dev examples, "
        f"{len(lexicon.labels)} labels, {len(lexicon.words)} words, {len(lexicon.chars)} chars; metric {metric}")
    bilm = None
    if m.use_elmo:
        from elmokit.bilm import load_bilm

        bilm = load_bilm(m.bilm, device=str(accelerator.device))
    bilm_sha = bilm.sha256 if bilm else ""
    domain_fit = check_domain_fit(cfg, bilm, splits["train"]) if main else None
    t0 = time.time()
    with accelerator.main_process_first():  # the main process writes the caches, the others then read them
        features = _features(cfg, bilm, splits, t.progress and main)
    cache_s = time.time() - t0 if t.features == "cache" and bilm is not None else 0.0
    model = build_model(cfg, lexicon, bilm.num_layers if bilm else 0, 2 * bilm.dim if bilm else 0)
    trainable = list(model.parameters())  # the biLM is not part of the model: it only makes features
    optimizer = torch.optim.Adam(trainable, lr=t.lr, weight_decay=t.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=t.anneal_factor,
                                                         patience=t.anneal_patience, min_lr=t.min_lr)
    raw_model = accelerator.unwrap_model(model)
    use_words, use_chars = raw_model.encoder.words is not None, raw_model.encoder.chars is not None
    # the model that is evaluated, selected and saved: the trained one, or the moving average of its weights
    average = WeightAverage(raw_model, t.ema_decay) if t.ema_decay else None
    eval_model = average.model if average is not None else raw_model

    def run_eval(name: str) -> dict:
        preds = predict_items(eval_model, splits[name], lexicon, features[name], 2 * t.batch_size, accelerator.device)
        return score_predictions(splits[name], preds, d.scheme)

    # --- state, resume, the run's log ------------------------------------------------------------------------------
    run_print = _fingerprint(cfg, bilm)
    resumed = resume and (run / "checkpoint" / "state.pt").is_file()
    loop = resume_state(run, run_print, raw_model, optimizer, plateau, average) if resumed else LoopState()
    if resumed:
        say(f"resumed at epoch {loop.epoch}, step {loop.step} (best dev {loop.best})")
    if main:
        run.mkdir(parents=True, exist_ok=True)
        write_json(run / "run.json", {"config": to_dict(cfg), "bilm_sha256": bilm_sha})
    # a resume keeps the records its checkpoint saw (older checkpoints: those up to its step), a new run none
    keep = loop.metrics_lines if resumed else None
    log = RunLog(accelerator, run / "metrics.jsonl", keep, loop.step if resumed and keep is None else None,
                 f"elmokit-{cfg.task}", to_dict(cfg), bool(t.trackers))

    def record(rec: dict) -> None:
        log.write(rec, {f"{rec['split']}/{k}": v for k, v in rec.items() if isinstance(v, (int, float))})

    def evaluate_and_select() -> bool:
        """Dev evaluation, best-model save, LR annealing, early stopping. Returns True when patience ran out."""
        scores = run_eval("dev")
        score = main_metric(scores, metric)
        record({"step": loop.step, "split": "dev", "epoch": loop.epoch, "lr": optimizer.param_groups[0]["lr"],
                **scores, **mix_summary(eval_model.encoder)})
        if loop.best is None or score > loop.best:
            loop.best, loop.best_step, loop.bad_evals = score, loop.step, 0
            if main:
                save_task_model(run / "model", eval_model, cfg, lexicon, bilm_sha, {"dev": scores, "step": loop.step})
        else:
            loop.bad_evals += 1
        plateau.step(score)
        bar.set_postfix(dev=f"{score:.2f}", best=f"{loop.best:.2f}")
        return loop.bad_evals >= t.patience

    def end_evaluation(patience_out: bool, timed_out: bool) -> bool:
        """Record whether training stops and why, and save the resumable state. Returns True to stop."""
        loop.stopped = patience_out or timed_out
        loop.stop_reason = "patience" if patience_out else ("time" if timed_out else "")
        loop.train_seconds = time.time() - start
        if main:
            loop.metrics_lines = log.lines  # what a resume keeps of metrics.jsonl
            save_state(run, raw_model, optimizer, plateau, average, loop, run_print)
        return loop.stopped

    # --- the loop ---------------------------------------------------------------------------------------------------
    world, rank = accelerator.num_processes, accelerator.process_index
    lengths = [len(it.words) for it in splits["train"]]
    steps_per_epoch = len(make_batches([0] * len(lengths), t.batch_size, False)) // world
    bar = tqdm(total=t.max_epochs * steps_per_epoch, initial=loop.step, unit="step", desc=cfg.task,
               disable=not (t.progress and main), dynamic_ncols=True)
    start = time.time() - loop.train_seconds

    def out_of_time() -> bool:
        return t.max_minutes > 0 and time.time() - start > 60 * t.max_minutes

    seen, window_t = 0, time.time()  # examples and start of the current train record (loop.window: its loss, steps)
    stop = _still_stopped(loop, t.patience, out_of_time())
    if loop.stopped and not stop:
        say(f"the time budget is now {t.max_minutes:g} minutes ({loop.train_seconds / 60:.1f} used): training goes on")
    while not stop and loop.epoch < t.max_epochs:
        batches = make_batches(lengths, t.batch_size, shuffle=True, seed=t.seed * 1000 + loop.epoch)
        batches = batches[rank::world][:steps_per_epoch]
        epoch_t = time.time()
        model.train()
        for pos in range(loop.batch_pos, len(batches)):
            batch = collate(batches[pos], splits["train"], lexicon, features["train"], use_words, use_chars,
                            path=d.train).to(accelerator.device)
            with accelerator.autocast():
                loss = model(batch)
            accelerator.backward(loss)
            if t.clip_norm > 0:
                accelerator.clip_grad_norm_(trainable, t.clip_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if average is not None:
                average.update(raw_model)
            loop.step += 1
            loop.batch_pos = pos + 1
            seen += len(batches[pos])
            loop.window = [loop.window[0] + float(loss.detach()), loop.window[1] + 1]
            bar.update(1)
            if loop.step % t.log_every == 0:  # the mean loss of the steps since the last record
                now, mean_loss = time.time(), loop.window[0] / loop.window[1]
                record({"step": loop.step, "split": "train", "epoch": loop.epoch, "loss": mean_loss,
                        "lr": optimizer.param_groups[0]["lr"], "examples_per_s": seen * world / (now - window_t)})
                bar.set_postfix(loss=f"{mean_loss:.3f}")
                seen, window_t, loop.window = 0, now, [0.0, 0]
            timed_out = out_of_time()
            if (t.eval_every and loop.step % t.eval_every == 0) or timed_out:
                if end_evaluation(evaluate_and_select(), timed_out):
                    stop = True
                    break
        if stop:
            break
        loop.epoch_seconds.append(time.time() - epoch_t)
        loop.epoch += 1
        loop.batch_pos = 0
        evaluated_stop = evaluate_and_select() if not t.eval_every or loop.step % t.eval_every else False
        stop = end_evaluation(evaluated_stop, out_of_time())
    bar.close()

    # --- the best model on dev and test ------------------------------------------------------------------------------
    eval_model.load_state_dict(safe_load(run / "model" / "weights.pt", "weights"), strict=True)
    final = {name: run_eval(name) for name in splits if name != "train"}
    summary = {"task": cfg.task, "metric": metric, "use_elmo": m.use_elmo, **_loop_summary(loop),
               "cache_seconds": cache_s, "features": t.features if bilm is not None else "none", **final,
               **mix_summary(eval_model.encoder)}
    if domain_fit is not None:
        summary["domain_fit"] = domain_fit
    log.close()
    if main:
        save_task_model(run / "model", eval_model, cfg, lexicon, bilm_sha, {**final, "step": loop.best_step})
        write_json(run / "results.json", summary)
        _write_plots(run, cfg, metric, eval_model.encoder)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    for f in features.values():
        if f is not None and hasattr(f, "close"):
            f.close()
    return summary
