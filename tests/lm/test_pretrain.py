import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from elmokit.core.errors import CheckpointError, ConfigError
from elmokit.lm.model_dir import load_model
from elmokit.lm.optim import lr_lambda, schedule_budget_warning
from elmokit.lm.pretrain import pretrain


def losses(run: Path, split: str = "train") -> list[float]:
    recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in recs if r["split"] == split]


def weights(run: Path) -> dict:
    return torch.load(run / "model" / "weights.pt", weights_only=True)


def test_run_writes_model_metrics_curves(tiny_overrides, tmp_path):
    model_dir = pretrain(None, "backward", tmp_path / "run", tiny_overrides, progress=False)
    run = tmp_path / "run"
    assert (run / "curves.png").stat().st_size > 1000
    recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 9))
    assert {"loss", "ppl", "tokens_per_s", "lr"} <= set(train[0])
    valid = [r for r in recs if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [4, 8] and all(r["runaway_streams"] == 0 for r in valid)
    manifest = load_model(model_dir).manifest
    assert manifest["direction"] == "backward" and manifest["summary"]["steps"] == 8
    assert manifest["summary"]["schedule_done"] == 1.0
    assert train[-1]["loss"] < train[0]["loss"]


def test_budget_that_cuts_the_schedule_is_warned_about():
    # 100 steps in 120 s = 1.2 s/step; 60 minutes reach step 3000
    assert schedule_budget_warning(100, 0, 3000, 120.0, 60, "cosine") == ""
    msg = schedule_budget_warning(100, 0, 4000, 120.0, 60, "cosine")
    assert "ends near step 3000 of 4000" in msg and "train.max_steps=2910" in msg
    # a resumed run measures its own steps: 50 steps since step 1000 in 60 s
    assert "ends near step 3000 of 4000" in schedule_budget_warning(1050, 1000, 4000, 60.0, 40, "linear")


def test_resume_is_exact(tiny_overrides, tmp_path):
    ov = [*tiny_overrides, "model.dropout=0.2", "train.checkpoint_every=3"]  # dropout: the RNG must resume too
    pretrain(None, "forward", tmp_path / "full", ov, progress=False)
    pretrain(None, "forward", tmp_path / "cut", [*ov, "train.stop_at_step=5"], progress=False)
    assert not (tmp_path / "cut" / "model").exists()
    assert (tmp_path / "cut" / "checkpoints" / "step-00000005").is_dir()
    pretrain(None, "forward", tmp_path / "cut", ov, resume=True, progress=False)
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")
    assert losses(tmp_path / "cut", "valid") == losses(tmp_path / "full", "valid")
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_refuses_to_overwrite_without_resume(tiny_overrides, tmp_path):
    pretrain(None, "forward", tmp_path / "r", [*tiny_overrides, "train.stop_at_step=4"], progress=False)
    with pytest.raises(ConfigError, match="pass --resume"):
        pretrain(None, "forward", tmp_path / "r", tiny_overrides, progress=False)


def test_corrupt_checkpoint_on_resume(tiny_overrides, tmp_path):
    pretrain(None, "forward", tmp_path / "r", [*tiny_overrides, "train.stop_at_step=4"], progress=False)
    (tmp_path / "r" / "checkpoints" / "step-00000004" / "train_state.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="train_state.pt: sha256 differs from the manifest.*no intact checkpoint"):
        pretrain(None, "forward", tmp_path / "r", tiny_overrides, resume=True, progress=False)


def test_init_from_and_vocab_mismatch(tiny_overrides, tmp_path, corpus):
    src = pretrain(None, "forward", tmp_path / "src", tiny_overrides, progress=False)
    ft = pretrain(
        None,
        "forward",
        tmp_path / "ft",
        [*tiny_overrides, "train.max_steps=1", "train.lr=0"],
        init_from=str(src),
        progress=False,
    )
    a, b = weights(tmp_path / "src"), weights(tmp_path / "ft")
    assert all(torch.equal(a[k], b[k]) for k in a)  # lr=0: the fine-tune starts exactly from the source
    from elmokit.lm.vocab import train_vocab

    train_vocab([str(corpus["train"])], str(tmp_path / "other"), size=330, num_threads=1)
    other = [o for o in tiny_overrides if not o.startswith("data.vocab")] + [f"data.vocab={tmp_path}/other.model"]
    with pytest.raises(CheckpointError, match="was trained with vocab sha256"):
        pretrain(None, "forward", tmp_path / "ft2", other, init_from=str(src), progress=False)
    assert ft.is_dir()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch(n: int) -> list[str]:
    """``accelerate launch`` of ``n`` gloo processes on this machine, on a free port (what the README shows)."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(n),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_two_gloo_processes_equal_one(tiny_overrides, tmp_path, direction):
    """2 processes x 4 streams each == 1 process x 8 streams (same shared negatives, no dropout), streams
    restarting from zero by their global index (train.reset_every)."""
    ov = [*tiny_overrides, "train.checkpoint_every=0", "train.reset_every=3"]
    pretrain(None, direction, tmp_path / "one", ov, progress=False)
    cmd = [
        *accelerate_launch(2),
        "-m",
        "elmokit.cli",
        "pretrain",
        "--direction",
        direction,
        "--out",
        str(tmp_path / "two"),
        "--quiet",
        *ov,
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 8
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-5
    for a, b in zip(losses(tmp_path / "one", "valid"), losses(tmp_path / "two", "valid")):
        assert abs(a - b) < 1e-5


def test_grad_accumulation_equals_the_full_batch(tiny_overrides, tmp_path):
    """Micro-batches split the streams; with the full softmax (no per-micro-batch negatives) the run is the same."""
    ov = [*tiny_overrides, "model.head=full", "train.checkpoint_every=0", "train.reset_every=3"]
    pretrain(None, "forward", tmp_path / "a", ov, progress=False)
    pretrain(None, "forward", tmp_path / "b", [*ov, "train.grad_accum=2"], progress=False)
    for x, y in zip(losses(tmp_path / "a"), losses(tmp_path / "b")):
        assert abs(x - y) < 1e-5
    with pytest.raises(ConfigError, match="not divisible by train.grad_accum"):
        pretrain(None, "forward", tmp_path / "c", [*ov, "train.grad_accum=3"], progress=False)


@pytest.mark.slow
def test_sigkill_then_resume_is_exact(tiny_overrides, tmp_path):
    """A real kill -9 somewhere after a checkpoint; --resume ends with the weights of an uninterrupted run."""
    import signal
    import time

    ov = [
        *tiny_overrides,
        "model.dropout=0.1",
        "train.max_steps=300",
        "train.checkpoint_every=25",
        "train.eval_every=0",
        "train.log_every=25",
    ]
    pretrain(None, "forward", tmp_path / "full", ov, progress=False)
    cmd = [
        sys.executable,
        "-m",
        "elmokit.cli",
        "pretrain",
        "--direction",
        "forward",
        "--out",
        str(tmp_path / "cut"),
        "--quiet",
        *ov,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = tmp_path / "cut" / "checkpoints" / "step-00000050"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "cut" / "model").exists(), "the run finished before it could be killed"
    res = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")


def test_schedule_steps_stops_the_run_early_on_the_longer_schedule():
    from elmokit.core.config import PretrainConfig, TrainConfig

    long, cut = PretrainConfig(), PretrainConfig()
    long.train = TrainConfig(warmup_steps=10, schedule="cosine", min_lr_ratio=0.05)
    cut.train = TrainConfig(warmup_steps=10, schedule="cosine", min_lr_ratio=0.05, schedule_steps=100)
    f_long, f_cut = lr_lambda(long, 100), lr_lambda(cut, 60)  # a 60-step run on the 100-step schedule
    assert [f_cut(s) for s in range(60)] == [f_long(s) for s in range(60)]
    assert f_cut(59) > 0.3 and lr_lambda(long, 60)(59) == pytest.approx(0.05, abs=1e-3)  # it ends undecayed


def test_a_cpu_budget_ends_the_run_and_records_are_timed(tiny_overrides, tmp_path):
    ov = [*tiny_overrides, "train.max_steps=400", "train.schedule=constant", "train.max_cpu_minutes=0.002"]
    model_dir = pretrain(None, "forward", tmp_path / "run", ov, progress=False)
    summary = load_model(model_dir).manifest["summary"]
    assert summary["stopped_by"] == "time budget" and summary["steps"] < 400
    assert summary["cpu_minutes_last_run"] >= 0.002
    recs = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    cpu = [r["cpu_s"] for r in recs if r["split"] == "train"]
    assert cpu == sorted(cpu) and all("wall_s" in r for r in recs)
    with pytest.raises(ConfigError, match="max_cpu_minutes"):
        pretrain(None, "forward", tmp_path / "bad", [*tiny_overrides, "train.max_cpu_minutes=-1"], progress=False)


def test_a_run_refused_before_it_starts_leaves_no_directory(tiny_overrides, tmp_path):
    """An empty corpus is refused in one line, and the --out it was given is not left behind holding a lock file."""
    from elmokit.core.errors import ElmokitError

    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    out = tmp_path / "run"
    with pytest.raises(ElmokitError):
        pretrain(None, "forward", out, [*tiny_overrides, f"data.train={empty}"], progress=False)
    assert not out.exists()


def test_epoch_boundary_carries_the_state_unless_reset(tiny_overrides, corpus, tmp_path):
    """train.epoch_state: carry (the default) goes on from each stream's end into its start at a new epoch, reset
    restarts every stream from zero; the two agree up to the boundary and differ after it, and a run cut at the
    boundary resumes exactly (the carried state is in the checkpoint)."""
    short = tmp_path / "short.txt"  # the first 1% of the corpus: an epoch of a few steps
    lines = Path(corpus["train"]).read_text(encoding="utf-8").splitlines()
    short.write_text("\n".join(lines[: len(lines) // 100]) + "\n", encoding="utf-8")
    tiny = [*tiny_overrides, f"data.train={short}"]
    probe = tmp_path / "probe"
    pretrain(None, "forward", probe, [*tiny, "train.stop_at_step=1"], progress=False)
    spe = json.loads((probe / "run.json").read_text())["steps_per_epoch"]
    assert 2 <= spe <= 40, spe
    ov = [
        *tiny,
        f"train.max_steps={spe + 3}",
        "train.eval_every=0",
        f"train.checkpoint_every={spe}",
        "train.reset_every=0",
    ]
    pretrain(None, "forward", tmp_path / "carry", ov, progress=False)
    pretrain(None, "forward", tmp_path / "reset", [*ov, "train.epoch_state=reset"], progress=False)
    carry, reset = losses(tmp_path / "carry"), losses(tmp_path / "reset")
    assert carry[:spe] == reset[:spe]
    assert all(a != b for a, b in zip(carry[spe:], reset[spe:], strict=True))
    pretrain(None, "forward", tmp_path / "cut", [*ov, f"train.stop_at_step={spe}"], progress=False)
    pretrain(None, "forward", tmp_path / "cut", ov, resume=True, progress=False)
    assert losses(tmp_path / "cut") == carry
    with pytest.raises(ConfigError, match="train.epoch_state must be carry or reset"):
        pretrain(None, "forward", tmp_path / "bad", [*tiny_overrides, "train.epoch_state=zero"], progress=False)


def test_staggered_restarts_change_the_run_only_where_due(tiny_overrides, tmp_path):
    """train.reset_every=N: every stream restarts once in N steps, a few at each step; a run without restarts
    agrees up to the first one and differs after (at N=4 streams 0-1 of 8 are due at steps ≡ 0, whose first state
    is zero anyway, streams 2-3 at steps ≡ 1: the second step is the first to change)."""
    ov = [*tiny_overrides, "train.eval_every=0", "train.checkpoint_every=0"]
    pretrain(None, "forward", tmp_path / "never", [*ov, "train.reset_every=0"], progress=False)
    pretrain(None, "forward", tmp_path / "every4", [*ov, "train.reset_every=4"], progress=False)
    never, every4 = losses(tmp_path / "never"), losses(tmp_path / "every4")
    assert never[0] == every4[0]
    assert all(a != b for a, b in zip(never[1:], every4[1:], strict=True))
    with pytest.raises(ConfigError, match="train.reset_every must be >= 0"):
        pretrain(None, "forward", tmp_path / "bad", [*tiny_overrides, "train.reset_every=-1"], progress=False)
