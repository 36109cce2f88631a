"""The ``elmokit`` command line: one click group over the commands of :mod:`elmokit.commands` (by stage: ``lm``,
``analysis``, ``tasks``) and ``demo``. Thin: each command parses options and calls one function; heavy imports
(torch, datasets, accelerate) happen inside the commands so ``elmokit --help`` is instant."""

from __future__ import annotations

import click

from elmokit import __version__
from elmokit.commands import analysis, friendly_errors, lm, tasks


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="elmokit")
def main() -> None:
    """elmokit: pretrain an ELMo-style biLM on your own corpus and language.

    \b
    The way through:
      elmokit vocab CORPUS --out vocab/my --size 16000        sentencepiece vocabulary (any script, no OOV)
      elmokit pretrain --config C.yaml --direction forward --out runs/fwd
      elmokit pretrain --config C.yaml --direction backward --out runs/bwd
      elmokit evaluate runs/fwd --corpus test.txt              full-softmax perplexity, per subword and per word
      elmokit generate runs/fwd --prompt "The"                 sample text, a sanity check
      elmokit bundle runs/fwd runs/bwd --out runs/bilm          pair them into a frozen biLM
      elmokit import-elmo options.json weights.hdf5 --out elmo  or bring the original ELMo (bilm-tf, ELMoForManyLangs)
      elmokit embed runs/bilm sentences.txt vectors.hdf5       layer-wise word vectors to HDF5
      elmokit train-tagger recipes/tasks/ewt-upos.yaml          BiLSTM-CRF tagger on the scalar mix
      elmokit train-classifier recipes/tasks/nsmc.yaml          BiLSTM sentence classifier on the scalar mix
      elmokit predict runs/tagger input.conllu out.conll        tag or classify a file; `score` scores one

    `elmokit demo` runs it end to end (vocab to a tiny tagger) on a small built-in corpus in about two minutes.
    """


for command in (
    lm.vocab,
    lm.pretrain,
    lm.evaluate,
    lm.bundle,
    lm.import_elmo,
    lm.substitutes,
    lm.export_elmo,
    lm.embed,
    analysis.generate,
    analysis.cells,
    analysis.gradients,
    analysis.similarity,
    tasks.fit,
    tasks.adapt,
    tasks.train_tagger,
    tasks.train_classifier,
    tasks.predict,
    tasks.score,
):
    main.add_command(command)


@main.command()
@click.option("--out", default="elmokit-demo", show_default=True, type=click.Path(), help="Where to put its files.")
@click.option("--steps", default=1000, show_default=True, help="Training steps per direction.")
@friendly_errors
def demo(out, steps):
    """Run the whole pipeline on a small built-in corpus: vocab → pretrain forward and backward tiny models →
    evaluate → generate → a look inside the forward LM (`elmokit cells`: a coloured page) → biLM bundle → embed to
    HDF5 → read back → train a tiny UPOS tagger on the scalar mix. Takes about two minutes on two CPU cores."""
    from elmokit.demo import run_demo

    run_demo(out, steps)


if __name__ == "__main__":  # `python -m elmokit.cli` (what `accelerate launch -m` runs)
    main()
