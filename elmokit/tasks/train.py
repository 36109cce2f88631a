"""``elmokit train-tagger`` / ``train-classifier``: one readable accelerate loop for downstream models.

Top to bottom: the run's parts (:func:`elmokit.tasks.run.start_task_run`: config → accelerator → splits and lexicon →
biLM features (an HDF5 cache per split, or the biLM on the fly) → model, Adam, LR annealing on plateau → (resume))
→ epochs of length-bucketed batches: forward, backward, clip, step; evaluate on dev every epoch (or ``eval_every``
steps): the best model so far is written to ``OUT/model``, the LR is annealed when dev stops improving, and training
stops early after ``patience`` evaluations without improvement. At the end the best model is scored on dev and test,
and PNGs of the curves and of the learned scalar-mix weights are written. With ``train.ema_decay`` a moving average
of the weights (``tasks/averaging.py``) is what is evaluated, selected and saved.

Many processes: each takes every N-th batch of the same epoch order (equal counts), so the global batch is
``batch_size * N``; every process evaluates the whole dev set itself (same numbers everywhere).
"""

from __future__ import annotations

import errno
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from elmokit.core.config import build_config, expand_path, load_raw
from elmokit.core.errors import CheckpointError, ConfigError
from elmokit.core.files import safe_load, write_json
from elmokit.tasks.batching import collate, make_batches
from elmokit.tasks.checkpoint import LoopState, checkpoint_left
from elmokit.tasks.config import TaskConfig, check_task_config
from elmokit.tasks.model_dir import save_task_model
from elmokit.tasks.run import mix_summary, start_task_run


def load_task_config(
    config: str | None, overrides: list[str] | tuple[str, ...] = (), task: str = "", out: str | None = None
) -> TaskConfig:
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
    d.train_hdf5, d.dev_hdf5, d.test_hdf5 = (
        expand_path(p, where) if p else p for p in (d.train_hdf5, d.dev_hdf5, d.test_hdf5)
    )
    cfg.out = expand_path(cfg.out, where)
    if cfg.model.bilm:
        cfg.model.bilm = expand_path(cfg.model.bilm, where)
    cfg.train.cache_dir = expand_path(cfg.train.cache_dir, where)
    return cfg


def _still_stopped(loop: LoopState, patience: int, out_of_time: bool) -> bool:
    """Does a resumed run stay stopped? One that early stopping ended does; one that its time budget ended goes on
    when the budget is now larger (``--resume train.max_minutes=...``; runs saved before ``stop_reason`` existed:
    the patience not run out means the time did)."""
    reason = (
        loop.stop_reason if loop.stop_reason is not None else ("patience" if loop.bad_evals >= patience else "time")
    )
    return loop.stopped and not (reason == "time" and not out_of_time)


def _loop_summary(loop: LoopState) -> dict:
    """What results.json says of the loop: steps, epochs, the best step, minutes and seconds per epoch."""
    per_epoch = sum(loop.epoch_seconds) / len(loop.epoch_seconds) if loop.epoch_seconds else None
    return {
        "best_step": loop.best_step,
        "steps": loop.step,
        "epochs": loop.epoch,
        "train_minutes": loop.train_seconds / 60,
        "seconds_per_epoch": per_epoch,
    }


WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)  # a failed write, not a bad file read


@contextmanager
def _writing(out: Path, target: Path, what: str, run_print: dict | None) -> Iterator[None]:
    """Writes of ``target`` (``what``, in the run directory ``out``): a failed one (a full disk) removes the temporary
    files and directories the writes left in ``out`` (``.NAME.tmp``, ``.NAME.tmp-*``) and raises one
    :class:`CheckpointError` naming the file (the OS's name for it when it gives one) and what can be done:
    ``--resume`` when a checkpoint of this run is left, the same command again when none is."""
    before = set(out.glob(".*.tmp*"))
    try:
        yield
    except OSError as e:
        if e.errno not in WRITE_ERRNOS:
            raise
        for tmp in set(out.glob(".*.tmp*")) - before:  # write_json's and atomic_dir's, left by the failed write
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        todo = (
            checkpoint_left(out, run_print) if run_print is not None else "free space, then run the same command again"
        )
        raise CheckpointError(f"{e.filename or target}: cannot write {what} ({e.strerror or e}); {todo}") from None


def _write_plots(run: Path, cfg: TaskConfig, metric: str, encoder, run_print: dict | None = None) -> None:
    """``curves.png`` from ``metrics.jsonl`` and, with ELMo, ``mix_weights.png``."""
    from elmokit.core.plots import plot_mix_weights, plot_task_curves

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    with _writing(run, run / "curves.png", "the training curves", run_print):
        plot_task_curves(records, run / "curves.png", metric, title=f"{cfg.task} ({Path(cfg.data.train).name})")
    if encoder.mixes():
        with _writing(run, run / "mix_weights.png", "the plot of the layer weights", run_print):
            plot_mix_weights(
                list(encoder.mixes().values()),
                run / "mix_weights.png",
                [f"scalar mix ({name})" for name in encoder.mixes()],
            )


def train_task(cfg: TaskConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Train, select on dev, score on test. Returns the summary also written to ``OUT/results.json``.

    ``resume`` continues ``OUT/checkpoint`` after checking its files against its manifest and the config, data and
    biLM against its fingerprint; a finished run (``results.json``) or a checkpoint is not started over without
    ``overwrite``."""
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    with _writing(out, out, "the run's files (run.json, metrics.jsonl)", None):
        run = start_task_run(cfg, resume, overwrite)
    t, d, loop, accelerator, model = cfg.train, cfg.data, run.loop, run.accelerator, run.model
    main = accelerator.is_main_process
    world, rank = accelerator.num_processes, accelerator.process_index
    train, features = run.splits["train"], run.features["train"]
    use_words, use_chars = run.raw_model.encoder.words is not None, run.raw_model.encoder.chars is not None
    lengths = [len(it.words) for it in train]
    steps_per_epoch = len(make_batches([0] * len(lengths), t.batch_size, False)) // world
    bar = tqdm(
        total=t.max_epochs * steps_per_epoch,
        initial=loop.step,
        unit="step",
        desc=cfg.task,
        disable=not (t.progress and main),
        dynamic_ncols=True,
    )
    start = time.time() - loop.train_seconds

    def out_of_time() -> bool:
        return t.max_minutes > 0 and time.time() - start > 60 * t.max_minutes

    def select() -> bool:
        """Dev evaluation (:meth:`elmokit.tasks.run.TaskRun.select`), shown on the bar. True when patience ran out."""
        with _writing(run.out, run.out / "model", "the best model so far", run.run_print):
            score, patience_out = run.select()  # metrics.jsonl names itself when it cannot be written
        bar.set_postfix(dev=f"{score:.2f}", best=f"{loop.best:.2f}")
        return patience_out

    seen, window_t = 0, time.time()  # examples and start of the current train record (loop.window: its loss, steps)
    stop = _still_stopped(loop, t.patience, out_of_time())
    if loop.stopped and not stop and t.progress:
        accelerator.print(
            f"the time budget is now {t.max_minutes:g} minutes ({loop.train_seconds / 60:.1f} used): training goes on"
        )
    while not stop and loop.epoch < t.max_epochs:
        batches = make_batches(lengths, t.batch_size, shuffle=True, seed=t.seed * 1000 + loop.epoch)
        batches = batches[rank::world][:steps_per_epoch]
        epoch_t = time.time()
        model.train()
        for pos in range(loop.batch_pos, len(batches)):
            batch = collate(batches[pos], train, run.lexicon, features, use_words, use_chars, path=d.train).to(
                accelerator.device
            )
            with accelerator.autocast():
                loss = model(batch)
            accelerator.backward(loss)
            if t.clip_norm > 0:
                accelerator.clip_grad_norm_(run.trainable, t.clip_norm)
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
            if run.average is not None:
                run.average.update(run.raw_model)
            loop.step += 1
            loop.batch_pos = pos + 1
            seen += len(batches[pos])
            loop.window = [loop.window[0] + float(loss.detach()), loop.window[1] + 1]
            bar.update(1)
            if loop.step % t.log_every == 0:  # the mean loss of the steps since the last record
                now, mean_loss = time.time(), loop.window[0] / loop.window[1]
                run.record(
                    {
                        "step": loop.step,
                        "split": "train",
                        "epoch": loop.epoch,
                        "loss": mean_loss,
                        "lr": run.optimizer.param_groups[0]["lr"],
                        "examples_per_s": seen * world / (now - window_t),
                    }
                )
                bar.set_postfix(loss=f"{mean_loss:.3f}")
                seen, window_t, loop.window = 0, now, [0.0, 0]
            timed_out = out_of_time()
            if (t.eval_every and loop.step % t.eval_every == 0) or timed_out:
                if run.end_evaluation(select(), timed_out, time.time() - start):
                    stop = True
                    break
        if stop:
            break
        loop.epoch_seconds.append(time.time() - epoch_t)
        loop.epoch += 1
        loop.batch_pos = 0
        patience_out = select() if not t.eval_every or loop.step % t.eval_every else False
        stop = run.end_evaluation(patience_out, out_of_time(), time.time() - start)
    bar.close()

    # --- the best model on dev and test ------------------------------------------------------------------------------
    eval_model = run.eval_model
    eval_model.load_state_dict(safe_load(run.out / "model" / "weights.pt", "weights"), strict=True)
    final = {name: run.evaluate(name) for name in run.splits if name != "train"}
    summary = {
        "task": cfg.task,
        "metric": run.metric,
        "use_elmo": cfg.model.use_elmo,
        **_loop_summary(loop),
        "cache_seconds": run.cache_seconds,
        "features": t.features if run.bilm_sha else "none",
        **final,
        **mix_summary(eval_model.encoder),
    }
    if run.domain_fit is not None:
        summary["domain_fit"] = run.domain_fit
    with _writing(run.out, run.out / "metrics.jsonl", "the metrics", run.run_print):
        run.log.close()
    if main:
        with _writing(run.out, run.out / "model", "the model", run.run_print):
            save_task_model(
                run.out / "model", eval_model, cfg, run.lexicon, run.bilm_sha, {**final, "step": loop.best_step}
            )
        with _writing(run.out, run.out / "results.json", "the results", run.run_print):
            write_json(run.out / "results.json", summary)
        _write_plots(run.out, cfg, run.metric, eval_model.encoder, run.run_print)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    for f in run.features.values():
        if f is not None and hasattr(f, "close"):
            f.close()
    return summary
