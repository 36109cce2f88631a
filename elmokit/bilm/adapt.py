"""``elmokit adapt``: fit a biLM to unlabelled text in one command (the ELMo paper's domain adaptation, section 5).

Both LMs continue training from their weights on the text (``pretrain --init-from``), side by side in two
processes of one thread each when the machine has two cores, each with a third of its pretraining learning rate
and a cosine schedule over at most ``epochs`` passes, sized to fit ``minutes`` by a training step timed on this
machine before the runs start (so the schedule ends inside the budget rather than being cut by it). Every twentieth
line (at most 2,000) is held out, or ``dev`` is used, and both directions' perplexity per piece there is measured
before and after. The adapted pair is bundled at ``out``; the runs and
``adapt.json`` (the figures) stay in ``out.work/``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from elmokit.core.errors import ElmokitError


def split_text(lines: list[str], dev: list[str] | None) -> tuple[list[str], list[str]]:
    """``(train, dev)``: ``dev`` as given, or every twentieth non-empty line (at most 2,000), held out."""
    lines = [x for x in lines if x.strip()]
    if dev is not None:
        return lines, [x for x in dev if x.strip()]
    step = max(20, math.ceil(len(lines) / 2000))
    held = [x for i, x in enumerate(lines) if i % step == step - 1]
    return [x for i, x in enumerate(lines) if i % step != step - 1], held


def seconds_per_step(model, tokens, batch: int, bptt: int, steps: int = 4) -> float:
    """Seconds one training step (forward, backward, Adam) takes at ``batch`` x ``bptt`` on one thread, on this
    machine: the median of ``steps`` timed after one warm-up, on a copy of the LM (the LM itself is untouched)."""
    import copy
    import statistics
    import time

    import torch

    m = copy.deepcopy(model).train()
    for p in m.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(m.parameters(), lr=1e-6)
    need = batch * (bptt + 1)
    ids = torch.as_tensor(np.resize(np.asarray(tokens[:need], dtype=np.int64), need)).view(batch, bptt + 1)
    x, y = ids[:, :-1], ids[:, 1:]  # (batch, bptt) each
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each adapting run trains
    try:
        times = []
        for i in range(steps + 1):
            t0 = time.perf_counter()
            loss, _ = m(x, y, None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times)


def plan_steps(train_pieces: int, batch: int, bptt: int, minutes: float, epochs: int, step_seconds: float) -> int:
    """Steps that fit ``minutes`` at ``step_seconds`` each (85%: the rest is start-up, checkpoints and the final
    validation), at most ``epochs`` passes over ``train_pieces``, at least 20."""
    per_epoch = max(train_pieces // (batch * bptt), 1)
    fit = int(0.85 * minutes * 60 / max(step_seconds, 1e-6))
    return max(min(epochs * per_epoch, fit), 20)


def write_config(cfg: dict, work: Path, vocab: Path, cache_dir: str, batch: int, steps: int, minutes: float) -> Path:
    """The adapting runs' pretraining config (the source LM's, continued on ``work``'s text: a third of its learning
    rate, a cosine schedule over ``steps``, one thread), written to ``work/adapt.yaml``."""
    t = cfg["train"]
    cfg["data"].update(
        {
            "vocab": str(vocab),
            "train": [str(work / "train.txt")],
            "valid": [str(work / "dev.txt")],
            "cache_dir": cache_dir,
            "num_proc": 1,
        }
    )
    t.update(
        {
            "batch_size": batch,
            "lr": t["lr"] / 3,
            "warmup_steps": min(50, steps // 10),
            "schedule": "cosine",
            "max_steps": steps,
            "schedule_steps": 0,
            "max_minutes": minutes * 1.1,
            "max_cpu_minutes": 0.0,
            "eval_every": 0,
            "eval_max_tokens": 0,
            "checkpoint_every": max(steps // 4, 50),
            "threads": 1,
            "grad_accum": 1,
            "stop_at_step": 0,
            "trackers": [],
        }
    )
    config = work / "adapt.yaml"
    config.write_text("# written by elmokit adapt\n" + yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return config


def run_directions(work: Path, config: Path, src: Path, overwrite: bool, side_by_side: bool) -> None:
    """``pretrain --init-from`` for both directions into ``work/forward`` and ``work/backward`` (at once when
    ``side_by_side``), each logging to ``work/<direction>.log``; a direction already finished is skipped.

    Raises:
        ElmokitError: a run failed (its log's last line, and how to resume).
    """
    procs = []
    for d in ("forward", "backward"):
        run = work / d
        if (run / "model" / "manifest.json").is_file() and not overwrite:
            continue
        cmd = [
            sys.executable,
            "-m",
            "elmokit.cli",
            "pretrain",
            "--config",
            str(config),
            "--direction",
            d,
            "--out",
            str(run),
            "--init-from",
            str(src / d),
            "--quiet",
            *(["--overwrite"] if overwrite else ["--resume"]),
        ]
        log = open(work / f"{d}.log", "w", encoding="utf-8")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        procs.append((d, p, log))
        if not side_by_side:
            p.wait()
    for d, p, log in procs:
        p.wait()
        log.close()
        if p.returncode:
            tail = (work / f"{d}.log").read_text(encoding="utf-8").strip().splitlines()[-1:]
            raise ElmokitError(
                f"adapting the {d} LM failed ({tail[0] if tail else 'no output'}); see "
                f"{work / (d + '.log')}, then run the same command again (it resumes)"
            )


def adapt(
    bilm: str,
    lines: list[str],
    out: str,
    minutes: float = 10.0,
    dev: list[str] | None = None,
    epochs: int = 4,
    cache_dir: str = "~/.cache/elmokit",
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Adapt both LMs of the bundle ``bilm`` to ``lines`` and bundle them at ``out``; returns the figures."""
    from elmokit.bilm.bundle import write_bundle
    from elmokit.core.files import write_json
    from elmokit.lm.corpus import encode_corpus
    from elmokit.lm.evaluate import evaluate_model
    from elmokit.lm.model_dir import load_model

    src = Path(bilm)
    if not (src / "forward").is_dir() or not (src / "backward").is_dir():
        raise ElmokitError(f"{bilm}: not a biLM bundle (no forward/ and backward/); make one with `elmokit bundle`")
    dst = Path(out)
    if (dst / "manifest.json").exists() and not overwrite:
        raise ElmokitError(f"{out}: a biLM is already there; pass --overwrite to adapt again, or another --out")
    work = Path(f"{out}.work")
    work.mkdir(parents=True, exist_ok=True)
    train_lines, dev_lines = split_text(lines, dev)
    if len(train_lines) < 10 or not dev_lines:
        raise ElmokitError(
            f"{len(train_lines)} lines of text to adapt on (and {len(dev_lines)} held out): give at "
            f"least a few hundred sentences"
        )
    for name, part in (("train", train_lines), ("dev", dev_lines)):
        tmp = work / f".{name}.txt.tmp"
        tmp.write_text("\n".join(part) + "\n", encoding="utf-8")
        tmp.replace(work / f"{name}.txt")
    fwd = load_model(src / "forward")
    cfg = yaml.safe_load((fwd.path / "config.yaml").read_text(encoding="utf-8"))
    t = cfg["train"]
    tokens = encode_corpus(
        [str(work / "train.txt")], fwd.vocab, cache_dir, 1, cfg["data"]["max_line_chars"], progress=progress
    )  # encoded once here; both runs read the cache
    encode_corpus([str(work / "dev.txt")], fwd.vocab, cache_dir, 1, cfg["data"]["max_line_chars"], progress=False)
    batch, bptt = min(t["batch_size"], 64), t["bptt"]
    while batch > 8 and len(tokens) // batch < bptt * 4:  # a small text: fewer streams, so each is long enough
        batch //= 2
    step_s = seconds_per_step(fwd.model, tokens, batch, bptt)
    steps = plan_steps(len(tokens), batch, bptt, minutes, epochs, step_s)
    config = write_config(cfg, work, fwd.path / "vocab.model", cache_dir, batch, steps, minutes)
    before = {
        d: evaluate_model(str(src / d), [str(work / "dev.txt")], cache_dir=cache_dir, progress=False)
        for d in ("forward", "backward")
    }
    side_by_side = (os.cpu_count() or 1) >= 2
    run_directions(work, config, src, overwrite, side_by_side)
    after = {
        d: evaluate_model(str(work / d), [str(work / "dev.txt")], cache_dir=cache_dir, progress=False)
        for d in ("forward", "backward")
    }
    if dst.exists():  # only with overwrite (checked above)
        shutil.rmtree(dst)
    write_bundle(work / "forward", work / "backward", dst)
    result = {
        "bilm": str(bilm),
        "out": str(out),
        "train_lines": len(train_lines),
        "dev_lines": len(dev_lines),
        "train_pieces": int(len(tokens)),
        "steps": steps,
        "seconds_per_step_measured": step_s,
        "batch_size": batch,
        "bptt": bptt,
        "lr": t["lr"],
        "minutes_budget": minutes,
        "side_by_side": side_by_side,
        "dev_ppl_before": {d: r["subword_ppl"] for d, r in before.items()},
        "dev_ppl_after": {d: r["subword_ppl"] for d, r in after.items()},
    }
    write_json(work / "adapt.json", result)
    return result
