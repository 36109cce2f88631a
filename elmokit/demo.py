"""``elmokit demo``: the whole pipeline on a small corpus generated here (no download, no outside text):
vocab → forward and backward LMs → evaluate → generate → a look inside the forward LM (``elmokit cells``) → biLM
bundle → embed to HDF5 → read back → a tiny UPOS tagger on the scalar mix.

The corpus comes from a small probabilistic grammar (English-like sentences with number agreement and a few Korean
sentences, so the vocabulary shows it handles any script). An LM that learns it gets a perplexity far below the
unigram one, which the demo prints.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import click

NOUNS = {
    "sg": ["cat", "dog", "teacher", "river", "student", "city", "machine", "bird", "farmer", "song"],
    "pl": ["cats", "dogs", "teachers", "rivers", "students", "cities", "machines", "birds", "farmers", "songs"],
}
VERBS = {
    "sg": ["sees", "likes", "follows", "hears", "finds", "remembers"],
    "pl": ["see", "like", "follow", "hear", "find", "remember"],
}
INTRANS = {"sg": ["sleeps", "runs", "sings", "waits"], "pl": ["sleep", "run", "sing", "wait"]}
ADJS = ["small", "old", "quiet", "bright", "happy", "distant", "green"]
DETS = {"sg": ["the", "a", "this", "every"], "pl": ["the", "some", "these", "many"]}
PREPS = ["near", "behind", "under", "with"]
ADVS = ["today", "again", "slowly", "at night"]
KO_SUBJ = ["고양이가", "학생이", "선생님이", "농부가", "새가"]
KO_OBJ = ["강을", "노래를", "도시를", "기계를", "책을"]
KO_VERB = ["본다", "좋아한다", "기억한다", "찾는다"]


def _np(rng: random.Random, num: str, depth: int = 0) -> list[str]:
    words = [rng.choice(DETS[num])]
    if rng.random() < 0.4:
        words.append(rng.choice(ADJS))
    words.append(rng.choice(NOUNS[num]))
    if depth == 0 and rng.random() < 0.25:
        words += [rng.choice(PREPS), *_np(rng, rng.choice(["sg", "pl"]), 1)]
    return words


def sentence(rng: random.Random) -> str:
    """One sentence of the demo grammar."""
    if rng.random() < 0.12:
        return f"{rng.choice(KO_SUBJ)} {rng.choice(KO_OBJ)} {rng.choice(KO_VERB)} ."
    num = rng.choice(["sg", "pl"])
    subj = _np(rng, num)
    if rng.random() < 0.3:
        words = subj + [rng.choice(INTRANS[num])]
    else:
        words = subj + [rng.choice(VERBS[num])] + _np(rng, rng.choice(["sg", "pl"]))
    if rng.random() < 0.3:
        words.append(rng.choice(ADVS))
    words[0] = words[0].capitalize()
    return " ".join(words) + " ."


POS = {
    **{w: "NOUN" for v in NOUNS.values() for w in v},
    **{w: "VERB" for v in (*VERBS.values(), *INTRANS.values()) for w in v},
    **{w: "ADJ" for w in ADJS},
    **{w: "DET" for v in DETS.values() for w in v},
    **{w: "ADP" for w in PREPS},
    "today": "ADV",
    "again": "ADV",
    "slowly": "ADV",
    "at": "ADP",
    "night": "NOUN",
    ".": "PUNCT",
    **{w: "NOUN" for w in KO_SUBJ + KO_OBJ},
    **{w: "VERB" for w in KO_VERB},
}


def annotate(words: list[str]) -> tuple[list[str], list[str], str]:
    """UPOS tags, BIO noun-phrase chunks (``B-NP``/``I-NP``/``O``) and a label (the subject's number: ``sg``,
    ``pl``, or ``ko`` for a Korean sentence) of a demo-grammar sentence."""
    pos = [POS[w.lower()] for w in words]
    chunks, inside = [], False
    for w, p in zip(words, pos):
        starts = p == "DET" or (w in KO_SUBJ + KO_OBJ)
        inside = starts or (inside and p in ("ADJ", "NOUN") and w != "night")
        chunks.append("B-NP" if starts else "I-NP" if inside else "O")
    label = (
        "ko"
        if words[0] in KO_SUBJ
        else "sg"
        if next(w for w, p in zip(words, pos) if p == "NOUN") in NOUNS["sg"]
        else "pl"
    )
    return pos, chunks, label


def write_tagged(path: Path, n: int, seed: int, kind: str) -> Path:
    """A downstream sample from the grammar: ``conllu`` (UPOS), ``conll`` (word and BIO NP chunk) or ``tsv``
    (``text<TAB>label``, the subject's number)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = sentence(rng).split()
        pos, chunks, label = annotate(words)
        if kind == "conllu":
            out.append(
                "".join(f"{i}\t{w}\t_\t{p}\t_\t_\t_\t_\t_\t_\n" for i, (w, p) in enumerate(zip(words, pos), 1)) + "\n"
            )
        elif kind == "conll":
            out.append("".join(f"{w} {c}\n" for w, c in zip(words, chunks)) + "\n")
        else:
            out.append(f"{' '.join(words)}\t{label}\n")
    path.write_text("".join(out), encoding="utf-8")
    return path


def write_corpus(path: Path, n_lines: int, seed: int) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(sentence(rng) + "\n" for _ in range(n_lines)), encoding="utf-8")
    return path


def demo_tagger(out: Path, bundle: Path) -> dict:
    """Train a tiny BiLSTM-CRF UPOS tagger on the biLM's scalar mix (generated CoNLL-U), print its test score."""
    from elmokit.tasks.train import load_task_config, train_task

    data = out / "data"
    files = {
        split: write_tagged(data / f"pos-{split}.conllu", n, seed, "conllu")
        for split, n, seed in (("train", 300, 4), ("dev", 100, 5), ("test", 100, 6))
    }
    cfg = load_task_config(
        None,
        [
            f"out={out / 'runs' / 'tagger'}",
            "data.format=conllu",
            f"data.train={files['train']}",
            f"data.dev={files['dev']}",
            f"data.test={files['test']}",
            f"model.bilm={bundle}",
            "model.word_dim=0",
            "model.hidden=32",
            "model.dropout=0.2",
            "train.batch_size=16",
            "train.lr=0.01",
            "train.max_epochs=4",
            f"train.cache_dir={out / 'cache'}",
            "train.progress=false",
        ],
        task="tagger",
    )
    click.echo(f"[8/8] training a tiny UPOS tagger on the biLM's scalar mix ({files['train']}, 300 sentences)")
    summary = train_task(cfg, overwrite=True)  # the demo trains its tagger anew each time
    weights = ", ".join(f"{w:.2f}" for w in summary["mix_weights"])
    click.echo(
        f"      test accuracy {summary['test']['accuracy']:.1f}% (dev {summary['dev']['accuracy']:.1f}%), "
        f"layer weights [{weights}]; model in {cfg.out}/model"
    )
    return {
        "test_accuracy": summary["test"]["accuracy"],
        "dev_accuracy": summary["dev"]["accuracy"],
        "mix_weights": summary["mix_weights"],
    }


def run_demo(out: str | Path, steps: int = 1000) -> dict:
    """vocab → pretrain forward and backward ``tiny`` LMs → evaluate → generate → bundle → embed → read back;
    prints and returns the figures."""
    from elmokit.lm.evaluate import evaluate_model
    from elmokit.lm.pretrain import pretrain
    from elmokit.lm.vocab import train_vocab

    t0 = time.time()
    out = Path(out)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    train = write_corpus(data / "train.txt", 6000, seed=1)
    valid = write_corpus(data / "valid.txt", 500, seed=2)
    click.echo(f"[1/8] corpus: {train} (6000 lines), {valid} (500 lines), generated by a small grammar")
    card = train_vocab(
        [str(train)],
        str(out / "vocab" / "demo"),
        size=340,
        num_threads=1,
        command=f"elmokit vocab {train} --out {out / 'vocab' / 'demo'} --size 340",
    )
    click.echo(f"[2/8] vocab: {card['vocab_size']} pieces, {card['measured_on_sample']['pieces_per_word']} per word")
    overrides = [
        f"data.vocab={out / 'vocab' / 'demo.model'}",
        f"data.train={train}",
        f"data.valid={valid}",
        f"data.cache_dir={out / 'cache'}",
        "data.num_proc=1",
        "model.size=tiny",
        "train.batch_size=16",
        "train.bptt=20",
        f"train.max_steps={steps}",
        "train.warmup_steps=20",
        "train.lr=0.005",
        f"train.eval_every={max(steps // 2, 1)}",
        f"train.checkpoint_every={steps}",
        "train.log_every=10",
    ]
    results = {}
    for direction in ("forward", "backward"):
        click.echo(f"[3/8] pretraining the {direction} LM ({steps} steps)")
        run = out / "runs" / direction
        if (run / "model" / "manifest.json").exists():
            click.echo(f"      {run / 'model'} exists; reusing it (delete {out} to start over)")
        else:
            pretrain(None, direction, run, overrides, resume=True, progress=True)
        r = evaluate_model(str(run), [str(valid)], "stream", 10, 20, cache_dir=str(out / "cache"), progress=False)
        results[direction] = r
        click.echo(f"      valid perplexity per subword {r['subword_ppl']:.2f}, per word {r['word_ppl']:.2f}")
    from elmokit.lm.generate import sample
    from elmokit.lm.model_dir import load_model

    loaded = load_model(out / "runs" / "forward")
    lm, vocab = loaded.model, loaded.vocab
    text = sample(lm, vocab, "The old", 40, 0.8, 20, seed=0)
    click.echo("[4/8] forward LM continues 'The old':\n      " + text.replace("\n", "\n      "))
    from elmokit.analysis.cells import inspect_cells

    cells = inspect_cells(
        str(out / "runs" / "forward"),
        [str(valid)],
        str(out / "cells"),
        max_pieces=6000,
        features=["word_position", "line_position"],
        top=3,
    )
    best = {f: rec["units"][0] for f, rec in cells["ranking"].items() if rec["units"]}
    figures = ", ".join(f"{f} {u['unit']} (r = {u['heldout']:.2f} held out)" for f, u in best.items())
    click.echo(
        f"[5/8] inside the forward LM (elmokit cells): the units that best track {figures}; the text coloured "
        f"by them: {out / 'cells' / 'cells.html'}"
    )
    results["cells"] = {f: u for f, u in best.items()}
    from elmokit.bilm.bundle import write_bundle
    from elmokit.embed import Embedder
    from elmokit.embed.layouts import EmbeddingsFile

    bundle = write_bundle(out / "runs" / "forward", out / "runs" / "backward", out / "bilm")
    click.echo(f"[6/8] biLM bundle: {bundle}")
    emb = Embedder(bundle)
    sample_file = write_corpus(data / "sample.txt", 200, seed=3)
    h5 = emb.embed_file(sample_file, out / "sample.hdf5", progress=False, overwrite=True)
    first_line = sample_file.read_text(encoding="utf-8").splitlines()[0]
    with EmbeddingsFile(h5) as f:
        back = f[0]
        same = bool(abs(back - emb.embed_sentences([first_line])[0]).max() < 1e-5)
        click.echo(
            f"[7/8] embedded {len(f)} sentences into {h5}: sentence 0 {first_line!r} has shape {back.shape} "
            f"(layers, words, 2D); read back equal to the API: {same}"
        )
    results["embed"] = {"file": str(h5), "sentences": 200, "shape0": list(back.shape), "read_back_equal": same}
    results["tagger"] = demo_tagger(out, bundle)
    results["seconds"] = round(time.time() - t0, 1)
    (out / "demo-results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    click.echo(f"demo finished in {results['seconds']} s; results in {out / 'demo-results.json'}")
    return results
