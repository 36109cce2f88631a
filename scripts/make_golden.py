"""Rebuild the golden fixture of ``tests/test_golden.py``: a tiny frozen biLM and tagger, and the numbers they give.

    python scripts/make_golden.py            # rewrites tests/fixtures/golden/ (~1 minute)

Two builds of the same code are byte-identical (the build directory is fixed), so a refactoring is checked by
building before and after and comparing the trees (`diff -r`).

What it writes (a few hundred kilobytes), all from the demo grammar with fixed seeds:
- ``bilm/``: a bundle of two 1-layer LSTMP LMs (8-d embedding and projection, 16 cells; a 320-piece vocabulary),
  trained 300 steps each;
- ``tagger/``: a UPOS tagger on its scalar mix (BiLSTM of 16, no word embedding or char CNN), trained 8 epochs;
- ``text.txt``, ``tagged.conllu``: the sentences the test reads;
- ``expected.json``: the vectors of ``text.txt`` (every layer, 6 decimals), the forward and backward LMs'
  perplexity on it, and the tagger's predictions on ``tagged.conllu``.

The test then loads the committed files and compares: a change that moves any of these numbers fails it, and the
fixture is rebuilt with this script only when the change is meant (say why in the commit).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "golden"
TEXT = ["the quiet farmer sees many cats .", "birds sing near the old river today .", "고양이가 책을 본다 ."]


def expected_numbers(out: Path) -> dict:
    """What the test pins, computed from the files in ``out``."""
    import numpy as np

    from elmokit.embed import Embedder
    from elmokit.lm.evaluate import evaluate_model
    from elmokit.tasks.model_dir import load_task_model
    from elmokit.tasks.predict import run_predict
    from elmokit.tasks.readers import read_conll

    vecs = Embedder(out / "bilm").embed_sentences(TEXT)
    ppl = {
        d: evaluate_model(str(out / "bilm" / d), [str(out / "text.txt")], mode="sentence", progress=False)["word_ppl"]
        for d in ("forward", "backward")
    }
    with tempfile.TemporaryDirectory() as tmp:
        run_predict(load_task_model(out / "tagger", bilm=out / "bilm"), out / "tagged.conllu", Path(tmp) / "p.conll")
        tags = [s.tags for s in read_conll(Path(tmp) / "p.conll")]
    return {"vectors": [np.round(v, 6).tolist() for v in vecs], "word_ppl": ppl, "tags": tags}


@contextmanager
def build_dir() -> Iterator[Path]:
    """A fixed, emptied build directory: the configs and vocabularies record the paths they were made from, so a
    fixed one lets two builds (before and after a change meant to keep the numbers) compare byte for byte."""
    tmp = Path(tempfile.gettempdir()) / "elmokit-golden-build"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    import torch

    from elmokit.bilm.bundle import write_bundle
    from elmokit.demo import write_corpus, write_tagged
    from elmokit.lm.pretrain import pretrain
    from elmokit.lm.vocab import train_vocab
    from elmokit.tasks.train import load_task_config, train_task

    torch.set_num_threads(1)
    with build_dir() as tmp:
        corpus = write_corpus(tmp / "train.txt", 1500, seed=31)
        train_vocab([str(corpus)], str(tmp / "v"), size=320, num_threads=1, command="scripts/make_golden.py")
        ov = [
            f"data.vocab={tmp / 'v.model'}",
            f"data.train={corpus}",
            f"data.cache_dir={tmp / 'cache'}",
            "data.num_proc=1",
            "model.size=tiny",
            "model.num_layers=1",
            "model.embed_dim=8",
            "model.proj_size=8",
            "model.hidden_size=16",
            "model.num_samples=64",
            "model.dropout=0.0",
            "train.batch_size=8",
            "train.max_steps=300",
            "train.lr=0.02",
            "train.checkpoint_every=0",
            "train.threads=1",
            "train.seed=5",
        ]
        fwd = pretrain(None, "forward", tmp / "fwd", ov, progress=False)
        bwd = pretrain(None, "backward", tmp / "bwd", ov, progress=False)
        for d in ("bilm", "tagger"):  # the rest is overwritten; README.md stays
            shutil.rmtree(OUT / d, ignore_errors=True)
        OUT.mkdir(parents=True, exist_ok=True)
        write_bundle(fwd, bwd, OUT / "bilm")
        (OUT / "text.txt").write_text("".join(s + "\n" for s in TEXT), encoding="utf-8")
        train, dev = (
            write_tagged(tmp / "train.conllu", 80, 41, "conllu"),
            write_tagged(tmp / "dev.conllu", 20, 42, "conllu"),
        )
        write_tagged(OUT / "tagged.conllu", 6, 43, "conllu")
        cfg = load_task_config(
            None,
            [
                f"out={tmp / 'tagger'}",
                "data.format=conllu",
                f"data.train={train}",
                f"data.dev={dev}",
                f"model.bilm={OUT / 'bilm'}",
                "model.hidden=16",
                "model.word_dim=0",
                "model.char_dim=0",
                "model.dropout=0.0",
                "train.batch_size=8",
                "train.max_epochs=8",
                "train.lr=0.02",
                f"train.cache_dir={tmp / 'tcache'}",
                "train.threads=1",
                "train.progress=false",
                "train.seed=7",
            ],
            task="tagger",
        )
        train_task(cfg)
        shutil.copytree(tmp / "tagger" / "model", OUT / "tagger")
    (OUT / "expected.json").write_text(json.dumps(expected_numbers(OUT), ensure_ascii=False) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
