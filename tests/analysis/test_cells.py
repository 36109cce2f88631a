"""elmokit cells: features of the text, the unit ranking (held out), the page and the PNG, both directions."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from click.testing import CliRunner

from elmokit.analysis.cells import _auc, rank_units, text_features
from elmokit.analysis.trace import Trace
from elmokit.cli import main


def trace_of(lines: list[str], direction: str = "forward", units: dict | None = None) -> Trace:
    """A character-per-step trace of ``lines`` (as a char vocabulary reads them), with the given units."""
    surfaces, line = [], []
    for k, text in enumerate(lines):
        surfaces += [*text, "\n"]
        line += [k] * (len(text) + 1)
    n = len(surfaces)
    return Trace(surfaces, np.asarray(line), units or {"h1": np.zeros((n, 1), np.float32)}, direction)


def test_features_forward():
    tr = trace_of(['a "b c" (d) 7', 'x"'])
    f = text_features(tr, regex=r"b c")
    text = "".join(tr.surfaces)
    at = {c: i for i, c in enumerate(text) if c in "bdx7"}
    assert f["quotes"][at["b"]] == 1 and f["quotes"][at["d"]] == 0
    assert f["quotes"][text.index('"')] == 1 and f["quotes"][text.index('"', text.index('"') + 1)] == 0  # open, close
    assert f["brackets"][at["d"]] == 1 and f["brackets"][text.index(")")] == 0
    assert f["digits"][at["7"]] == 1 and f["digits"][at["d"]] == 0
    assert f["line_position"][0] == 1 and f["line_position"][at["x"]] == 1  # a new line starts again
    assert f["word_position"][at["d"]] == 2 and f["word_position"][text.index(" ")] == 0
    assert f["regex"][at["b"]] == 1 and f["regex"][at["d"]] == 0
    assert np.isnan(f["quotes"][text.index("\n")])  # </s> has no character


def test_features_backward_read_right_to_left():
    tr = trace_of(["(a) b"], "backward")
    f = text_features(tr)
    # read from the right: ")" opens, "(" closes; positions count from the line's end
    assert f["brackets"][tr.surfaces.index(")")] == 1 and f["brackets"][tr.surfaces.index("(")] == 0
    assert f["brackets"][tr.surfaces.index("a")] == 1 and f["brackets"][tr.surfaces.index("b")] == 0
    assert f["line_position"][tr.surfaces.index("b")] == 1 and f["line_position"][0] == 5


def test_auc_matches_pairs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = rng.random(200) < 0.3
    brute = [np.mean([a > b for a in x[y, j] for b in x[~y, j]]) for j in range(3)]
    assert np.allclose(_auc(x, y), brute)


def test_ranking_finds_a_planted_unit_and_scores_it_held_out():
    rng = random.Random(0)
    lines = []
    for _ in range(400):
        words = [rng.choice(["cat", "dog", "sees", "a", "the"]) for _ in range(rng.randint(3, 9))]
        i = rng.randrange(len(words))
        words.insert(i, '"')
        words.insert(rng.randint(i + 2, len(words) + 1), '"')
        lines.append(" ".join(words))
    tr = trace_of(lines)
    quotes = np.nan_to_num(text_features(tr)["quotes"])
    noise = np.random.default_rng(1).normal(size=(tr.steps, 20)).astype(np.float32)
    noise[:, 7] -= 3 * quotes  # unit 7: low inside quotes
    tr.units = {"h1": noise}
    r = rank_units(tr, {"quotes": text_features(tr)["quotes"]}, top=3)["quotes"]
    best = r["units"][0]
    assert best["unit"] == "h1:7" and best["sign"] == -1 and best["heldout"] > 0.9
    assert all(0.4 < u["heldout"] < 0.6 for u in r["units"][1:])  # the rest are noise, held out
    assert r["selection_steps"] + r["heldout_steps"] == int((~np.isnan(text_features(tr)["quotes"])).sum())


def quoted_corpus(path, n, seed):
    from elmokit.demo import sentence

    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = sentence(rng).split()
        i = rng.randrange(len(words))
        j = rng.randint(i + 1, len(words))
        words[i:j] = ['"', *words[i:j], '"'] if rng.random() < 0.5 else ["(", *words[i:j], ")"]
        lines.append(" ".join(words))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def char_pair(tmp_path_factory):
    """A tiny character-level forward and backward LSTM trained briefly on quoted text."""
    from elmokit.lm.pretrain import pretrain
    from elmokit.lm.vocab import train_vocab

    d = tmp_path_factory.mktemp("chars")
    train, valid = quoted_corpus(d / "train.txt", 800, 1), quoted_corpus(d / "valid.txt", 120, 2)
    card = train_vocab([str(train)], str(d / "char"), size=16000, model_type="char", num_threads=1, command="t")
    ov = [
        f"data.vocab={d / 'char.model'}",
        f"data.train={train}",
        f"data.cache_dir={d / 'cache'}",
        "data.num_proc=1",
        "model.size=tiny",
        "model.proj_size=0",
        "model.head=full",
        "train.batch_size=8",
        "train.bptt=40",
        "train.max_steps=25",
        "train.lr=0.01",
        "train.checkpoint_every=0",
        "train.threads=1",
    ]
    return {
        "card": card,
        "valid": valid,
        "dir": d,
        "forward": pretrain(None, "forward", d / "fwd", ov, progress=False),
        "backward": pretrain(None, "backward", d / "bwd", ov, progress=False),
    }


def test_char_vocab_is_one_piece_per_character(char_pair):
    from elmokit.lm.vocab import load_vocab

    v = load_vocab(char_pair["dir"] / "char.model")
    assert char_pair["card"]["model_type"] == "char" and v.size < 4 + 256 + 100  # specials, bytes, the characters
    line = 'the dog " sees "'
    assert v.surfaces(v.encode(line)) == ["", *line]  # "▁" (the dropped line start), then one per character
    ko = "한국어 문장"  # unseen characters: byte pieces, the character on the last one
    assert "".join(v.surfaces(v.encode(ko))) == ko


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_cells_command_writes_the_ranking_page_and_png(char_pair, direction, tmp_path):
    out = tmp_path / "cells"
    res = CliRunner().invoke(
        main,
        [
            "cells",
            str(char_pair[direction]),
            str(char_pair["valid"]),
            "--out",
            str(out),
            "--control",
            "--regex",
            "dog",
            "--top",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    r = json.loads((out / "cells.json").read_text())
    assert r["direction"] == direction and set(r["units"]) == {"h1", "c1", "h2", "c2"}
    assert len(r["made_by"]["weights_sha256"]) == 64 and "torch" in r["made_by"]["versions"]
    assert set(r["ranking"]) == {"quotes", "brackets", "line_position", "word_position", "digits", "regex"}
    assert all(len(rec["units"]) == 3 for f, rec in r["ranking"].items() if f != "digits")  # no digits in it
    assert "control" in r and "quotes" in res.output
    page = (out / "cells.html").read_text(encoding="utf-8")
    assert page.count("<h2>") == len(r["shown_units"]) and "title=" in page
    assert (out / "cells.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp*"))


def test_cells_bad_unit_is_one_line(char_pair, tmp_path):
    res = CliRunner().invoke(
        main,
        ["cells", str(char_pair["forward"]), str(char_pair["valid"]), "--out", str(tmp_path / "c"), "--unit", "c9:1"],
    )
    assert res.exit_code == 2 and "no such unit" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "c" / "cells.json").exists()


def test_evaluate_reports_bits_per_character(char_pair):
    import math

    from elmokit.lm.evaluate import evaluate_model

    r = evaluate_model(str(char_pair["forward"]), [str(char_pair["valid"])], progress=False)
    lines = char_pair["valid"].read_text().splitlines()
    assert r["chars"] == sum(len(" ".join(ln.split())) + 1 for ln in lines)
    # a character vocabulary: one piece per character plus each line's "▁" (and a few more for the characters
    # spelled in bytes), so per piece ≈ per character
    assert r["bits_per_char"] == pytest.approx(r["nll"] / r["chars"] / math.log(2))
    assert 0 <= r["tokens"] - (r["chars"] + len(lines)) < 0.01 * r["chars"]


def screenshot_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "scripts" / "screenshot_page.py"
    spec = importlib.util.spec_from_file_location("screenshot_page", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_page_renders_coloured_in_chromium(char_pair, tmp_path):
    shot = screenshot_script()
    if shot.find_browser() is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium); scripts/screenshot_page.py needs one")
    out = tmp_path / "cells"
    res = CliRunner().invoke(main, ["cells", str(char_pair["forward"]), str(char_pair["valid"]), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert shot.main([str(out / "cells.html"), "--out", str(tmp_path / "page.png")]) == 0
    blank = tmp_path / "blank.html"
    blank.write_text("<html><body><p>nothing coloured</p></body></html>")
    assert shot.main([str(blank), "--out", str(tmp_path / "blank.png")]) == 1


def test_generate_samples_characters(char_pair):
    res = CliRunner().invoke(main, ["generate", str(char_pair["forward"]), "--prompt", "the", "--tokens", "30"])
    assert res.exit_code == 0, res.output
    text = res.output.rstrip("\n")
    assert text.startswith("the") and 20 <= len(text.replace("\n", "")) <= 3 + 30 + 4  # ~one piece a character
