"""elmokit fit: the biLM's perplexity on a text against its own validation figure; the warning and its command."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from click.testing import CliRunner

from elmokit.bilm.domain_fit import casing, measure_fit
from elmokit.cli import main
from elmokit.demo import sentence, write_corpus


@pytest.fixture(scope="module")
def validated_pair(corpus, vocab_path, tmp_path_factory):
    """A tiny forward/backward pair trained with validation text, so their manifests hold their own figure."""
    from elmokit.bilm.bundle import write_bundle
    from elmokit.lm.pretrain import pretrain

    d = tmp_path_factory.mktemp("fitpair")
    ov = [
        f"data.vocab={vocab_path}",
        f"data.train={corpus['train']}",
        f"data.valid={corpus['valid']}",
        f"data.cache_dir={d / 'cache'}",
        "data.num_proc=1",
        "model.size=tiny",
        "train.batch_size=8",
        "train.max_steps=120",
        "train.lr=0.01",
        "train.checkpoint_every=0",
        "train.eval_every=0",
        "train.threads=1",
    ]
    return write_bundle(
        pretrain(None, "forward", d / "f", ov, progress=False),
        pretrain(None, "backward", d / "b", ov, progress=False),
        d / "bilm",
    )


def test_silent_on_its_own_domain_and_warns_on_foreign_text(validated_pair, tmp_path):
    own = write_corpus(tmp_path / "own.txt", 300, seed=99).read_text(encoding="utf-8").splitlines()
    r = measure_fit(validated_pair, own)
    assert r["fits"] and r["ratio"] < 1.5 and not r["warning"]
    assert set(r["directions"]) == {"forward", "backward"}
    rng = random.Random(0)
    shouting = [sentence(rng).upper() for _ in range(300)]  # another casing: the pieces no longer fit
    r = measure_fit(validated_pair, shouting)
    assert r["fits"] is False and r["ratio"] > 2
    assert f"elmokit adapt {validated_pair}" in r["warning"]


def test_casing():
    assert casing(["the cat .", "a dog"])["upper_share"] == 0
    assert casing(["The cat", "dog"])["lines_starting_upper"] == 0.5


def test_fit_command(validated_pair, tmp_path):
    text = write_corpus(tmp_path / "t.txt", 100, seed=5)
    res = CliRunner().invoke(main, ["fit", str(validated_pair), str(text), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.splitlines()[0])["fits"] is True
    low = tmp_path / "upper.txt"
    low.write_text(text.read_text(encoding="utf-8").upper(), encoding="utf-8")
    res = CliRunner().invoke(main, ["fit", str(validated_pair), str(low)])
    assert res.exit_code == 0 and "does NOT fit" in res.output
    assert f"elmokit adapt {validated_pair} {low} --out" in res.output  # the exact command, with the file


def test_every_downstream_run_records_the_fit_and_warns(validated_pair, tmp_path, capsys):
    from elmokit.demo import write_tagged
    from elmokit.tasks.train import load_task_config, train_task

    files = {
        s: write_tagged(tmp_path / f"{s}.tsv", n, seed, "tsv") for s, n, seed in (("train", 80, 1), ("dev", 30, 2))
    }
    shouted = tmp_path / "train-upper.tsv"
    shouted.write_text(
        "".join(
            f"{t.upper()}\t{lab}"
            for t, lab in (ln.split("\t") for ln in files["train"].read_text(encoding="utf-8").splitlines(True))
        ),
        encoding="utf-8",
    )
    for train, fits in ((files["train"], True), (shouted, False)):
        r = train_task(
            load_task_config(
                None,
                [
                    f"out={tmp_path / ('run-' + str(fits))}",
                    "data.format=tsv",
                    f"data.train={train}",
                    f"data.dev={files['dev']}",
                    f"model.bilm={validated_pair}",
                    "model.hidden=8",
                    "model.word_dim=0",
                    "train.max_epochs=1",
                    "train.progress=false",
                    f"train.cache_dir={tmp_path / 'cache'}",
                    "train.threads=1",
                ],
                task="classifier",
            )
        )
        saved = json.loads((tmp_path / f"run-{fits}" / "results.json").read_text())["domain_fit"]
        assert r["domain_fit"]["fits"] is fits and saved["ratio"] == r["domain_fit"]["ratio"]
        err = capsys.readouterr().err
        assert ("elmokit adapt" in err) is not fits
        if not fits:  # the command that adapts the biLM to this very file, read as the run reads it
            assert f"elmokit adapt {validated_pair} {train} --format tsv --out" in err


def test_adapt_fits_the_biLM_to_new_text(validated_pair, tmp_path):
    """Adapting to upper-cased text: held-out perplexity falls in both directions, the bundle fits it after."""
    rng = random.Random(3)
    text = tmp_path / "upper.txt"
    text.write_text("".join(sentence(rng).upper() + "\n" for _ in range(600)), encoding="utf-8")
    res = CliRunner().invoke(
        main,
        [
            "adapt",
            str(validated_pair),
            str(text),
            "--out",
            str(tmp_path / "adapted"),
            "--minutes",
            "1",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "adapted.work" / "adapt.json").read_text())
    for d in ("forward", "backward"):
        assert r["dev_ppl_after"][d] < 0.7 * r["dev_ppl_before"][d]
    assert (
        measure_fit(tmp_path / "adapted", text.read_text().splitlines())["ratio"]
        < measure_fit(validated_pair, text.read_text().splitlines())["ratio"]
    )
    res = CliRunner().invoke(main, ["adapt", str(validated_pair), str(text), "--out", str(tmp_path / "adapted")])
    assert res.exit_code == 2 and "--overwrite" in res.output


def test_fit_refuses_an_imported_elmo_in_one_line(elmo_bundles, tmp_path):
    text = write_corpus(tmp_path / "t.txt", 10, seed=5)
    res = CliRunner().invoke(main, ["fit", str(elmo_bundles["tf"]), str(text)])
    assert res.exit_code == 2 and "keeps no softmax" in res.output and "Traceback" not in res.output


def test_adapt_sizes_its_schedule_by_a_timed_step(validated_pair):
    """plan_steps: the epochs cap, the budget cap at the measured step time, and the floor; seconds_per_step times
    real steps on a copy and leaves the LM's weights as they were."""
    import torch

    from elmokit.bilm.adapt import plan_steps, seconds_per_step
    from elmokit.lm.model_dir import load_model

    assert plan_steps(100_000, 8, 25, minutes=10, epochs=4, step_seconds=0.01) == 4 * 500  # epochs bind
    assert plan_steps(100_000, 8, 25, minutes=1, epochs=4, step_seconds=0.1) == 510  # 0.85 x 60 s / 0.1 s
    assert plan_steps(100, 8, 25, minutes=0.001, epochs=4, step_seconds=1.0) == 20  # at least 20
    lm = load_model(validated_pair / "forward")
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    s = seconds_per_step(lm.model, np.arange(1, 500) % 50, batch=4, bptt=10, steps=2)
    assert 0 < s < 5
    for k, v in lm.model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


@pytest.mark.parametrize("body", ["\n\n\n", "   \n\t\n \n"])
def test_fit_on_blank_lines_says_there_is_nothing_to_measure(validated_pair, tmp_path, body):
    """Issue 34, case 19: a file of blank lines was said to fit (a perplexity of the end-of-line pieces alone)."""
    blank = tmp_path / "blank.txt"
    blank.write_text(body, encoding="utf-8")
    res = CliRunner().invoke(main, ["fit", str(validated_pair), str(blank)])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {blank}: nothing to measure: every line is blank")
    assert "fits" not in res.output


def test_fit_with_no_lines_to_sample_is_one_line(validated_pair, tmp_path):
    text = write_corpus(tmp_path / "t.txt", 20, seed=5)
    res = CliRunner().invoke(main, ["fit", str(validated_pair), str(text), "--lines", "0"])
    assert res.exit_code == 2 and res.output.strip().splitlines() == [
        "error: --lines 0: must be 1 or more (the lines of " + str(text) + " sampled)"
    ], res.output
