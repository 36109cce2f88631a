"""The downstream training loop, model directory, predict and score, on tiny generated data."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from elmokit.cli import main
from elmokit.core.errors import ConfigError, CorpusError
from elmokit.demo import write_tagged
from elmokit.tasks.model_dir import load_task_model
from elmokit.tasks.predict import run_predict, run_score
from elmokit.tasks.readers import read_conll, read_conllu
from elmokit.tasks.tables import read_table
from elmokit.tasks.train import load_task_config, train_task


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("taskdata")
    out = {}
    for kind, ext in (("conllu", "conllu"), ("conll", "txt"), ("tsv", "tsv")):
        out[kind] = {
            split: write_tagged(d / f"{split}.{ext}", n, seed, kind)
            for split, n, seed in (("train", 120, 21), ("dev", 40, 22), ("test", 40, 23))
        }
    return out


def config(tmp_path, data, kind, bundle, *extra, task="tagger"):
    files = data[kind]
    ov = [
        f"out={tmp_path / 'run'}",
        f"data.format={kind}",
        f"data.train={files['train']}",
        f"data.dev={files['dev']}",
        f"data.test={files['test']}",
        f"model.bilm={bundle}",
        "model.hidden=16",
        "model.word_dim=8",
        "model.dropout=0.1",
        "train.batch_size=8",
        "train.max_epochs=3",
        "train.lr=0.01",
        f"train.cache_dir={tmp_path / 'cache'}",
        "train.threads=1",
        "train.progress=false",
        "train.log_every=5",
        *extra,
    ]
    return load_task_config(None, ov, task=task)


def weights(run):
    return torch.load(run / "model" / "weights.pt", weights_only=True)


def test_tagger_learns_and_predict_round_trips(tmp_path, data, tiny_pair):
    cfg = config(
        tmp_path, data, "conll", tiny_pair["bundle"], "data.scheme=bio", "model.char_dim=8", "train.max_epochs=6"
    )
    summary = train_task(cfg)
    assert summary["metric"] == "span_f1" and summary["dev"]["f1"] > 80
    run = tmp_path / "run"
    for name in ("curves.png", "mix_weights.png", "metrics.jsonl", "results.json", "model/manifest.json"):
        assert (run / name).is_file(), name
    assert abs(sum(summary["mix_weights"]) - 1) < 1e-5
    tm = load_task_model(run)
    assert tm.manifest["bilm_sha256"] and tm.model.encoder.chars is not None
    # predict on the training data: the output reads back with the CoNLL reader and scores what `score` says
    out = tmp_path / "pred.conll"
    run_predict(tm, data["conll"]["train"], out)
    gold, pred = read_conll(data["conll"]["train"]), read_conll(out)
    assert [s.words for s in gold] == [s.words for s in pred]
    acc = 100 * sum(g == p for a, b in zip(gold, pred) for g, p in zip(a.tags, b.tags)) / sum(len(s.tags) for s in gold)
    assert acc == pytest.approx(run_score(tm, data["conll"]["train"])["accuracy"])
    assert acc > 90  # it fits its training data
    # constrained CRF: never I-NP right after O
    for s in pred:
        assert all(not (a == "O" and b == "I-NP") for a, b in zip(["O", *s.tags], s.tags))
    # raw text in, one line of tags per input line out: an empty line stays a line, the rest stay aligned
    text = tmp_path / "in.txt"
    text.write_text(" ".join(gold[0].words) + "\n\n" + " ".join(gold[1].words) + "\n", encoding="utf-8")
    assert run_predict(tm, text, tmp_path / "pred.txt", "text") == 3
    lines = (tmp_path / "pred.txt").read_text(encoding="utf-8").split("\n")
    assert lines[1] == "" and lines[2].split() == pred[1].tags and lines[0].split() == pred[0].tags


def test_classifier_and_cli(tmp_path, data, tiny_pair):
    files = data["tsv"]
    (tmp_path / "c.yaml").write_text("task: classifier\ndata:\n  format: tsv\n", encoding="utf-8")
    r = CliRunner().invoke(
        main,
        [
            "train-classifier",
            str(tmp_path / "c.yaml"),
            f"data.train={files['train']}",
            f"data.dev={files['dev']}",
            f"model.bilm={tiny_pair['bundle']}",
            "model.hidden=16",
            "model.word_dim=8",
            "train.batch_size=8",
            "train.max_epochs=12",
            "train.lr=0.01",
            f"train.cache_dir={tmp_path / 'cache'}",
            "train.threads=1",
            "model.sentence_pooling=attention",
            "model.elmo_output=true",
            "--out",
            str(tmp_path / "cls"),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.splitlines()[0])["dev"]["accuracy"] > 60
    results = json.loads((tmp_path / "cls" / "results.json").read_text(encoding="utf-8"))
    assert len(results["mix_weights"]) == len(results["mix_weights_output"]) == 3 and "gamma_output" in results
    r = CliRunner().invoke(main, ["predict", str(tmp_path / "cls"), str(files["test"]), str(tmp_path / "p.tsv")])
    assert r.exit_code == 0, r.output
    back = read_table(tmp_path / "p.tsv", "tsv", "classifier")
    assert [e.words for e in back] == [e.words for e in read_table(files["test"], "tsv", "classifier")]
    assert {e.target for e in back} <= {"sg", "pl", "ko"}
    r = CliRunner().invoke(main, ["score", str(tmp_path / "cls"), str(files["test"])])
    assert r.exit_code == 0 and set(json.loads(r.output)) == {"accuracy", "macro_f1"}


def test_cached_features_train_like_on_the_fly(tmp_path, data, tiny_pair):
    """Same seed, float32 cache vs the biLM per batch: the same weights and scores."""
    a = train_task(
        config(
            tmp_path / "a",
            data,
            "conllu",
            tiny_pair["bundle"],
            "train.features=cache",
            "train.cache_dtype=float32",
            "train.max_epochs=2",
        )
    )
    b = train_task(
        config(tmp_path / "b", data, "conllu", tiny_pair["bundle"], "train.features=on_the_fly", "train.max_epochs=2")
    )
    assert a["dev"] == pytest.approx(b["dev"]) and a["test"] == pytest.approx(b["test"])
    wa, wb = weights(tmp_path / "a" / "run"), weights(tmp_path / "b" / "run")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=1e-4)


def test_resume_with_a_larger_time_budget_goes_on(tmp_path, data, tiny_pair):
    """A run its time budget stopped ends again on --resume with the same budget, and goes on with a larger one;
    a run early stopping ended stays ended."""
    args = (tmp_path, data, "conllu", tiny_pair["bundle"], "train.max_epochs=2", "train.patience=10")
    cut = train_task(config(*args, "train.max_minutes=0.00001"))  # out of time at the first check
    assert cut["steps"] == 1 and cut["epochs"] == 0
    again = train_task(config(*args, "train.max_minutes=0.00001"), resume=True)
    assert again["steps"] == 1
    more = train_task(config(*args, "train.max_minutes=60"), resume=True)
    assert more["epochs"] == 2 and more["steps"] > 1
    loop = json.loads((tmp_path / "run" / "checkpoint" / "loop.json").read_text())
    assert loop["stop_reason"] == ""
    patience = train_task(
        config(
            tmp_path / "p",
            data,
            "conllu",
            tiny_pair["bundle"],
            "train.max_epochs=20",
            "train.patience=1",
            "train.lr=0.0",
        )
    )  # no progress: stops after 2 evaluations
    assert patience["epochs"] == 2
    resumed = train_task(
        config(
            tmp_path / "p",
            data,
            "conllu",
            tiny_pair["bundle"],
            "train.max_epochs=20",
            "train.patience=1",
            "train.lr=0.0",
            "train.max_minutes=60",
        ),
        resume=True,
    )
    assert resumed["steps"] == patience["steps"]


@pytest.mark.parametrize("ema", ["0", "0.9"])
def test_resume_continues_exactly(tmp_path, data, tiny_pair, ema):
    """Also with a moving average of the weights, which the checkpoint carries."""
    extra = ("train.patience=10", f"train.ema_decay={ema}")
    full = train_task(config(tmp_path / "full", data, "conllu", tiny_pair["bundle"], "train.max_epochs=3", *extra))
    train_task(config(tmp_path / "cut", data, "conllu", tiny_pair["bundle"], "train.max_epochs=1", *extra))
    resumed = train_task(
        config(tmp_path / "cut", data, "conllu", tiny_pair["bundle"], "train.max_epochs=3", *extra), resume=True
    )
    assert resumed["steps"] == full["steps"] and resumed["dev"] == pytest.approx(full["dev"])
    with pytest.raises(ConfigError, match="holds a finished run .*--overwrite .*--resume to continue it"):
        train_task(config(tmp_path / "cut", data, "conllu", tiny_pair["bundle"]))
    wa, wb = weights(tmp_path / "full" / "run"), weights(tmp_path / "cut" / "run")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=0, rtol=0)


def test_resume_keeps_the_metrics_its_checkpoint_saw(tmp_path, data, tiny_pair):
    """Records written after the last checkpoint (a kill before the next one) and a torn last line are dropped on
    resume, so metrics.jsonl reads as the uninterrupted run's."""
    extra = ("train.patience=10", "train.log_every=2")
    train_task(config(tmp_path / "full", data, "conllu", tiny_pair["bundle"], "train.max_epochs=3", *extra))
    train_task(config(tmp_path / "cut", data, "conllu", tiny_pair["bundle"], "train.max_epochs=1", *extra))
    with open(tmp_path / "cut" / "run" / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 999, "split": "train", "loss": 1.0}\n{"step": 1000, "spl')  # after the checkpoint; torn
    train_task(config(tmp_path / "cut", data, "conllu", tiny_pair["bundle"], "train.max_epochs=3", *extra), resume=True)

    def records(run):
        recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
        return [(r["step"], r["split"], r.get("loss"), r.get("accuracy")) for r in recs]

    assert records(tmp_path / "cut" / "run") == records(tmp_path / "full" / "run")


def test_moving_average_is_what_is_selected_saved_and_scored(tmp_path, data, tiny_pair):
    """With train.ema_decay the saved model is the averaged one: `score` reproduces the run's dev and test figures,
    and its weights differ from the raw weights in the checkpoint."""
    cfg = config(
        tmp_path, data, "conllu", tiny_pair["bundle"], "train.max_epochs=3", "train.ema_decay=0.9", "train.patience=10"
    )
    summary = train_task(cfg)
    run = tmp_path / "run"
    tm = load_task_model(run)
    for split in ("dev", "test"):
        scores = run_score(tm, data["conllu"][split])
        assert scores["accuracy"] == pytest.approx(summary[split]["accuracy"])
    state = torch.load(run / "checkpoint" / "state.pt", weights_only=True)
    assert state["average"]["updates"] == summary["steps"]
    saved, raw = weights(run), state["model"]
    assert any(not torch.equal(saved[k], raw[k]) for k in saved)
    train_task(config(tmp_path / "plain", data, "conllu", tiny_pair["bundle"], "train.max_epochs=1"))
    with pytest.raises(
        ConfigError, match="was made with train.ema_decay=0.0, now 0.9; --resume continues the same run only"
    ):
        train_task(
            config(
                tmp_path / "plain", data, "conllu", tiny_pair["bundle"], "train.max_epochs=2", "train.ema_decay=0.9"
            ),
            resume=True,
        )
    with pytest.raises(ConfigError, match="was made with train.ema_decay=0.9, now 0.0"):
        train_task(config(tmp_path, data, "conllu", tiny_pair["bundle"], "train.max_epochs=4"), resume=True)


def test_task_resume_refuses_another_run_and_a_finished_run_needs_overwrite(tmp_path, data, tiny_pair):
    """--resume refuses a changed model or data (naming the key); a damaged checkpoint file is refused against its
    manifest; a finished run is not trained over without --overwrite."""
    args = (tmp_path, data, "conllu", tiny_pair["bundle"], "train.max_epochs=1")
    first = train_task(config(*args))
    with pytest.raises(ConfigError, match="holds a finished run .*--overwrite"):
        train_task(config(*args))
    with pytest.raises(ConfigError, match="was made with model.hidden=16, now 24"):
        train_task(config(*args, "model.hidden=24"), resume=True)
    with pytest.raises(ConfigError, match="was made with train_sha256="):
        train_task(config(*args, f"data.train={data['conllu']['dev']}"), resume=True)
    state = tmp_path / "run" / "checkpoint" / "state.pt"
    state.write_bytes(state.read_bytes()[:-10])
    from elmokit.core.errors import CheckpointError

    with pytest.raises(CheckpointError, match="state.pt: sha256 differs from the manifest.*--overwrite"):
        train_task(config(*args, "train.max_epochs=2"), resume=True)
    again = train_task(config(*args), overwrite=True)
    assert again["dev"] == pytest.approx(first["dev"])


def test_without_elmo_needs_no_bilm(tmp_path, data):
    cfg = config(tmp_path, data, "conllu", "", "model.use_elmo=false", "train.max_epochs=2")
    summary = train_task(cfg)
    assert summary["features"] == "none" and "mix_weights" not in summary
    tm = load_task_model(tmp_path / "run")
    assert tm.bilm is None and tm.model.encoder.elmo is None


def test_unknown_label_in_dev_names_file_and_line(tmp_path, data, tiny_pair):
    dev = tmp_path / "dev.tsv"
    dev.write_text("a cat sleeps .\tsg\nthe dogs run .\tneutral\n", encoding="utf-8")
    cfg = config(tmp_path, data, "tsv", tiny_pair["bundle"], f"data.dev={dev}", task="classifier")
    with pytest.raises(CorpusError, match=r"dev.tsv:2: label 'neutral' was not seen in the training data"):
        train_task(cfg)


def test_config_errors(tmp_path, data):
    with pytest.raises(ConfigError, match="model.bilm is empty"):
        config(tmp_path, data, "conllu", "")
    with pytest.raises(ConfigError, match="classifier reads a table"):
        config(tmp_path, data, "conllu", "x", task="classifier")
    with pytest.raises(ConfigError, match="unknown key model.hiden"):
        config(tmp_path, data, "conllu", "x", "model.hiden=3")
    with pytest.raises(ConfigError, match=r"train.ema_decay must be in \[0, 1\)"):
        config(tmp_path, data, "conllu", "x", "train.ema_decay=1.0")


def test_missing_bilm_at_load_is_a_clear_error(tmp_path, data, tiny_pair):
    import shutil

    from elmokit.core.errors import CheckpointError

    bundle = tmp_path / "bilm"
    shutil.copytree(tiny_pair["bundle"], bundle)
    train_task(config(tmp_path, data, "conllu", bundle, "train.max_epochs=1"))
    shutil.rmtree(bundle)
    with pytest.raises(CheckpointError, match="its biLM .* is missing; pass the bundle"):
        load_task_model(tmp_path / "run")
    assert load_task_model(tmp_path / "run", bilm=tiny_pair["bundle"]).bilm is not None  # moved: --bilm


@pytest.mark.slow
def test_two_gloo_processes_train_a_tagger(tmp_path, data, tiny_pair):
    """`accelerate launch` with 2 CPU processes: each takes every other batch, DDP averages the gradients."""
    import os
    import subprocess

    from tests.lm.test_pretrain import accelerate_launch

    files = data["conllu"]
    (tmp_path / "t.yaml").write_text("task: tagger\n", encoding="utf-8")
    cmd = [
        *accelerate_launch(2),
        "-m",
        "elmokit.cli",
        "train-tagger",
        str(tmp_path / "t.yaml"),
        f"data.train={files['train']}",
        f"data.dev={files['dev']}",
        f"model.bilm={tiny_pair['bundle']}",
        "model.hidden=16",
        "model.word_dim=8",
        "train.batch_size=8",
        "train.max_epochs=3",
        "train.lr=0.01",
        f"train.cache_dir={tmp_path / 'cache'}",
        "train.threads=1",
        "--out",
        str(tmp_path / "two"),
        "--quiet",
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "two" / "results.json").read_text())
    assert summary["steps"] == 3 * (120 // 8 // 2)  # 15 batches per epoch, split over 2 processes
    assert summary["dev"]["accuracy"] > 50


def test_features_from_elmokit_embed_files_equal_the_cache(tmp_path, data, tiny_pair):
    """`elmokit embed --tokenized` dumps of the CoNLL-U splits train the same model as the float32 cache."""
    files = data["conllu"]
    dumps = {}
    for split in ("train", "dev", "test"):
        dumps[split] = tmp_path / f"{split}.hdf5"
        layout = "packed" if split == "train" else "allennlp"
        r = CliRunner().invoke(
            main,
            [
                "embed",
                str(tiny_pair["bundle"]),
                str(files[split]),
                str(dumps[split]),
                "--tokenized",
                "--layout",
                layout,
                "--quiet",
            ],
        )
        assert r.exit_code == 0, r.output
    a = train_task(
        config(tmp_path / "a", data, "conllu", tiny_pair["bundle"], "train.cache_dtype=float32", "train.max_epochs=2")
    )
    b = train_task(
        config(
            tmp_path / "b",
            data,
            "conllu",
            tiny_pair["bundle"],
            "train.max_epochs=2",
            *(f"data.{s}_hdf5={p}" for s, p in dumps.items()),
        )
    )
    assert a["dev"] == pytest.approx(b["dev"]) and a["test"] == pytest.approx(b["test"])
    # a dump of other text is refused, naming the file
    with pytest.raises(Exception, match="sentences, the split has|words, the split's example"):
        train_task(config(tmp_path / "c", data, "conllu", tiny_pair["bundle"], f"data.train_hdf5={dumps['dev']}"))


def test_imported_elmo_trains_a_tagger_and_a_classifier_and_predicts(tmp_path, data, elmo_bundles):
    """The original ELMo (imported from bilm-tf's files) feeds the same taggers and classifiers, unchanged."""
    bundle = elmo_bundles["skip"]
    cfg = config(tmp_path, data, "conllu", bundle, "train.max_epochs=2")
    summary = train_task(cfg)
    assert len(summary["mix_weights"]) == 3 and summary["dev"]["accuracy"] > 0
    r = CliRunner().invoke(
        main, ["predict", str(tmp_path / "run"), str(data["conllu"]["test"]), str(tmp_path / "p.conllu")]
    )
    assert r.exit_code == 0, r.output
    assert [s.words for s in read_conll(tmp_path / "p.conllu")] == [
        s.words for s in read_conllu(data["conllu"]["test"])
    ]
    cls = config(tmp_path / "c", data, "tsv", bundle, "train.max_epochs=2", task="classifier")
    assert len(train_task(cls)["mix_weights"]) == 3


def test_classifier_reads_a_csv_with_its_own_column_names(tmp_path, data, tiny_pair):
    """The shapes users have: a CSV whose text and label columns are named comments and hate; predict reads the
    same file without its label column."""
    import csv

    out = {}
    for split, path in data["tsv"].items():
        out[split] = tmp_path / f"{split}.csv"
        with open(out[split], "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "comments", "hate"])
            for i, e in enumerate(read_table(path, "tsv", "classifier")):
                w.writerow([i, " ".join(e.words), e.target])
    common = [
        f"model.bilm={tiny_pair['bundle']}",
        "model.hidden=16",
        "model.word_dim=8",
        "train.batch_size=8",
        "train.max_epochs=2",
        "train.lr=0.01",
        "train.progress=false",
        f"train.cache_dir={tmp_path / 'cache'}",
        "train.threads=1",
    ]
    csv_run = train_task(
        load_task_config(
            None,
            [
                f"out={tmp_path / 'run'}",
                "data.format=csv",
                f"data.train={out['train']}",
                f"data.dev={out['dev']}",
                "data.text_column=comments",
                "data.label_column=hate",
                *common,
            ],
            task="classifier",
        )
    )
    tsv_run = train_task(
        load_task_config(
            None,
            [
                f"out={tmp_path / 'tsv'}",
                "data.format=tsv",
                f"data.train={data['tsv']['train']}",
                f"data.dev={data['tsv']['dev']}",
                *common,
            ],
            task="classifier",
        )
    )
    assert csv_run["dev"] == tsv_run["dev"]  # the same examples, read from another shape
    unlabelled = tmp_path / "new.csv"
    unlabelled.write_text("id,comments\n1,the dogs run .\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["predict", str(tmp_path / "run"), str(unlabelled), str(tmp_path / "p.tsv")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p.tsv").read_text(encoding="utf-8").split("\t")[0] == "the dogs run ."


# --- issue 34, case 15: a full disk during train-tagger names the file, and says "intact" only of a real checkpoint --
def _full_disk_on(monkeypatch, hit):
    """``Path.write_bytes`` fails as a full disk does (ENOSPC from write(), no file name) where ``hit(path)``."""
    import errno
    import pathlib

    real = pathlib.Path.write_bytes

    def write_bytes(self, data):
        if hit(self):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)


def test_a_full_disk_at_the_first_checkpoint_names_the_file_and_claims_no_checkpoint(tmp_path, data, tiny_pair):
    """Before: "error: RUN/checkpoint: cannot write (...); the previous checkpoint is intact" with none there."""
    files = data["conllu"]
    (tmp_path / "c.yaml").write_text("task: tagger\n", encoding="utf-8")
    run = tmp_path / "run"
    args = [
        "train-tagger",
        str(tmp_path / "c.yaml"),
        "data.format=conllu",
        f"data.train={files['train']}",
        f"data.dev={files['dev']}",
        f"model.bilm={tiny_pair['bundle']}",
        "model.hidden=16",
        "model.word_dim=8",
        "train.batch_size=8",
        "train.max_epochs=1",
        f"train.cache_dir={tmp_path / 'cache'}",
        "train.threads=1",
        "train.fit_lines=0",
        "--out",
        str(run),
        "--quiet",
    ]
    mp = pytest.MonkeyPatch()
    _full_disk_on(mp, lambda p: p.name == "state.pt")
    try:
        res = CliRunner().invoke(main, args)
    finally:
        mp.undo()
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    lines = res.output.strip().splitlines()
    assert lines == [
        f"error: {run}/checkpoint/state.pt: cannot write the checkpoint (No space left on device); no checkpoint of "
        f"this run was saved yet: free space, then run the same command again"
    ], res.output
    assert not list(run.glob(".*.tmp*")) and not (run / "checkpoint").exists()
    res = CliRunner().invoke(main, args)  # what the message says works
    assert res.exit_code == 0, res.output


def test_a_full_disk_writing_the_model_names_it_and_resume_finishes(tmp_path, data, tiny_pair, monkeypatch):
    """Before: "error: a file: cannot write (...)" (an OSError with no file name) and a .model.tmp-* left behind."""
    from elmokit.core.errors import CheckpointError

    seen = []

    def second_model(p):
        if p.name == "weights.pt" and p.parent.name.startswith(".model.tmp-"):
            seen.append(p)
            return len(seen) == 2  # the first model (and its checkpoint) are written; the second write fails
        return False

    _full_disk_on(monkeypatch, second_model)
    cfg = config(tmp_path, data, "conllu", tiny_pair["bundle"], "train.max_epochs=3", "train.fit_lines=0")
    with pytest.raises(CheckpointError) as e:
        train_task(cfg)
    run = tmp_path / "run"
    assert str(e.value).startswith(f"{run}/model: cannot write the ")
    assert str(e.value).endswith(
        "(No space left on device); the last checkpoint is intact: free space, then continue with --resume"
    )
    assert not list(run.glob(".*.tmp*")) and (run / "checkpoint" / "state.pt").is_file()
    monkeypatch.undo()
    summary = train_task(
        config(tmp_path, data, "conllu", tiny_pair["bundle"], "train.max_epochs=3", "train.fit_lines=0"), resume=True
    )
    assert summary["steps"] > 0 and (run / "results.json").is_file() and (run / "model" / "weights.pt").is_file()


def test_a_full_disk_at_a_later_checkpoint_says_the_last_one_is_intact(tmp_path, data, tiny_pair, monkeypatch):
    from elmokit.core.errors import CheckpointError

    seen = []

    def second_checkpoint(p):
        if p.name == "state.pt":
            seen.append(p)
            return len(seen) == 2
        return False

    _full_disk_on(monkeypatch, second_checkpoint)
    cfg = config(tmp_path, data, "conllu", tiny_pair["bundle"], "train.max_epochs=3", "train.fit_lines=0")
    with pytest.raises(CheckpointError) as e:
        train_task(cfg)
    run = tmp_path / "run"
    assert str(e.value) == (
        f"{run}/checkpoint/state.pt: cannot write the checkpoint (No space left on device); the last checkpoint is "
        f"intact: free space, then continue with --resume"
    )
    assert not list(run.glob(".*.tmp*"))
    assert json.loads((run / "checkpoint" / "loop.json").read_text(encoding="utf-8"))["epoch"] == 1
