"""The ``elmokit`` command line. Thin: each command parses options and calls one function; heavy imports
(torch, datasets, accelerate) happen inside the commands so ``elmokit --help`` is instant."""

from __future__ import annotations

import errno
import functools
import shlex
import json
import sys

import click

from elmokit import __version__
from elmokit.choices import CELL_FEATURES, DIRECTIONS, DTYPES, LAYER_MODES, LAYOUTS, POOLINGS, TASK_FORMATS, VOCAB_TYPES


def friendly_errors(fn):
    """Turn :class:`~elmokit.errors.ElmokitError` into ``error: ...`` on stderr and exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from elmokit.errors import ElmokitError

        try:
            return fn(*args, **kwargs)
        except ElmokitError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except OSError as e:  # a full disk where no stage caught it: one line, not a traceback
            if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise
            click.echo(f"error: {e.filename or 'a file'}: cannot write ({e.strerror}); free space and run again "
                       f"(with --resume where the command has it)", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; a run with checkpoints continues with --resume", err=True)
            sys.exit(130)

    return wrapper


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


@main.command()
@click.argument("corpus", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_prefix", required=True, help="Output prefix: writes PREFIX.model, .vocab and .card.json.")
@click.option("--size", default=16000, show_default=True, help="Vocabulary size (number of pieces).")
@click.option("--model-type", type=click.Choice(VOCAB_TYPES), default="unigram", show_default=True,
              help="char: one piece per character (every character meeting --character-coverage; --size is then "
                   "only a cap), for character-level LMs: pretrain, evaluate (bits per character) and generate "
                   "then work one character at a time.")
@click.option("--character-coverage", default=0.9995, show_default=True,
              help="Share of characters covered by pieces; the rest use byte fallback. 0.9995 suits Korean/CJK.")
@click.option("--input-sentence-size", default=2_000_000, show_default=True,
              help="Lines sampled for training, so huge corpora train in bounded memory.")
@click.option("--user-symbol", "user_symbols", multiple=True,
              help="A string kept as one piece, e.g. --user-symbol '<unk>' for WikiText. Repeatable.")
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
    from elmokit.config import expand_path
    from elmokit.vocab import train_vocab

    card = train_vocab([expand_path(c, "corpus") for c in corpus], out_prefix, size, model_type, character_coverage, input_sentence_size,
                       list(user_symbols), num_threads=threads, note=note,
                       command="elmokit vocab " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else None)
    s = card["measured_on_sample"]
    click.echo(f"wrote {out_prefix}.model ({card['vocab_size']} pieces); character coverage "
               f"{s['character_coverage']:.4%}, {s['pieces_per_word']:.3f} pieces per word on a sample")


@main.command()
@click.option("--config", "config", type=click.Path(), default=None,
              help="Recipe YAML (see recipes/lm/). Without it: the tiny defaults plus your overrides.")
@click.option("--direction", type=click.Choice(DIRECTIONS), required=True,
              help="Which LM of the biLM: each direction is its own run and checkpoint.")
@click.option("--out", required=True, type=click.Path(), help="Run directory: checkpoints/, metrics.jsonl, model/.")
@click.option("--resume", is_flag=True,
              help="Continue exactly from the newest checkpoint in --out (its files and the config are checked).")
@click.option("--resume-from", default=None, metavar="CKPT",
              help="Continue from this checkpoint instead (a directory in OUT/checkpoints/ or its step number).")
@click.option("--overwrite", is_flag=True, help="Start over in an --out that holds checkpoints or a finished model.")
@click.option("--init-from", type=click.Path(), default=None,
              help="Start from another model's weights (domain fine-tuning); the vocab must be the same.")
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
    from elmokit.pretrain import pretrain as run

    run(config, direction, out, list(overrides), resume=resume, init_from=init_from, progress=not quiet,
        overwrite=overwrite, resume_from=resume_from)


@main.command()
@click.argument("model", type=click.Path())
@click.option("--corpus", "corpus", multiple=True, required=True, type=click.Path(), help="Text file(s). Repeatable.")
@click.option("--mode", type=click.Choice(["stream", "sentence"]), default="stream", show_default=True,
              help="stream: carried state over the whole text (as in training); sentence: each line alone.")
@click.option("--batch", default=10, show_default=True, help="Streams (stream mode) or sentences per batch.")
@click.option("--bptt", default=35, show_default=True, help="Window length in stream mode (state is carried).")
@click.option("--max-tokens", default=0, help="Evaluate only the first N tokens (0 = all).")
@click.option("--cache-dir", default="~/.cache/elmokit", show_default=True, envvar="ELMOKIT_CACHE",
              help="Where encoded corpora are cached (env ELMOKIT_CACHE).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line.")
@friendly_errors
def evaluate(model, corpus, mode, batch, bptt, max_tokens, cache_dir, as_json):
    """Full-softmax perplexity of MODEL (a pretrain --out directory) on text files, per subword and per word, and
    bits per character.

    Per-word perplexity sums each word's pieces' log-probabilities and divides by whitespace words plus one </s> per
    line, so it compares with word-level results on the same text; bits per character divides the same total by
    the characters (plus one line end per line), so it compares with character-level LMs, whatever the vocabulary.
    """
    from elmokit.evaluate import evaluate_model

    r = evaluate_model(model, list(corpus), mode, batch, bptt, cache_dir=cache_dir, max_tokens=max_tokens,
                       progress=not as_json)
    if r.get("warning"):
        click.echo(r["warning"], err=True)
    if as_json:
        click.echo(json.dumps(r))
    else:
        per_word = (f"{r['word_ppl']:.2f}" if r["word_ppl"] is not None
                    else "not known (--max-tokens cuts lines, so the words read are not counted)")
        bpc = f", {r['bits_per_char']:.3f} bits per character" if r["bits_per_char"] is not None else ""
        click.echo(f"{r['direction']} LM, {mode} mode: {r['tokens']:,} pieces, {r['words']:,} words; "
                   f"perplexity per subword {r['subword_ppl']:.2f}, per word {per_word}{bpc}")


@main.command()
@click.argument("model", type=click.Path())
@click.option("--prompt", default="", help="Text to continue (forward LM) or to precede (backward LM).")
@click.option("--tokens", "n_tokens", default=60, show_default=True, help="Pieces to sample.")
@click.option("--temperature", default=0.8, show_default=True)
@click.option("--top-k", default=40, show_default=True, help="Sample among the k likeliest pieces (0 = all).")
@click.option("--seed", default=0, show_default=True)
@friendly_errors
def generate(model, prompt, n_tokens, temperature, top_k, seed):
    """Sample text from MODEL: a forward LM continues --prompt, a backward LM writes what comes before it."""
    from elmokit.checkpoint import load_model
    from elmokit.generate import sample

    loaded = load_model(model)
    lm, vocab, manifest = loaded.model, loaded.vocab, loaded.manifest
    click.echo(sample(lm, vocab, prompt, n_tokens, temperature, top_k, seed, manifest["direction"] == "backward"))


@main.command()
@click.argument("model", type=click.Path())
@click.argument("input_files", metavar="INPUT...", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Directory for cells.json, cells.html and cells.png.")
@click.option("--feature", "features", multiple=True, type=click.Choice(list(CELL_FEATURES)),
              help="Rank units by this feature (repeatable; default: all of them).")
@click.option("--regex", default=None, help="One more feature: inside a match of this regular expression.")
@click.option("--unit", "units", multiple=True, metavar="STATE:INDEX",
              help="Show this unit, e.g. c1:17 (layer 1's cell state, unit 17) or h2:5 (repeatable; default: the "
                   "best unit of each feature).")
@click.option("--max-pieces", default=40000, show_default=True, help="Read at most this many pieces of INPUT.")
@click.option("--top", default=10, show_default=True, help="Units listed per feature in cells.json.")
@click.option("--control", is_flag=True,
              help="Also rank the units of an untrained model of the same shape: the chance level to beat.")
@click.option("--show-chars", default=3000, show_default=True, help="Characters of text on the page.")
@click.option("--json", "as_json", is_flag=True, help="Print cells.json's content instead of the table.")
@friendly_errors
def cells(model, input_files, out, features, regex, units, max_pieces, top, control, show_chars, as_json):
    """Look inside an LM: record every unit of every layer (hidden state h, and the LSTM's cell state c) over INPUT,
    rank the units by how well they track a feature of the text, and colour the text by a unit's activation.

    MODEL is an LM (a `pretrain --out` directory, or BILM/forward, BILM/backward of a bundle); pieces or
    characters (`vocab --model-type char`), either direction. Features: quotes and brackets (inside or not),
    line_position and word_position (characters so far), digits, and --regex. Units are chosen on the first half
    of INPUT and scored on the second: AUC for yes/no features, correlation for positions. Writes OUT/cells.json
    (the ranking), OUT/cells.html (the text coloured by each shown unit) and OUT/cells.png (the first one).

    Example: elmokit cells runs/char-lstm wiki.valid.tokens --out runs/char-lstm/cells --control
    """
    from elmokit.cells import inspect_cells, summary_lines

    r = inspect_cells(model, list(input_files), out, list(features), regex, list(units), max_pieces, top, control,
                      max_chars=show_chars)
    if as_json:
        click.echo(json.dumps(r))
    else:
        click.echo("\n".join(summary_lines(r)))
        click.echo(f"wrote {out}/cells.json, cells.html and cells.png")


@main.command()
@click.argument("model", type=click.Path())
@click.argument("corpus", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Output path without suffix: writes OUT.json and OUT.png.")
@click.option("--max-lag", default=300, show_default=True, help="The longest lag k measured (steps back).")
@click.option("--sequences", default=32, show_default=True, help="Sequences drawn from CORPUS (the median is shown).")
@click.option("--warmup", default=100, show_default=True, help="Pieces read (no gradient) before the measured steps.")
@click.option("--seed", default=0, show_default=True, help="Where the sequences start.")
@click.option("--cache-dir", default="~/.cache/elmokit", show_default=True, envvar="ELMOKIT_CACHE",
              help="Where encoded corpora are cached (env ELMOKIT_CACHE).")
@click.option("--quiet", is_flag=True, help="No progress bar or table.")
@friendly_errors
def gradients(model, corpus, out, max_lag, sequences, warmup, seed, cache_dir, quiet):
    """How far back MODEL's gradient reaches: ||dloss_t / dstate_(t-k)|| against k, for every layer's hidden state
    (and an LSTM's cell state), median over sequences drawn from CORPUS.

    A vanilla RNN's gradient typically falls by orders of magnitude within tens of steps; an LSTM's cell state
    carries it much further. Writes OUT.json (per state: median and quartiles per lag, the lags where the gradient
    falls to 1/10, 1/100, 1/1000) and OUT.png. MODEL is a `pretrain --out` directory (any cell, either direction).

    Example: elmokit gradients runs/char-rnn wiki.valid.tokens --out runs/char-rnn/gradients --max-lag 200
    """
    from elmokit.gradients import measure_gradients, summary_lines

    r = measure_gradients(model, list(corpus), out, max_lag, sequences, warmup, seed, cache_dir, progress=not quiet)
    if not quiet:
        click.echo("\n".join(summary_lines(r)))
        click.echo(f"wrote {out}.json and {out}.png")


@main.command()
@click.argument("bilm", type=click.Path())
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", *TASK_FORMATS]), default="text", show_default=True,
              help="text: one sentence per line; or task data, read as `data.format` reads it.")
@click.option("--text-column", default="", help="A table's text (or tokens) column, as data.text_column.")
@click.option("--lines", "max_lines", default=2000, show_default=True, help="Lines sampled from the text.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line.")
@friendly_errors
def fit(bilm, files, fmt, text_column, max_lines, as_json):
    """Does BILM fit this text? Each direction's perplexity per piece on a sample of FILE against its own
    validation perplexity (from its manifest), the text's casing and the characters the vocabulary lacks.

    A ratio above 2 means the biLM reads the text as foreign (lower-cased or re-tokenized text, another domain or
    language): its vectors may then hurt a downstream model. The fix is one command, `elmokit adapt`, which the
    warning spells out. Every downstream run makes this check on its training text and records it in results.json.

    Example: elmokit fit runs/wt2-bilm reviews.txt
    """
    from elmokit.fit import measure_fit, read_text, summary_lines

    r = measure_fit(bilm, read_text(list(files), fmt, text_column=text_column), max_lines, what=", ".join(files))
    if as_json:
        click.echo(json.dumps(r))
    else:
        click.echo("\n".join(summary_lines(r)))
    if r["warning"]:
        click.echo(r["warning"], err=True)


@main.command()
@click.argument("bilm", type=click.Path())
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="The adapted biLM bundle to write (runs go to OUT.work/).")
@click.option("--minutes", default=10.0, show_default=True, help="Budget per direction (both run side by side on 2+ cores).")
@click.option("--epochs", default=4, show_default=True, help="At most this many passes over the text.")
@click.option("--dev", "dev", default=None, type=click.Path(),
              help="Held-out text to measure on (default: every 20th line of FILE, at most 2,000).")
@click.option("--format", "fmt", type=click.Choice(["text", *TASK_FORMATS]), default="text", show_default=True,
              help="text: one sentence per line; or task data (its words are the text; labels are ignored).")
@click.option("--text-column", default="", help="A table's text (or tokens) column, as data.text_column.")
@click.option("--cache-dir", default="~/.cache/elmokit", show_default=True, envvar="ELMOKIT_CACHE",
              help="Where encoded text is cached (env ELMOKIT_CACHE).")
@click.option("--overwrite", is_flag=True, help="Replace an adapted biLM already at --out.")
@friendly_errors
def adapt(bilm, files, out, minutes, epochs, dev, fmt, text_column, cache_dir, overwrite):
    """Adapt BILM to unlabelled text: both LMs continue training from their weights on FILE (a third of their
    learning rate, a cosine schedule sized to --minutes), are measured before and after on held-out lines, and
    are bundled at --out. Point a task config's model.bilm at the result.

    Works from a few thousand sentences (a treebank's training text) to millions (the budget then caps it).
    Interrupted, the same command resumes.

    Example: elmokit adapt runs/wt2-bilm ewt-train.conllu --format conllu --out runs/ewt-bilm --minutes 12
    """
    from elmokit.adapt import adapt as run_adapt
    from elmokit.fit import read_text

    lines = read_text(list(files), fmt, text_column=text_column)
    dev_lines = read_text([dev], fmt, text_column=text_column) if dev else None
    r = run_adapt(bilm, lines, out, minutes, dev_lines, epochs, cache_dir, overwrite)
    for d in ("forward", "backward"):
        click.echo(f"{d}: held-out perplexity per piece {r['dev_ppl_before'][d]:.1f} -> {r['dev_ppl_after'][d]:.1f}")
    click.echo(f"adapted biLM written to {out} ({r['steps']} steps per direction on {r['train_lines']:,} lines; "
               f"figures in {out}.work/adapt.json)")


@main.command()
@click.argument("forward", type=click.Path())
@click.argument("backward", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="The biLM directory to write.")
@friendly_errors
def bundle(forward, backward, out):
    """Pair a FORWARD and a BACKWARD LM (pretrain --out directories) into one self-contained biLM directory.

    The pair is checked (directions, same vocabulary, same shape) before anything is written. The bundle holds both
    model directories and a manifest pinning their hashes; `embed` and the Python API accept it.
    """
    from elmokit.bilm import write_bundle

    path = write_bundle(forward, backward, out)
    click.echo(f"biLM bundle written to {path}")


@main.command()
@click.argument("model", type=click.Path())
@click.argument("input_file", metavar="INPUT", type=click.Path())
@click.argument("output", type=click.Path())
@click.option("--layers", type=click.Choice(LAYER_MODES), default="all", show_default=True,
              help="all: (layers, words, 2D) per sentence; top / average: (words, 2D).")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True)
@click.option("--layout", type=click.Choice(LAYOUTS), default="allennlp", show_default=True,
              help="allennlp: one dataset per line (keys '0', '1', ...) + sentence_to_index; packed: one chunked "
                   "word-major array + offsets, for large corpora.")
@click.option("--batch-tokens", default=0, show_default=True,
              help="Padded positions per batch; 0: the biLM's own (1,000 pieces for elmokit's biLMs, 3,000 words "
                   "for an imported ELMo, the fastest here; larger batches page-fault their big buffers on CPU).")
@click.option("--pooling", type=click.Choice(POOLINGS), default="edges", show_default=True,
              help="edges: forward state at a word's last piece, backward state at its first.")
@click.option("--tokenized", is_flag=True, help="INPUT is one token per line, blank lines between sentences.")
@click.option("--resume", is_flag=True,
              help="Continue OUTPUT.partial/ left by a killed run (or a full disk) with the same input and options.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT (once the new one is complete) or "
                                                "start over from an unfinished OUTPUT.partial/.")
@click.option("--chunk-lines", default=0, show_default=True,
              help="Lines per resumable part (0: 10,000 for allennlp, 1,000 for packed); a kill loses at most one.")
@click.option("--backward", type=click.Path(), default=None,
              help="Backward model directory, when MODEL is a forward model rather than a bundle.")
@click.option("--stateful", is_flag=True,
              help="Imported ELMo only: carry the LSTM state from batch to batch, row by row, as bilm-tf and "
                   "AllenNLP do (their exact numbers; vectors then depend on order and --batch-size).")
@click.option("--batch-size", default=64, show_default=True, help="Sentences per batch with --stateful (AllenNLP's).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def embed(model, input_file, output, layers, dtype, layout, batch_tokens, pooling, tokenized, resume, overwrite,
          chunk_lines, backward, stateful, batch_size, quiet):
    """Write contextual vectors of every sentence of INPUT into OUTPUT (HDF5).

    MODEL is a biLM bundle (`elmokit bundle`, or `elmokit import-elmo` for the original ELMo). Each line of INPUT is
    a sentence of whitespace-separated words; an empty line gives a sentence of zero words. Each sentence is
    embedded from a fresh state, so its vectors do not depend on its neighbours or its batch (unless --stateful). The file is written in parts under OUTPUT.partial/ and becomes OUTPUT
    only when complete and verified; after a kill or a full disk, --resume continues from the last whole part.
    An existing OUTPUT is kept unless --overwrite.

    Read it back with plain h5py (f["0"][()]) or elmokit.embed.EmbeddingsFile (either layout).
    """
    from elmokit.embed import Embedder
    from elmokit.malloc import keep_freed_memory

    keep_freed_memory()  # each chunk's output buffers come from reused memory, not fresh page faults
    emb = Embedder(model, backward, pooling=pooling, batch_tokens=batch_tokens, stateful=stateful,
                   batch_size=batch_size)
    path = emb.embed_file(input_file, output, layers=layers, dtype=dtype, layout=layout, tokenized=tokenized,
                          resume=resume, progress=not quiet, overwrite=overwrite, chunk_lines=chunk_lines)
    click.echo(f"wrote {path}")


@main.command("import-elmo")
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
    from pathlib import Path

    from elmokit.errors import ElmokitError

    if Path(out).exists() and not overwrite:
        raise ElmokitError(f"{out}: exists; pass --overwrite to replace it, or choose another --out")
    if len(source) == 2:
        from elmokit.import_elmo import import_bilm_tf

        path = import_bilm_tf(source[0], source[1], out)
    elif len(source) == 1:
        from elmokit.import_elmo import import_manylangs

        path = import_manylangs(source[0], out)
    else:
        raise ElmokitError(f"expected OPTIONS.json WEIGHTS.hdf5 or one ELMoForManyLangs directory, got {len(source)} "
                           f"paths")
    from elmokit.bilm import load_bilm

    bilm = load_bilm(path)
    click.echo(f"wrote {path}: {bilm.num_layers} layers of {2 * bilm.dim}")


def _train(task: str, config, out, resume, overwrite, quiet, overrides) -> None:
    from elmokit.tasks.train import load_task_config, train_task

    cfg = load_task_config(config, list(overrides), task=task, out=out)
    if quiet:
        cfg.train.progress = False
    summary = train_task(cfg, resume=resume, overwrite=overwrite)
    click.echo(json.dumps({k: v for k, v in summary.items() if k in ("dev", "test", "mix_weights", "best_step")}))
    click.echo(f"model: {cfg.out}/model")


_TRAIN_OPTIONS = [
    click.argument("config", type=click.Path()),
    click.argument("overrides", nargs=-1),
    click.option("--out", type=click.Path(), default=None, help="Run directory (overrides `out:` in the config)."),
    click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint (saved after every evaluation); the "
                                                "config, data and biLM must be those it was made with."),
    click.option("--overwrite", is_flag=True, help="Start over in an OUT that holds a finished run or a checkpoint."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
]


def _train_options(fn):
    for opt in reversed(_TRAIN_OPTIONS):
        fn = opt(fn)
    return fn


@main.command("train-tagger")
@_train_options
@friendly_errors
def train_tagger(config, overrides, out, resume, overwrite, quiet):
    """Train a BiLSTM(-CRF) tagger (POS, NER) on the biLM's scalar mix. OVERRIDES are key=value pairs.

    \b
    elmokit train-tagger recipes/tasks/ewt-upos.yaml                       (see the recipe's first line)
    elmokit train-tagger recipes/tasks/ewt-upos.yaml model.use_elmo=false  the same model without ELMo
    elmokit train-tagger C.yaml data.format=conll data.scheme=iob1 data.train=train.txt data.dev=dev.txt

    Features come from an HDF5 cache per split (train.features=cache, embedded once) or the biLM on the fly
    (train.features=on_the_fly). The best model on dev goes to OUT/model; OUT/results.json has the dev and test
    scores and the learned layer weights; OUT/curves.png and OUT/mix_weights.png plot them.
    """
    _train("tagger", config, out, resume, overwrite, quiet, overrides)


@main.command("train-classifier")
@_train_options
@friendly_errors
def train_classifier(config, overrides, out, resume, overwrite, quiet):
    """Train a BiLSTM sentence classifier (max/mean/attention/max+mean pooling) on the biLM's scalar mix.

    \b
    elmokit train-classifier recipes/tasks/nsmc.yaml                       (see the recipe's first line)
    elmokit train-classifier recipes/tasks/nsmc.yaml model.use_elmo=false  the same model without ELMo

    Input is TSV: NSMC's `id<TAB>document<TAB>label` with a header, or `text<TAB>label`. Outputs as train-tagger.
    """
    _train("classifier", config, out, resume, overwrite, quiet, overrides)


@main.command()
@click.argument("model", type=click.Path())
@click.argument("input_file", metavar="INPUT", type=click.Path())
@click.argument("output", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["auto", *TASK_FORMATS, "text"]), default="auto",
              show_default=True, help="INPUT's format (auto: conllu for *.conllu, else the model's training format); "
              "text = one sentence per line, words split on whitespace.")
@click.option("--bilm", type=click.Path(), default=None, help="The biLM bundle, if it moved since training.")
@friendly_errors
def predict(model, input_file, output, fmt, bilm):
    """Tag or classify INPUT with a trained MODEL; write CoNLL (word<TAB>tag, blank line between sentences) for a
    tagger, TSV (text<TAB>label) for a classifier. Gold tags or labels in INPUT are ignored. A tagger given
    --format text writes one line of space-separated tags per input line (an empty line stays an empty line), so
    `paste INPUT OUTPUT` lines them up.

    \b
    elmokit predict ~/elmokit-runs/ewt-upos-elmo en_ewt-ud-test.conllu tagged.conll
    elmokit predict ~/elmokit-runs/nsmc-elmo reviews.txt labelled.tsv --format text
    """
    from elmokit.tasks.model_dir import load_task_model
    from elmokit.tasks.predict import run_predict

    tm = load_task_model(model, bilm)
    n = run_predict(tm, input_file, output, fmt)
    click.echo(f"wrote {output} ({n} {'sentences' if tm.cfg.task == 'tagger' else 'lines'})")


@main.command()
@click.argument("model", type=click.Path())
@click.argument("gold", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["auto", *TASK_FORMATS]), default="auto",
              show_default=True, help="GOLD's format (auto: the model's training format).")
@click.option("--bilm", type=click.Path(), default=None, help="The biLM bundle, if it moved since training.")
@friendly_errors
def score(model, gold, fmt, bilm):
    """Score a trained MODEL on a GOLD file: token accuracy (and span F1 for chunk tags) or accuracy and macro F1;
    prints JSON.

    \b
    elmokit score ~/elmokit-runs/ewt-upos-elmo $ELMOKIT_DATA/ud-english-ewt/en_ewt-ud-test.conllu
    """
    from elmokit.tasks.model_dir import load_task_model
    from elmokit.tasks.predict import run_score

    tm = load_task_model(model, bilm)
    click.echo(json.dumps(run_score(tm, gold, fmt)))


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
