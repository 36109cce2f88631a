"""``elmokit adapt``: fit a biLM to unlabelled text in one command (the ELMo paper's domain adaptation, section 5).

Both LMs continue training from their weights on the text (``pretrain --init-from``), side by side in two
processes of one thread each when the machine has two cores, each with a third of its pretraining learning rate
and a cosine schedule over at most ``epochs`` passes, sized to fit ``minutes`` by a training step timed on this
machine before the runs start (so the schedule ends inside the budget rather than being cut by it). Every twentieth
line (at most 2,000) is held out, or ``dev`` is used, and both directions' perplexity per piece there is measured
before and after. The adapted pair is bundled at ``out``; the runs, ``plan.json`` (the plan, recorded before the runs
start) and ``adapt.json`` (the figures, with the steps each run did) stay in ``out.work/``.

Interrupted, even by SIGKILL (the runs die with the command), the same command resumes with the recorded plan. An
``--out`` that holds anything but a biLM this command adapted there is refused, and that one is replaced only with
``overwrite``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from elmokit.bilm.char_pair import INIT_DIR
from elmokit.core.errors import ElmokitError


def split_text(lines: list[str], dev: list[str] | None) -> tuple[list[str], list[str]]:
    """``(train, dev)``: ``dev`` as given, or every twentieth non-empty line (at most 2,000), held out."""
    lines = [x for x in lines if x.strip()]
    if dev is not None:
        return lines, [x for x in dev if x.strip()]
    step = max(20, math.ceil(len(lines) / 2000))
    held = [x for i, x in enumerate(lines) if i % step == step - 1]
    return [x for i, x in enumerate(lines) if i % step != step - 1], held


def seconds_per_step(model, tokens, batch: int, bptt: int, steps: int = 4, xy=None) -> float:
    """Seconds one training step (forward, backward, Adam) takes at ``batch`` x ``bptt`` on one thread, on this
    machine: the median of ``steps`` timed after one warm-up, on a copy of the LM (the LM itself is untouched).
    ``xy``: the inputs and targets to time (a word LM's :class:`~elmokit.lm.words.CharInputs`), else ``tokens``'."""
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
    x, y = (ids[:, :-1], ids[:, 1:]) if xy is None else xy  # (batch, bptt) each
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


# A pretraining child runs the very package its parent runs, whatever the current directory holds (a folder named
# ``elmokit`` there must not shadow it; ``python -P`` is 3.11+ only): the current directory leaves sys.path, the
# parent's ``elmokit/__init__.py`` is loaded by its path, and the child dies with its parent. argv: the parent's pid,
# that file, then the command's arguments.
CHILD_MAIN = """import importlib.util, os, sys
if sys.path and sys.path[0] == "":
    del sys.path[0]
init = sys.argv[2]
spec = importlib.util.spec_from_file_location("elmokit", init, submodule_search_locations=[os.path.dirname(init)])
sys.modules["elmokit"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sys.modules["elmokit"])
from elmokit.core.run_guard import die_with_parent
die_with_parent(int(sys.argv[1]))
from elmokit.cli import main
main(sys.argv[3:], prog_name="elmokit")
"""


def child_command(args: list[str]) -> list[str]:
    """The command line of an ``elmokit`` child process with ``args`` (see :data:`CHILD_MAIN`)."""
    import elmokit

    return [sys.executable, "-c", CHILD_MAIN, str(os.getpid()), str(Path(elmokit.__file__).resolve()), *args]


def run_directions(work: Path, config: Path, src: Path, side_by_side: bool, char: bool = False) -> None:
    """``pretrain --init-from ... --resume`` for both directions into ``work/forward`` and ``work/backward`` (at
    once when ``side_by_side``), each logging to ``work/<direction>.log``; a direction already finished is skipped.
    The children die with this process (a kill of it leaves no writer behind); each run directory takes one writer.
    ``char``: ``src`` is a character biLM, which each run starts from (``pretrain --init-from BILM``), its token
    encoder frozen (see :func:`_adapt_char`).

    Raises:
        ElmokitError: a run failed (its log's last line, and how to resume), once every run has ended.
    """
    procs = []
    for d in ("forward", "backward"):
        run = work / d
        if (run / "model" / "manifest.json").is_file():
            continue
        args = ["pretrain", "--config", str(config), "--direction", d, "--out", str(run)]
        init = [str(src), f"model.encoder_from={run / INIT_DIR}"] if char else [str(src / d)]
        cmd = child_command([*args, "--quiet", "--resume", "--init-from", *init])
        log = open(work / f"{d}.log", "a", encoding="utf-8")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        procs.append((d, p, log))
        if not side_by_side:
            p.wait()
    for _, p, log in procs:  # all of them first: a failed one does not leave the other running unwatched
        p.wait()
        log.close()
    for d, p, _ in procs:
        if p.returncode:
            tail = (work / f"{d}.log").read_text(encoding="utf-8").strip().splitlines()[-1:]
            raise ElmokitError(
                f"adapting the {d} LM failed ({tail[0] if tail else f'exit code {p.returncode}'}); see "
                f"{work / (d + '.log')}, then run the same command again (it resumes)"
            )


MARKER = ".elmokit-adapt"  # in OUT.work: this directory is adapt's
PLAN = "plan.json"  # in OUT.work: the plan (schedule, measured speed), written before the runs start
_OPTION = {  # the inputs a plan is made for, as the command names them
    "bilm": "BILM",
    "bilm_sha256": "BILM (other weights)",
    "train_sha256": "text (FILE...)",
    "dev_sha256": "held-out text (--dev)",
    "minutes": "--minutes",
    "epochs": "--epochs",
}


def _is_bundle(d: Path) -> bool:
    from elmokit.bilm.bundle import BUNDLE_FORMAT

    try:
        return json.loads((d / "manifest.json").read_text(encoding="utf-8")).get("format") == BUNDLE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _is_adapt_work(work: Path) -> bool:
    return (work / MARKER).is_file() or (work / "adapt.yaml").is_file()  # adapt.yaml: made before the marker


def check_out(src: Path, dst: Path, work: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that would lose anything not adapt's own: the biLM being adapted (or a directory holding
    it or inside it), a file, a directory of other files or a biLM that this command did not make there, an
    ``OUT.work`` of other files; and a biLM adapted there already, without ``overwrite``. An empty directory is
    taken.

    Raises:
        ElmokitError: the path, what it holds and what to do (nothing was changed).
    """
    s, o = src.resolve(), dst.resolve()
    if o == s or s in o.parents or o in s.parents:
        raise ElmokitError(
            f"--out {dst}: is the biLM being adapted ({src}), or holds or is inside it; the adapted biLM goes to "
            f"a directory of its own: give another --out"
        )
    ours = work.is_dir() and _is_adapt_work(work)
    if (work.exists() or work.is_symlink()) and not ours and (not work.is_dir() or any(work.iterdir())):
        raise ElmokitError(
            f"{work}: exists and was not written by elmokit adapt (it keeps the runs of --out {dst} there); "
            f"move it away or give another --out (nothing was changed)"
        )
    if not (dst.exists() or dst.is_symlink()) or (dst.is_dir() and not dst.is_symlink() and not any(dst.iterdir())):
        return
    if _is_bundle(dst) and ours and not dst.is_symlink():
        if (work / "adapt.json").is_file() and not overwrite:
            raise ElmokitError(
                f"{dst}: a biLM this command adapted is already there; pass --overwrite to adapt again, or "
                f"another --out"
            )
        return  # this run's own (finished with --overwrite, or bundled by a run killed before adapt.json)
    what = (
        "a symbolic link"
        if dst.is_symlink()
        else "a biLM that elmokit adapt did not make there"
        if _is_bundle(dst)
        else "files that are not an adapted biLM"
        if dst.is_dir()
        else "a file"
    )
    raise ElmokitError(
        f"{dst}: exists and is {what}; elmokit adapt writes to a new (or empty) directory, or over a biLM it "
        f"adapted there with --overwrite: give another --out (nothing was changed)"
    )


def _sha256_lines(lines: list[str]) -> str:
    import hashlib

    return hashlib.sha256(("\n".join(lines) + "\n").encode("utf-8")).hexdigest()


def _forget_runs(work: Path) -> None:
    """Remove the plan and both runs (the plan first, so a kill in between leaves no plan for older runs)."""
    (work / PLAN).unlink(missing_ok=True)
    for d in ("forward", "backward"):
        shutil.rmtree(work / d, ignore_errors=True)
        (work / f"{d}.log").unlink(missing_ok=True)


def read_plan(work: Path, inputs: dict, overwrite: bool) -> dict | None:
    """The plan recorded in ``work`` for these ``inputs`` (a run resumed), or None: none recorded, or one for other
    inputs (then the runs made for it are removed, which needs ``overwrite`` once either has started).

    Raises:
        ElmokitError: the runs were started with other inputs (the first differing one named), without overwrite.
    """
    try:
        plan = json.loads((work / PLAN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        plan = None
    if isinstance(plan, dict) and plan.get("inputs") == inputs:
        return plan
    started = (work / "forward").exists() or (work / "backward").exists()
    if isinstance(plan, dict) and started and not overwrite:
        before = plan.get("inputs") or {}
        key = next((k for k in inputs if before.get(k) != inputs[k]), "")
        was, now = before.get(key), inputs.get(key)
        change = f" ({was} then, {now} now)" if key in ("minutes", "epochs", "bilm") else ""
        raise ElmokitError(
            f"{work}: its runs were started with a different {_OPTION.get(key, 'input')}{change}; run the same "
            f"command as before to resume them, pass --overwrite to start over, or give another --out"
        )
    _forget_runs(work)
    return None


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
    """Adapt both LMs of the bundle ``bilm`` to ``lines`` and bundle them at ``out``; returns the figures.

    Interrupted (even by SIGKILL, which takes the runs down with it), the same call resumes: the plan (batch,
    schedule steps, the measured step time) is recorded in ``out.work/plan.json`` before the runs start and used
    again, so the resumed runs continue the same schedule. When the plan, not the clock (``minutes`` x 1.1 per
    run), ends the runs, a resumed adaptation ends with the weights of an uninterrupted one, bit for bit.
    ``overwrite``: adapt again over a finished adaptation at ``out`` (or start over runs begun with other inputs).
    """
    from elmokit.bilm.char_pair import is_char_bilm
    from elmokit.core.run_guard import hold_run_lock, release_run_lock

    src = Path(bilm)
    char = is_char_bilm(src)
    if not char and (not (src / "forward").is_dir() or not (src / "backward").is_dir()):
        raise ElmokitError(f"{bilm}: not a biLM bundle (no forward/ and backward/); make one with `elmokit bundle`")
    dst = Path(out)
    work = Path(f"{out}.work")
    check_out(src, dst, work, overwrite)
    train_lines, dev_lines = split_text(lines, dev)
    if len(train_lines) < 10 or not dev_lines:
        raise ElmokitError(
            f"{len(train_lines)} lines of text to adapt on (and {len(dev_lines)} held out): give at "
            f"least a few hundred sentences"
        )
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).touch()
    hold_run_lock(work, 0, "elmokit adapt")
    try:
        if overwrite and (work / "adapt.json").is_file():  # a finished adaptation, to do again
            _forget_runs(work)
            (work / "adapt.json").unlink()
        inputs = {
            "bilm": str(src.resolve()),
            "bilm_sha256": _bundle_sha256(src),
            "train_sha256": _sha256_lines(train_lines),
            "dev_sha256": _sha256_lines(dev_lines),
            "minutes": minutes,
            "epochs": epochs,
        }
        plan = read_plan(work, inputs, overwrite)
        if char:
            return _adapt_char(src, dst, work, train_lines, dev_lines, inputs, plan, cache_dir)
        return _adapt(src, dst, work, train_lines, dev_lines, inputs, plan, cache_dir, progress)
    finally:
        release_run_lock(work)


def _bundle_sha256(src: Path) -> str:
    try:
        return str(json.loads((src / "manifest.json").read_text(encoding="utf-8")).get("sha256", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _adapt(
    src: Path,
    dst: Path,
    work: Path,
    train_lines: list[str],
    dev_lines: list[str],
    inputs: dict,
    plan: dict | None,
    cache_dir: str,
    progress: bool,
) -> dict:
    """:func:`adapt` once ``work`` is its own: the text, the plan (``plan``, or a new one recorded before the runs),
    the runs, the figures and the bundle."""
    from elmokit.bilm.bundle import write_bundle
    from elmokit.core.files import write_json
    from elmokit.lm.corpus import encode_corpus
    from elmokit.lm.evaluate import evaluate_model
    from elmokit.lm.model_dir import load_model

    minutes, epochs = inputs["minutes"], inputs["epochs"]
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
    if plan is None:
        batch, bptt = min(t["batch_size"], 64), t["bptt"]
        while batch > 8 and len(tokens) // batch < bptt * 4:  # a small text: fewer streams, so each is long enough
            batch //= 2
        step_s = seconds_per_step(fwd.model, tokens, batch, bptt)
        plan = {
            "inputs": inputs,
            "batch_size": batch,
            "bptt": bptt,
            "steps": plan_steps(len(tokens), batch, bptt, minutes, epochs, step_s),
            "seconds_per_step_measured": step_s,
            "train_pieces": int(len(tokens)),
        }
        write_json(work / PLAN, plan)  # before the runs start: a resume continues this schedule
    batch, bptt, steps, step_s = plan["batch_size"], plan["bptt"], plan["steps"], plan["seconds_per_step_measured"]
    config = write_config(cfg, work, fwd.path / "vocab.model", cache_dir, batch, steps, minutes)
    before = {
        d: evaluate_model(str(src / d), [str(work / "dev.txt")], cache_dir=cache_dir, progress=False)
        for d in ("forward", "backward")
    }
    side_by_side = (os.cpu_count() or 1) >= 2
    run_directions(work, config, src, side_by_side)
    after = {
        d: evaluate_model(str(work / d), [str(work / "dev.txt")], cache_dir=cache_dir, progress=False)
        for d in ("forward", "backward")
    }
    done = {
        d: json.loads((work / d / "model" / "manifest.json").read_text(encoding="utf-8")).get("summary", {})
        for d in ("forward", "backward")
    }
    write_bundle(work / "forward", work / "backward", dst)  # aside, then renamed over what --out held
    result = {
        "bilm": str(src),
        "out": str(dst),
        "train_lines": len(train_lines),
        "dev_lines": len(dev_lines),
        "train_pieces": int(len(tokens)),
        "steps": {d: s.get("steps") for d, s in done.items()},  # what each run did
        "stopped_by": {d: s.get("stopped_by") for d, s in done.items()},
        "planned_steps": steps,
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


HEAD_SHARE = 0.15  # of a character biLM's adaptation steps, its new softmax trains alone first (measured: README)
ADAPT_LR = 2e-3 / 3  # a character biLM's adaptation rate: a third of pretrain's default (an imported one has no own)
FULL_SOFTMAX_WORDS = 20000  # up to this many words the adapting runs train the full softmax, beyond it the sampled one


def _adapt_char(
    src: Path,
    dst: Path,
    work: Path,
    train_lines: list[str],
    dev_lines: list[str],
    inputs: dict,
    plan: dict | None,
    cache_dir: str,
) -> dict:
    """:func:`adapt` for a character biLM (``import-elmo``'s, or a char_cnn pair bundled here): the word vocabulary
    (the biLM's when it has a softmax, else one of the text), the plan, both directions from the biLM
    (``pretrain --init-from BILM``, a new softmax trained alone for the first :data:`HEAD_SHARE` of the steps), the
    figures and the bundle (:func:`elmokit.bilm.char_pair.write_char_pair`).

    The token encoder stays frozen in both runs (``model.encoder_from`` = the run's own start, not trained): the
    biLM's files hold one character CNN for both directions, so two runs that each trained theirs would leave two
    encoders, one of which the bundle would have to drop, with the LSTMs that learned to read it; frozen, both
    adapted LSTM stacks read the encoder the pair is bundled with.
    """
    from elmokit.bilm.bundle import load_bilm
    from elmokit.bilm.char_pair import bilm_shape, write_char_pair
    from elmokit.core.config import PretrainConfig, to_dict
    from elmokit.core.files import write_json
    from elmokit.lm.corpus import StreamBatcher
    from elmokit.lm.evaluate import evaluate_model
    from elmokit.lm.model import LanguageModel
    from elmokit.lm.model_dir import load_model
    from elmokit.lm.words import char_mapper, encode_word_corpus, load_word_vocab, num_chars, train_word_vocab

    minutes, epochs = inputs["minutes"], inputs["epochs"]
    for name, part in (("train", train_lines), ("dev", dev_lines)):
        tmp = work / f".{name}.txt.tmp"
        tmp.write_text("\n".join(part) + "\n", encoding="utf-8")
        tmp.replace(work / f"{name}.txt")
    bilm = load_bilm(src)
    shape = bilm_shape(bilm)
    if shape["chars"] != "bytes":
        raise ElmokitError(f"{src}: reads characters with a lexicon; adapt takes biLMs that read bytes (bilm-tf's)")
    vocab_path = work / "vocab.txt"
    if plan is None or not vocab_path.is_file():  # a new plan (new text): a new vocabulary
        if bilm.has_softmax:  # its softmax's rows: kept, so the runs start from it
            vocab_path.write_text("".join(f"{w}\n" for w in bilm.words), encoding="utf-8")
        else:
            train_word_vocab([str(work / "train.txt")], str(work / "vocab"), command="elmokit adapt")
    vocab = load_word_vocab(vocab_path)
    new_head = not (bilm.has_softmax and list(bilm.words) == list(vocab.words))
    tokens = encode_word_corpus([str(work / "train.txt")], vocab, cache_dir, 20000)
    encode_word_corpus([str(work / "dev.txt")], vocab, cache_dir, 20000)
    cfg = PretrainConfig()
    for k, v in shape.items():
        setattr(cfg.model, k, v)
    cfg.model.size = "elmo" if shape["hidden_size"] >= 4096 else "small" if shape["hidden_size"] >= 1024 else "tiny"
    cfg.model.dropout = 0.1
    cfg.model.head = "full" if vocab.size <= FULL_SOFTMAX_WORDS else "sampled"
    cfg.model.num_samples = 8192
    cfg.data.max_line_chars = 20000
    cfg.train.lr = ADAPT_LR * 3  # write_config takes a third
    if plan is None:
        batch, bptt = 64, 20
        while batch > 8 and len(tokens.ids) // batch < bptt * 4:  # a small text: fewer streams, each long enough
            batch //= 2
        mapper = char_mapper("bytes", shape["max_chars"], vocab_path)
        lm = LanguageModel(cfg.model, vocab.size, num_chars=num_chars(mapper), char_pad_id=mapper.pad_id)
        table = tokens.table(vocab, mapper)
        xy = StreamBatcher(tokens.ids, batch, bptt, 0, 1, False, table).batch(0)
        step_s = seconds_per_step(lm, tokens.ids, batch, bptt, xy=xy)
        steps = plan_steps(len(tokens.ids), batch, bptt, minutes, epochs, step_s)
        plan = {
            "inputs": inputs,
            "batch_size": batch,
            "bptt": bptt,
            "steps": steps,
            "head_steps": max(1, int(HEAD_SHARE * steps)) if new_head else 0,
            "seconds_per_step_measured": step_s,
            "train_words": int(len(tokens.ids)),
        }
        write_json(work / PLAN, plan)  # before the runs start: a resume continues this schedule
    batch, bptt, steps, step_s = plan["batch_size"], plan["bptt"], plan["steps"], plan["seconds_per_step_measured"]
    raw = to_dict(cfg)
    raw["model"] = {k: raw["model"][k] for k in ("size", "dropout", "head", "num_samples", *shape)}
    raw["train"]["head_steps"] = plan["head_steps"]
    config = write_config(raw, work, vocab_path, cache_dir, batch, steps, minutes)
    side_by_side = (os.cpu_count() or 1) >= 2
    run_directions(work, config, src, side_by_side, char=True)
    before = {  # the biLM as it came (its own softmax); a new softmax starts random: no figure before the head phase
        d: None
        if new_head
        else evaluate_model(str(work / d / INIT_DIR), [str(work / "dev.txt")], cache_dir=cache_dir, progress=False)
        for d in ("forward", "backward")
    }
    after = {
        d: evaluate_model(str(work / d), [str(work / "dev.txt")], cache_dir=cache_dir, progress=False)
        for d in ("forward", "backward")
    }
    done = {
        d: json.loads((work / d / "model" / "manifest.json").read_text(encoding="utf-8")).get("summary", {})
        for d in ("forward", "backward")
    }
    write_char_pair(load_model(work / "forward"), load_model(work / "backward"), dst)  # one encoder: frozen in both
    result = {
        "bilm": str(src),
        "out": str(dst),
        "train_lines": len(train_lines),
        "dev_lines": len(dev_lines),
        "train_words": plan["train_words"],
        "vocab": "the biLM's" if not new_head else f"{vocab.size} words of the text (a new softmax)",
        "steps": {d: s.get("steps") for d, s in done.items()},
        "stopped_by": {d: s.get("stopped_by") for d, s in done.items()},
        "planned_steps": steps,
        "head_steps": plan["head_steps"],
        "seconds_per_step_measured": step_s,
        "batch_size": batch,
        "bptt": bptt,
        "lr": ADAPT_LR,
        "minutes_budget": minutes,
        "side_by_side": side_by_side,
        "ppl_per": "word",
        "dev_ppl_before": {d: r and r["word_ppl"] for d, r in before.items()},
        "dev_ppl_after_head": {d: (s.get("head_valid") or {}).get("word_ppl") for d, s in done.items()},
        "dev_ppl_after": {d: r["word_ppl"] for d, r in after.items()},
    }
    write_json(work / "adapt.json", result)
    return result
