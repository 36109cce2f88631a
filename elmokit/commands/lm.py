"""Commands of the LM pipeline: ``vocab``, ``pretrain``, ``evaluate``, ``bundle``, ``import-elmo``, ``embed``."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from elmokit.commands import at_least, cache_dir_option, choice_option, friendly_errors
from elmokit.core.choices import DIRECTIONS, DTYPES, INFERENCE_PRECISIONS, LAYER_MODES, LAYOUTS, POOLINGS, VOCAB_TYPES


@click.command()
@click.argument("corpus", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_prefix", required=True, help="Output prefix: writes PREFIX.model, .vocab and .card.json.")
@click.option("--size", default=16000, show_default=True, help="Vocabulary size (number of pieces).")
@choice_option(
    "--model-type",
    VOCAB_TYPES,
    "unigram",
    "char: one piece per character (every character meeting --character-coverage; --size is then "
    "only a cap), for character-level LMs: pretrain, evaluate (bits per character) and generate "
    "then work one character at a time.",
)
@click.option(
    "--character-coverage",
    default=0.9995,
    show_default=True,
    help="Share of characters covered by pieces; the rest use byte fallback. 0.9995 suits Korean/CJK.",
)
@click.option(
    "--input-sentence-size",
    default=2_000_000,
    show_default=True,
    help="Lines sampled for training, so huge corpora train in bounded memory.",
)
@click.option(
    "--user-symbol",
    "user_symbols",
    multiple=True,
    help="A string kept as one piece, e.g. --user-symbol '<unk>' for WikiText. Repeatable.",
)
@click.option("--threads", default=2, show_default=True)
@click.option("--note", default="", help="Free text stored in the card, e.g. how the corpus was prepared.")
@friendly_errors
def vocab(corpus, out_prefix, size, model_type, character_coverage, input_sentence_size, user_symbols, threads, note):
    """Train a sentencepiece vocabulary on CORPUS files (UTF-8, one sentence per line).

    Byte fallback is always on, so any text encodes without out-of-vocabulary pieces. Next to the model a card
    (PREFIX.card.json) records the command, the corpus hashes, the character coverage and the average number of
    pieces per whitespace word measured on a sample.

    Example: elmokit vocab wiki.train.tokens --out vocab/en-wt2-16k --size 16000 --user-symbol '<unk>'
    """
    from elmokit.core.config import expand_path
    from elmokit.lm.vocab import train_vocab

    card = train_vocab(
        [expand_path(c, "corpus") for c in corpus],
        out_prefix,
        size,
        model_type,
        character_coverage,
        input_sentence_size,
        list(user_symbols),
        num_threads=threads,
        note=note,
        command="elmokit vocab " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else None,
    )
    s = card["measured_on_sample"]
    click.echo(
        f"wrote {out_prefix}.model ({card['vocab_size']} pieces); character coverage "
        f"{s['character_coverage']:.4%}, {s['pieces_per_word']:.3f} pieces per word on a sample"
    )


@click.command()
@click.option(
    "--config",
    "config",
    type=click.Path(),
    default=None,
    help="Recipe YAML (see recipes/lm/). Without it: the tiny defaults plus your overrides.",
)
@click.option(
    "--direction",
    type=click.Choice(DIRECTIONS),
    required=True,
    help="Which LM of the biLM: each direction is its own run and checkpoint.",
)
@click.option("--out", required=True, type=click.Path(), help="Run directory: checkpoints/, metrics.jsonl, model/.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue exactly from the newest checkpoint in --out (its files and the config are checked).",
)
@click.option(
    "--resume-from",
    default=None,
    metavar="CKPT",
    help="Continue from this checkpoint instead (a directory in OUT/checkpoints/ or its step number).",
)
@click.option("--overwrite", is_flag=True, help="Start over in an --out that holds checkpoints or a finished model.")
@click.option(
    "--init-from",
    type=click.Path(),
    default=None,
    help="Start from another model's weights (domain fine-tuning); the vocab must be the same.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.argument("overrides", nargs=-1)
@friendly_errors
def pretrain(config, direction, out, resume, resume_from, overwrite, init_from, quiet, overrides):
    """Pretrain one direction of the biLM. OVERRIDES are key=value pairs, e.g. train.lr=0.001 model.size=small.

    \b
    One process:   elmokit pretrain --config recipes/lm/wikitext2-small.yaml --direction forward --out runs/f
    Two CPU procs: accelerate launch --multi_gpu --num_processes 2 -m elmokit.cli pretrain --config ... --out runs/f
                   (without GPUs the processes train over gloo; `--cpu` would start one MPI-style process only)
    Eight GPUs:    accelerate launch --multi_gpu --num_processes 8 -m elmokit.cli pretrain --config ... --out runs/f

    train.batch_size is the global number of streams, split over the processes; the loss, learning rate and step
    count do not change with the number of processes. Metrics go to OUT/metrics.jsonl, the final model to
    OUT/model/, the curves to OUT/curves.png.
    """
    from elmokit.lm.pretrain import pretrain as run

    run(
        config,
        direction,
        out,
        list(overrides),
        resume=resume,
        init_from=init_from,
        progress=not quiet,
        overwrite=overwrite,
        resume_from=resume_from,
    )


@click.command()
@click.argument("model", type=click.Path())
@click.option("--corpus", "corpus", multiple=True, required=True, type=click.Path(), help="Text file(s). Repeatable.")
@choice_option(
    "--mode",
    ["stream", "sentence"],
    "stream",
    "stream: carried state over the whole text (as in training); sentence: each line alone.",
)
@click.option("--batch", default=10, show_default=True, help="Streams (stream mode) or sentences per batch.")
@click.option("--bptt", default=35, show_default=True, help="Window length in stream mode (state is carried).")
@click.option("--max-tokens", default=0, help="Evaluate only the first N tokens (0 = all).")
@cache_dir_option()
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line.")
@friendly_errors
def evaluate(model, corpus, mode, batch, bptt, max_tokens, cache_dir, as_json):
    """Full-softmax perplexity of MODEL (a pretrain --out directory) on text files, per subword and per word, and
    bits per character.

    Per-word perplexity sums each word's pieces' log-probabilities and divides by whitespace words plus one </s> per
    line, so it compares with word-level results on the same text; bits per character divides the same total by
    the characters (plus one line end per line), so it compares with character-level LMs, whatever the vocabulary.
    """
    from elmokit.lm.evaluate import evaluate_model

    at_least(**{"--batch": (batch, 1), "--bptt": (bptt, 1), "--max-tokens": (max_tokens, 0)})
    r = evaluate_model(
        model, list(corpus), mode, batch, bptt, cache_dir=cache_dir, max_tokens=max_tokens, progress=not as_json
    )
    if r.get("warning"):
        click.echo(r["warning"], err=True)
    if as_json:
        click.echo(json.dumps(r))
    else:
        per_word = (
            f"{r['word_ppl']:.2f}"
            if r["word_ppl"] is not None
            else "not known (--max-tokens cuts lines, so the words read are not counted)"
        )
        bpc = f", {r['bits_per_char']:.3f} bits per character" if r["bits_per_char"] is not None else ""
        click.echo(
            f"{r['direction']} LM, {mode} mode: {r['tokens']:,} pieces, {r['words']:,} words; "
            f"perplexity per subword {r['subword_ppl']:.2f}, per word {per_word}{bpc}"
        )


@click.command()
@click.argument("forward", type=click.Path())
@click.argument("backward", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="The biLM directory to write.")
@friendly_errors
def bundle(forward, backward, out):
    """Pair a FORWARD and a BACKWARD LM (pretrain --out directories) into one self-contained biLM directory.

    The pair is checked (directions, same vocabulary, same shape) before anything is written. The bundle holds both
    model directories and a manifest pinning their hashes; `embed` and the Python API accept it.
    """
    from elmokit.bilm.bundle import write_bundle

    path = write_bundle(forward, backward, out)
    click.echo(f"biLM bundle written to {path}")


@click.command()
@click.argument("model", type=click.Path())
@click.argument("input_file", metavar="INPUT", type=click.Path())
@click.argument("output", type=click.Path())
@choice_option("--layers", LAYER_MODES, "all", "all: (layers, words, 2D) per sentence; top / average: (words, 2D).")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True)
@choice_option(
    "--layout",
    LAYOUTS,
    "allennlp",
    "allennlp: one dataset per line (keys '0', '1', ...) + sentence_to_index; packed: one chunked "
    "word-major array + offsets, for large corpora.",
)
@click.option(
    "--batch-tokens",
    default=0,
    show_default=True,
    help="Padded positions per batch; 0: the biLM's own (1,000 pieces for elmokit's biLMs, 3,000 words "
    "for an imported ELMo: 128 sentences of 20 words). Larger batches take more memory and can be "
    "faster on long lines (measured in recipes/README.md).",
)
@choice_option(
    "--pooling", POOLINGS, "edges", "edges: forward state at a word's last piece, backward state at its first."
)
@click.option("--tokenized", is_flag=True, help="INPUT is one token per line, blank lines between sentences.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue OUTPUT.partial/ left by a killed run (or a full disk) with the same input and options.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing OUTPUT (once the new one is complete) or start over from an unfinished OUTPUT.partial/.",
)
@click.option(
    "--chunk-lines",
    default=0,
    show_default=True,
    help="Lines per resumable part (0: 10,000 for allennlp, 1,000 for packed); a kill loses at most one.",
)
@click.option(
    "--backward",
    type=click.Path(),
    default=None,
    help="Backward model directory, when MODEL is a forward model rather than a bundle.",
)
@click.option(
    "--stateful",
    is_flag=True,
    help="Imported ELMo only: carry the LSTM state from batch to batch, row by row, as bilm-tf and "
    "AllenNLP do (their exact numbers; vectors then depend on order and --batch-size).",
)
@click.option("--batch-size", default=64, show_default=True, help="Sentences per batch with --stateful (AllenNLP's).")
@click.option(
    "--device",
    default=None,
    help="cpu, cuda or cuda:N (default: what accelerate gives this process: its GPU under torchrun or accelerate "
    "launch, the GPU when there is one, else the CPU).",
)
@choice_option(
    "--precision",
    INFERENCE_PRECISIONS,
    "fp32",
    "bf16 / fp16: autocast on a GPU (faster; vectors differ from fp32's and depend slightly on the batch).",
)
@click.option(
    "--threads",
    default=0,
    show_default=True,
    help="CPU threads per process (0: torch's default for one process; the cores shared out among N processes).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def embed(
    model,
    input_file,
    output,
    layers,
    dtype,
    layout,
    batch_tokens,
    pooling,
    tokenized,
    resume,
    overwrite,
    chunk_lines,
    backward,
    stateful,
    batch_size,
    device,
    precision,
    threads,
    quiet,
):
    """Write contextual vectors of every sentence of INPUT into OUTPUT (HDF5).

    MODEL is a biLM bundle (`elmokit bundle`, or `elmokit import-elmo` for the original ELMo). Each line of INPUT is
    a sentence of whitespace-separated words; an empty line gives a sentence of zero words. Each sentence is
    embedded from a fresh state, so its vectors do not depend on its neighbours or its batch (unless --stateful).
    The file is written in parts under OUTPUT.partial/ and becomes OUTPUT only when complete and verified; after a
    kill or a full disk, --resume continues from the last whole part.
    An existing OUTPUT is kept unless --overwrite.

    Read it back with plain h5py (f["0"][()]) or elmokit.embed.EmbeddingsFile (either layout).

    \b
    Many processes, one file (each embeds a share of the lines; the first merges; --resume with any N):
      torchrun --nproc_per_node 2 -m elmokit.cli embed MODEL in.txt out.hdf5
      accelerate launch --multi_gpu --num_processes 4 -m elmokit.cli embed MODEL in.txt out.hdf5
    Several machines: the same, with OUTPUT on a filesystem every process sees.
    """
    import os

    import torch

    from elmokit.core.malloc import keep_freed_memory
    from elmokit.embed import Embedder

    at_least(**{"--threads": (threads, 0), "--chunk-lines": (chunk_lines, 0), "--batch-tokens": (batch_tokens, 0)})
    keep_freed_memory()  # each chunk's output buffers come from reused memory, not fresh page faults
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if threads or local > 1:  # N processes on one machine share its cores
        torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local))
    emb = Embedder(
        model,
        backward,
        device=device,
        pooling=pooling,
        batch_tokens=batch_tokens,
        stateful=stateful,
        batch_size=batch_size,
        precision=precision,
    )
    path = emb.embed_file(
        input_file,
        output,
        layers=layers,
        dtype=dtype,
        layout=layout,
        tokenized=tokenized,
        resume=resume,
        progress=not quiet,
        overwrite=overwrite,
        chunk_lines=chunk_lines,
    )
    if path == Path(output):  # the main process, which merged
        click.echo(f"wrote {path}")


@click.command("import-elmo")
@click.argument("source", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="The biLM bundle directory to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out (once the new one is complete).")
@friendly_errors
def import_elmo(source, out, overwrite):
    """Import a published ELMo as an elmokit biLM bundle, usable by every command that takes a biLM.

    \b
    SOURCE is either
      OPTIONS.json WEIGHTS.hdf5   bilm-tf / AllenNLP files (e.g. the English ELMo of Peters et al.), or
      MODEL_DIR                   an ELMoForManyLangs model directory (config.json, char.dic, word.dic,
                                  token_embedder.pkl, encoder.pkl)

    The bundle records the source files' sha256. Options the format does not allow and weights that do not fit
    them are refused. Then, for instance:

    \b
      elmokit embed BILM sentences.txt vectors.hdf5              each sentence from a fresh state
      elmokit embed BILM sentences.txt vectors.hdf5 --stateful   bilm-tf's / AllenNLP's numbers
    """
    from elmokit.core.errors import ElmokitError

    # --out is checked before anything is read (see elmokit.bilm.import_elmo.check_out): not a source, not a link,
    # an existing one only with --overwrite and only a bundle; what a killed import left beside it is put right
    if len(source) == 2:
        from elmokit.bilm.import_elmo import import_bilm_tf

        path = import_bilm_tf(source[0], source[1], out, overwrite=overwrite)
    elif len(source) == 1:
        from elmokit.bilm.import_elmo import import_manylangs

        path = import_manylangs(source[0], out, overwrite=overwrite)
    else:
        raise ElmokitError(
            f"expected OPTIONS.json WEIGHTS.hdf5 or one ELMoForManyLangs directory, got {len(source)} paths"
        )
    from elmokit.bilm.bundle import load_bilm

    bilm = load_bilm(path)
    click.echo(f"wrote {path}: {bilm.num_layers} layers of {2 * bilm.dim}")
