"""`elmokit pretrain`'s guards: a finished run is not replaced, --resume continues the same run only and from a
checkpoint whose files verify, a kill leaves nothing that a later run trips over, bad values fail at load time."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from elmokit.cli import main
from elmokit.core.errors import CheckpointError, ConfigError, CorpusError
from elmokit.lm.pretrain import pretrain


def records(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_finished_run_is_not_replaced_without_overwrite(tiny_overrides, tmp_path):
    ov = [*tiny_overrides, "train.checkpoint_every=0", "train.max_steps=3"]
    run = tmp_path / "r"
    pretrain(None, "forward", run, ov, progress=False)
    weights = (run / "model" / "weights.pt").read_bytes()
    n = len(records(run))
    with pytest.raises(ConfigError, match="holds a finished run .*pass --overwrite"):
        pretrain(None, "forward", run, ov, progress=False)
    with pytest.raises(ConfigError, match="holds a finished run"):
        pretrain(None, "forward", run, ov, resume=True, progress=False)  # nothing to resume
    assert (run / "model" / "weights.pt").read_bytes() == weights and len(records(run)) == n
    pretrain(None, "forward", run, [*ov, "train.lr=0.02"], progress=False, overwrite=True)
    assert (run / "model" / "weights.pt").read_bytes() != weights


def test_checkpoints_without_resume_are_refused_and_overwrite_starts_over(tiny_overrides, tmp_path):
    run = tmp_path / "r"
    pretrain(None, "forward", run, [*tiny_overrides, "train.stop_at_step=4"], progress=False)
    with pytest.raises(ConfigError, match="has checkpoints already; pass --resume .*--overwrite"):
        pretrain(None, "forward", run, tiny_overrides, progress=False)
    pretrain(None, "forward", run, tiny_overrides, progress=False, overwrite=True)
    assert [r["step"] for r in records(run) if r["split"] == "train"] == list(range(1, 9))


@pytest.mark.parametrize(
    "change, key",
    [
        (["model.hidden_size=48"], "model.hidden_size"),
        (["train.batch_size=4"], "train.batch_size"),
        (["train.lr=0.05"], "train.lr"),
        (["train.max_steps=12"], "schedule_steps"),  # a longer cosine schedule is another run
    ],
)
def test_resume_refuses_a_changed_run(tiny_overrides, tmp_path, change, key):
    run = tmp_path / "r"
    pretrain(None, "forward", run, [*tiny_overrides, "train.stop_at_step=4"], progress=False)
    with pytest.raises(ConfigError, match=rf"step-00000004: was made with {key}=.*--resume continues the same run"):
        pretrain(None, "forward", run, [*tiny_overrides, *change], resume=True, progress=False)


def test_resume_refuses_another_vocab_or_corpus_and_accepts_budget_and_logging(tiny_overrides, corpus, tmp_path):
    from elmokit.lm.vocab import train_vocab

    run = tmp_path / "r"
    pretrain(None, "forward", run, [*tiny_overrides, "train.stop_at_step=4"], progress=False)
    other = tmp_path / "other"
    train_vocab([str(corpus["valid"])], str(other), size=320, num_threads=1, command="test")  # same size
    with pytest.raises(ConfigError, match="was made with train_tokens_sha256=|was made with vocab_sha256="):
        pretrain(None, "forward", run, [*tiny_overrides, f"data.vocab={other}.model"], resume=True, progress=False)
    moved = tmp_path / "moved.txt"
    moved.write_text(corpus["train"].read_text()[:-200], encoding="utf-8")  # another corpus
    with pytest.raises(ConfigError, match="was made with train_tokens_sha256="):
        pretrain(None, "forward", run, [*tiny_overrides, f"data.train={moved}"], resume=True, progress=False)
    same = tmp_path / "same.txt"  # the same text under another name is the same run
    shutil.copyfile(corpus["train"], same)
    pretrain(
        None,
        "forward",
        run,
        [*tiny_overrides, f"data.train={same}", "train.log_every=2", "train.eval_every=0", "train.max_minutes=30"],
        resume=True,
        progress=False,
    )
    assert (run / "model" / "manifest.json").exists()


def test_a_damaged_checkpoint_is_refused_and_an_earlier_one_can_be_picked(tiny_overrides, tmp_path):
    run = tmp_path / "r"
    ov = [*tiny_overrides, "train.checkpoint_every=2", "train.keep_checkpoints=3"]
    pretrain(None, "forward", run, [*ov, "train.stop_at_step=6"], progress=False)
    newest = run / "checkpoints" / "step-00000006"
    data = bytearray((newest / "weights.pt").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    (newest / "weights.pt").write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError,
        match=r"step-00000006/weights.pt: sha256 differs.*--resume-from "
        r".*step-00000004",
    ):
        pretrain(None, "forward", run, ov, resume=True, progress=False)
    for name in ("train_state.pt", "rank-0.pt", "fingerprint.json"):  # every file of a checkpoint is pinned
        assert name in json.loads((run / "checkpoints" / "step-00000004" / "manifest.json").read_text())["files"]
    with pytest.raises(CheckpointError, match="--resume-from 3: not a checkpoint of"):
        pretrain(None, "forward", run, ov, resume_from="3", progress=False)
    pretrain(None, "forward", run, ov, resume_from="4", progress=False)
    full = tmp_path / "full"
    pretrain(None, "forward", full, ov, progress=False)
    assert [r["loss"] for r in records(run)] == [r["loss"] for r in records(full)]


def test_a_torn_metrics_line_and_torn_checkpoint_dirs_are_survived(tiny_overrides, tmp_path):
    run = tmp_path / "r"
    pretrain(None, "forward", run, [*tiny_overrides, "train.stop_at_step=4"], progress=False)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "split": "tra')  # killed while writing
    torn = run / "checkpoints" / ".step-00000008.tmp-abc"
    torn.mkdir()
    (torn / "weights.pt").write_bytes(b"half")
    pretrain(None, "forward", run, tiny_overrides, resume=True, progress=False)
    assert not torn.exists()
    full = tmp_path / "full"
    pretrain(None, "forward", full, tiny_overrides, progress=False)
    drop = ("tokens_per_s", "wall_s", "cpu_s")  # timings: of the run, not of what it computed
    strip = lambda recs: [{k: v for k, v in r.items() if k not in drop} for r in recs]  # noqa: E731
    assert strip(records(run)) == strip(records(full))  # the first record after the resume averages 1 step too


def test_the_first_record_after_a_resume_averages_the_whole_window(tiny_overrides, tmp_path):
    ov = [*tiny_overrides, "train.log_every=3", "train.checkpoint_every=0"]
    pretrain(None, "forward", tmp_path / "cut", [*ov, "train.stop_at_step=4"], progress=False)
    pretrain(None, "forward", tmp_path / "cut", ov, resume=True, progress=False)
    pretrain(None, "forward", tmp_path / "full", ov, progress=False)
    train = lambda run: [(r["step"], r["loss"]) for r in records(run) if r["split"] == "train"]  # noqa: E731
    assert train(tmp_path / "cut") == train(tmp_path / "full")  # step 6 averages steps 4-6 in both


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.log_every=0", "train.log_every must be positive"),
        ("train.max_steps=-5", "train.max_steps must be >= 0"),
        ("train.checkpoint_every=-1", "must be >= 0"),
    ],
)
def test_bad_values_fail_at_load_time(tiny_overrides, tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        pretrain(None, "forward", tmp_path / "r", [*tiny_overrides, override], progress=False)
    assert not (tmp_path / "r" / "model").exists()


def test_a_missing_corpus_is_one_line(tiny_overrides, tmp_path):
    r = CliRunner().invoke(
        main,
        [
            "pretrain",
            "--direction",
            "forward",
            "--out",
            str(tmp_path / "r"),
            "--quiet",
            *tiny_overrides,
            f"data.train={tmp_path / 'nope.txt'}",
        ],
    )
    assert r.exit_code == 2 and "nope.txt: corpus file not found" in r.output and "Traceback" not in r.output
    with pytest.raises(CorpusError):
        pretrain(
            None, "forward", tmp_path / "r2", [*tiny_overrides, f"data.train={tmp_path / 'nope.txt'}"], progress=False
        )


def test_a_full_disk_in_a_checkpoint_is_one_line_and_keeps_the_earlier_ones(tiny_overrides, tmp_path, monkeypatch):
    import elmokit.core.files as C

    run = tmp_path / "r"
    ov = [*tiny_overrides, "train.checkpoint_every=2", "train.keep_checkpoints=5"]
    real = C.torch_save_bytes
    calls = []

    def full_disk_later(obj):
        calls.append(1)
        if len(calls) > 4:  # the third checkpoint (a rank file and the training state each)
            raise OSError(28, "No space left on device")
        return real(obj)

    monkeypatch.setattr("elmokit.lm.checkpoint.torch_save_bytes", full_disk_later)
    with pytest.raises(
        CheckpointError,
        match=r"step-00000006: cannot write the checkpoint \(No space left on "
        r"device\); the earlier checkpoints are intact",
    ):
        pretrain(None, "forward", run, ov, progress=False)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002", "step-00000004"]
    monkeypatch.setattr("elmokit.lm.checkpoint.torch_save_bytes", real)
    pretrain(None, "forward", run, ov, resume=True, progress=False)
    assert (run / "model" / "manifest.json").exists()


def test_accelerate_launch_without_multi_gpu_is_refused(monkeypatch):
    from elmokit.core.run_guard import check_launch

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ConfigError, match="add --multi_gpu"):
        check_launch(1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    check_launch(2)


def test_killed_after_the_last_checkpoint_resumes_without_a_second_final_validation(tiny_overrides, tmp_path):
    """A kill between the last step's checkpoint and the model (the final validation already logged): the resume
    keeps the records the checkpoint saw, so the final validation is in metrics.jsonl once (found by the torture
    script: 3 of 10 trials with checkpoint_every=1 before the fix)."""
    ov = [*tiny_overrides, "train.checkpoint_every=1", "train.keep_checkpoints=1"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    pretrain(None, "forward", full, ov, progress=False)
    pretrain(None, "forward", cut, ov, progress=False)
    shutil.rmtree(cut / "model")  # as if killed after the final validation was logged, before the model
    assert records(cut)[-1]["split"] == "valid" and records(cut)[-1]["step"] == 8
    pretrain(None, "forward", cut, ov, resume=True, progress=False)
    strip = lambda recs: [(r["step"], r["split"], r["loss"]) for r in recs]  # noqa: E731
    assert strip(records(cut)) == strip(records(full))
