"""elmokit predict writes only where it may (issue 34, cases 2 and 12b): never over INPUT, over an existing OUTPUT only
with --overwrite, into a missing directory not at all (one line), and OUTPUT complete or not at all."""

from __future__ import annotations

import errno
import os

import pytest
from click.testing import CliRunner

from elmokit.cli import main
from elmokit.demo import write_tagged
from elmokit.tasks.readers import read_conll
from elmokit.tasks.train import load_task_config, train_task


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small tagger without ELMo (trains in seconds)."""
    d = tmp_path_factory.mktemp("predict")
    files = {s: write_tagged(d / f"{s}.conllu", n, seed, "conllu") for s, n, seed in (("train", 40, 1), ("dev", 10, 2))}
    cfg = load_task_config(
        None,
        [
            f"out={d / 'run'}",
            "data.format=conllu",
            f"data.train={files['train']}",
            f"data.dev={files['dev']}",
            "model.use_elmo=false",
            "model.hidden=8",
            "model.word_dim=8",
            "train.batch_size=8",
            "train.max_epochs=1",
            "train.threads=1",
            "train.progress=false",
        ],
        task="tagger",
    )
    train_task(cfg)
    return d / "run"


@pytest.fixture()
def text(tmp_path):
    p = tmp_path / "in.conllu"
    write_tagged(p, 5, 9, "conllu")
    return p


def predict(*args):
    return CliRunner().invoke(main, ["predict", *map(str, args)])


def one_line_error(res) -> str:
    """Exit code 2, one line on the output, no traceback."""
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def test_an_existing_output_is_replaced_only_with_overwrite(model, text, tmp_path):
    out = tmp_path / "p.conll"
    out.write_text("the user's own file\n", encoding="utf-8")
    msg = one_line_error(predict(model, text, out))
    assert f"{out}: exists; pass --overwrite" in msg
    assert out.read_text(encoding="utf-8") == "the user's own file\n"
    res = predict(model, text, out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert len(read_conll(out)) == 5 and not list(tmp_path.glob(".*"))  # no temporary file left


@pytest.mark.parametrize("how", ["same", "relative", "symlink", "hardlink"])
def test_output_is_never_the_input_even_with_overwrite(model, text, tmp_path, monkeypatch, how):
    before = text.read_bytes()
    if how == "same":
        out = text
    elif how == "relative":
        monkeypatch.chdir(tmp_path)
        out = os.path.join(".", "sub", "..", text.name)
        (tmp_path / "sub").mkdir()
    elif how == "symlink":
        out = tmp_path / "link.conll"
        out.symlink_to(text)
    else:
        out = tmp_path / "hard.conll"
        os.link(text, out)
    for extra in ([], ["--overwrite"]):
        msg = one_line_error(predict(model, text, out, *extra))
        assert "is the input" in msg and "give another OUTPUT" in msg
        assert text.read_bytes() == before


def test_output_is_never_inside_the_model_even_with_overwrite(model, text):
    weights = model / "model" / "weights.pt"
    before = weights.read_bytes()
    for out in (weights, model / "model" / "new.conll"):
        msg = one_line_error(predict(model, text, out, "--overwrite"))
        assert "is inside the model directory" in msg
    assert weights.read_bytes() == before and not (model / "model" / "new.conll").exists()
    res = predict(model, text, model / "pred.conll")  # beside the model, in its run directory: fine
    assert res.exit_code == 0, res.output
    (model / "pred.conll").unlink()


@pytest.mark.parametrize("where", ["missing_dir", "file_as_dir", "a_directory", "dangling_link"])
def test_an_output_that_cannot_be_written_is_one_line(model, text, tmp_path, where):
    if where == "missing_dir":
        out, expect = tmp_path / "no" / "such" / "p.conll", "does not exist; create it first"
    elif where == "file_as_dir":
        (tmp_path / "f").write_text("x", encoding="utf-8")
        out, expect = tmp_path / "f" / "p.conll", "is not a directory"
    elif where == "a_directory":
        out, expect = tmp_path, "is a directory"
    else:
        out, expect = tmp_path / "dangling.conll", "which does not exist; remove the link"
        out.symlink_to(tmp_path / "nowhere" / "x")
    msg = one_line_error(predict(model, text, out, "--overwrite"))
    assert expect in msg and str(out) in msg


def test_a_full_disk_keeps_the_old_output_and_leaves_no_temporary_file(model, text, tmp_path, monkeypatch):
    out = tmp_path / "p.conll"
    out.write_text("an older output\n", encoding="utf-8")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    msg = one_line_error(predict(model, text, out, "--overwrite"))
    assert f"{out}: cannot write the predictions (No space left on device)" in msg
    assert out.read_text(encoding="utf-8") == "an older output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.conllu", "p.conll"]
