"""The command line through click's CliRunner: every --help, and bad input as one clear line, exit 2, no traceback."""

import json

import pytest
from click.testing import CliRunner

from elmokit.cli import main

COMMANDS = sorted(main.commands)  # every command, new ones included


@pytest.mark.parametrize("cmd", [[], *[[c] for c in COMMANDS]])
def test_help(cmd):
    res = CliRunner().invoke(main, [*cmd, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output


def test_the_commands_of_issue_37_are_listed():
    """`substitutes` (and `import-elmo`, which reads archives now) have their --help checked above."""
    assert {"import-elmo", "substitutes"} <= set(COMMANDS)


def test_help_is_instant_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; from elmokit.cli import main; assert 'torch' not in sys.modules and 'datasets' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def run_err(args):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    return res.output


def test_vocab_bad_inputs(tmp_path):
    assert "not found" in run_err(["vocab", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "v")])
    (tmp_path / "empty.txt").write_bytes(b"")
    assert "empty" in run_err(["vocab", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "v")])
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\n")
    out = run_err(["vocab", str(tmp_path / "bad.txt"), "--out", str(tmp_path / "v")])
    assert "bad.txt:2: invalid UTF-8" in out


def test_pretrain_bad_inputs(tmp_path, tiny_overrides, corpus):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  lerning_rate: 0.1\n")
    assert "unknown key train.lerning_rate" in run_err(
        ["pretrain", "--config", str(cfg), "--direction", "forward", "--out", str(tmp_path / "o")]
    )
    cfg.write_text("train:\n  bptt: long\n")
    assert "train.bptt must be int" in run_err(
        ["pretrain", "--config", str(cfg), "--direction", "forward", "--out", str(tmp_path / "o")]
    )
    (tmp_path / "nul.txt").write_bytes(b"a b\n" * 50 + b"\x00\n")
    ov = [o for o in tiny_overrides if not o.startswith("data.train")] + [f"data.train={tmp_path / 'nul.txt'}"]
    out = run_err(["pretrain", "--direction", "forward", "--out", str(tmp_path / "o2"), "--quiet", *ov])
    assert "nul.txt:51: NUL byte" in out


def test_pretrain_handles_crlf_and_a_100k_token_line(tmp_path, tiny_overrides, corpus):
    text = corpus["train"].read_text(encoding="utf-8").replace("\n", "\r\n")
    big = " ".join(["the cat sees a dog ."] * 20_000)  # 120k tokens on one line
    p = tmp_path / "crlf.txt"
    p.write_bytes((text + big + "\r\n").encode("utf-8"))
    ov = [o for o in tiny_overrides if not o.startswith("data.train")] + [f"data.train={p}", "train.max_steps=2"]
    res = CliRunner().invoke(main, ["pretrain", "--direction", "forward", "--out", str(tmp_path / "o"), "--quiet", *ov])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "model" / "manifest.json").exists()


def test_evaluate_and_generate(tmp_path, tiny_overrides, corpus):
    res = CliRunner().invoke(
        main, ["pretrain", "--direction", "forward", "--out", str(tmp_path / "m"), "--quiet", *tiny_overrides]
    )
    assert res.exit_code == 0, res.output
    cache = [o.split("=", 1)[1] for o in tiny_overrides if o.startswith("data.cache_dir")][0]
    res = CliRunner().invoke(
        main, ["evaluate", str(tmp_path / "m"), "--corpus", str(corpus["valid"]), "--json", "--cache-dir", cache]
    )
    assert res.exit_code == 0, res.output
    r = json.loads(res.output.strip().splitlines()[-1])
    assert r["words"] == sum(len(ln.split()) + 1 for ln in corpus["valid"].read_text().splitlines())
    assert 1 < r["subword_ppl"] < 400 and r["word_ppl"] > r["subword_ppl"]
    res = CliRunner().invoke(main, ["generate", str(tmp_path / "m"), "--prompt", "The", "--tokens", "5"])
    assert res.exit_code == 0 and res.output.startswith("The")
    assert "no such model directory" in run_err(["evaluate", str(tmp_path / "nope"), "--corpus", str(corpus["valid"])])


@pytest.mark.slow
def test_demo(tmp_path):
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "--steps", "60"])
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "demo" / "demo-results.json").read_text())
    assert results["forward"]["subword_ppl"] < 60 and results["backward"]["subword_ppl"] < 60
    assert results["embed"]["read_back_equal"] and results["embed"]["shape0"][0] == 3
    assert results["tagger"]["test_accuracy"] > 50 and "test accuracy" in res.output
    assert set(results["cells"]) == {"word_position", "line_position"}
    assert "<span" in (tmp_path / "demo" / "cells" / "cells.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["evaluate", "{fwd}", "--corpus", "{text}", "--batch", "0"], "--batch 0: must be 1 or more"),
        (["evaluate", "{fwd}", "--corpus", "{text}", "--bptt", "0"], "--bptt 0: must be 1 or more"),
        (["evaluate", "{fwd}", "--corpus", "{text}", "--max-tokens", "-1"], "--max-tokens -1"),
        (["generate", "{fwd}", "--temperature", "0"], "--temperature 0.0: must be above 0"),
        (["generate", "{fwd}", "--temperature", "-1"], "--temperature -1.0"),
        (["generate", "{fwd}", "--top-k", "-2"], "--top-k -2"),
        (["generate", "{fwd}", "--tokens", "0"], "--tokens 0"),
        (["embed", "{bilm}", "{text}", "{tmp}/e.hdf5", "--threads", "-2"], "--threads -2"),
        (["embed", "{bilm}", "{text}", "{tmp}/e.hdf5", "--chunk-lines", "-1"], "--chunk-lines -1"),
        (["embed", "{bilm}", "{text}", "{tmp}/e.hdf5", "--batch-tokens", "-5"], "--batch-tokens -5"),
        (["cells", "{fwd}", "{text}", "--out", "{tmp}/c", "--max-pieces", "0"], "--max-pieces 0"),
        (["cells", "{fwd}", "{text}", "--out", "{tmp}/file.txt"], "file.txt: File exists"),
        (["bundle", "{fwd}", "{bwd}", "--out", "{fwd}/model/sub"], "is, or is inside, or holds the run"),
        (["bundle", "{fwd}", "{bwd}", "--out", "{pair}"], "is, or is inside, or holds the run"),
        (["export-elmo", "{bilm}", "--out", "{tmp}/elmo"], "a pieces biLM"),
    ],
)
def test_bad_counts_and_outs_are_one_line(tiny_pair, tmp_path, args, says):
    """What a hostile audit found: options that measure nothing and --out paths of the wrong kind were
    tracebacks (and `bundle --out` inside a run copied the run into itself, 41 folders deep, and left it there)."""
    text = tmp_path / "t.txt"
    text.write_text("the cat sat .\n" * 5, encoding="utf-8")
    (tmp_path / "file.txt").write_text("keep me", encoding="utf-8")
    before = sorted(p.name for p in tiny_pair["forward"].rglob("*"))
    fields = {
        "fwd": tiny_pair["forward"],
        "bwd": tiny_pair["backward"],
        "bilm": tiny_pair["bundle"],
        "text": text,
        "tmp": tmp_path,
        "pair": tiny_pair["dir"],
    }
    r = CliRunner().invoke(main, [a.format(**fields) for a in args])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and says in r.output, r.output
    assert (tmp_path / "file.txt").read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in tiny_pair["forward"].rglob("*")) == before  # nothing left inside the run
