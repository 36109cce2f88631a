"""Commands of the LM pipeline: ``vocab``, ``pretrain``, ``evaluate``, ``bundle``, ``import-elmo``, ``substitutes``,
``embed``."""

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
@click.option(
    "--out",
    "out_prefix",
    required=True,
    help="Output prefix: writes PREFIX.model, .vocab and .card.json (--model-type word: PREFIX.txt, "
    "PREFIX.chars.dic and .card.json).",
)
@click.option(
    "--size",
    type=int,
    default=None,
    help="Vocabulary size: pieces (default 16000), or for --model-type word the lines of PREFIX.txt, its "
    "three specials included (default: every word seen --min-count times).",
)
@choice_option(
    "--model-type",
    VOCAB_TYPES,
    "unigram",
    "char: one piece per character (every character meeting --character-coverage; --size is then "
    "only a cap), for character-level LMs: pretrain, evaluate (bits per character) and generate "
    "then work one character at a time. word: bilm-tf's word vocabulary (<S>, </S>, <UNK>, then "
    "whitespace words by count) and a character lexicon, for the original ELMo's character-CNN LM "
    "(model.encoder=char_cnn).",
)
@click.option(
    "--min-count", default=1, show_default=True, help="--model-type word: the fewest occurrences a word needs."
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
def vocab(
    corpus,
    out_prefix,
    size,
    model_type,
    min_count,
    character_coverage,
    input_sentence_size,
    user_symbols,
    threads,
    note,
):
    """Train a sentencepiece vocabulary on CORPUS files (UTF-8, one sentence per line), or count a word vocabulary.

    Byte fallback is always on, so any text encodes without out-of-vocabulary pieces. Next to the model a card
    (PREFIX.card.json) records the command, the corpus hashes, the character coverage and the average number of
    pieces per whitespace word measured on a sample.

    --model-type word writes bilm-tf's vocabulary file PREFIX.txt (what every ELMo tool reads), the character
    lexicon PREFIX.chars.dic (model.chars=lexicon: one code point per position) and a card with the share of
    running words the vocabulary covers.

    \b
    Examples:
      elmokit vocab wiki.train.tokens --out vocab/en-wt2-16k --size 16000 --user-symbol '<unk>'
      elmokit vocab wiki.train.tokens --out vocab/en-wt2-words --model-type word --min-count 3
    """
    from elmokit.core.config import expand_path

    command = "elmokit vocab " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else None
    files = [expand_path(c, "corpus") for c in corpus]
    if model_type == "word":
        from elmokit.lm.words import train_word_vocab

        at_least(**{"--min-count": (min_count, 1), "--size": (size or 0, 0)})
        card = train_word_vocab(files, out_prefix, size or 0, min_count, command=command, note=note)
        click.echo(
            f"wrote {out_prefix}.txt ({card['vocab_size']:,} words of {card['word_types']:,} seen) and "
            f"{out_prefix}.chars.dic ({card['characters']:,} characters); it covers "
            f"{card['running_words_covered']:.2%} of the running words"
        )
        return
    from elmokit.lm.vocab import train_vocab

    card = train_vocab(
        files,
        out_prefix,
        16000 if size is None else size,
        model_type,
        character_coverage,
        input_sentence_size,
        list(user_symbols),
        num_threads=threads,
        note=note,
        command=command,
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
    help="Start from another model's weights (domain fine-tuning): an LM run or model directory with the same vocab, "
    "or a character biLM (import-elmo, or a bundled char_cnn pair): its --direction's encoder and LSTMs in its shape, "
    "its softmax if over data.vocab's words, else a new one (set train.head_steps).",
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
    from elmokit.bilm.char_pair import is_char_bilm, pretrain_from_bilm
    from elmokit.lm.pretrain import pretrain as run

    if init_from and is_char_bilm(init_from):
        pretrain_from_bilm(
            config, direction, out, list(overrides), init_from, resume, not quiet, overwrite, resume_from
        )
        return
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
@click.option(
    "--threads",
    default=0,
    show_default=True,
    help="CPU threads (0 = torch's default). On a machine busy with other runs, 1 can be several times faster.",
)
@friendly_errors
def evaluate(model, corpus, mode, batch, bptt, max_tokens, cache_dir, as_json, threads):
    """Full-softmax perplexity of MODEL (a pretrain --out directory, or a biLM that kept its softmax: both
    directions) on text files, per subword and per word, and bits per character.

    Per-word perplexity sums each word's pieces' log-probabilities and divides by whitespace words plus one </s> per
    line, so it compares with word-level results on the same text; bits per character divides the same total by
    the characters (plus one line end per line), so it compares with character-level LMs, whatever the vocabulary.
    """
    from elmokit.lm.evaluate import evaluate_lm, evaluate_model

    at_least(**{"--batch": (batch, 1), "--bptt": (bptt, 1), "--max-tokens": (max_tokens, 0), "--threads": (threads, 0)})
    if threads:
        import torch

        torch.set_num_threads(threads)
    if _is_bilm_bundle(model):  # both directions of a biLM that kept its softmax
        from elmokit.bilm.domain_fit import language_models

        lms, vocab, name, mapper = language_models(model)
        results = [
            evaluate_lm(
                lm, vocab, d, list(corpus), mode, batch, bptt, cache_dir, max_tokens, not as_json, mapper, name=name
            )
            for d, (lm, _) in lms.items()
        ]
    else:
        results = [
            evaluate_model(
                model, list(corpus), mode, batch, bptt, cache_dir=cache_dir, max_tokens=max_tokens, progress=not as_json
            )
        ]
    for r in results:
        _print_perplexity(r, mode, as_json)


def _is_bilm_bundle(path: str) -> bool:
    """A biLM bundle (``elmokit bundle``, ``import-elmo``) rather than one LM's run or model directory."""
    manifest = Path(path) / "manifest.json"
    try:
        return (
            json.loads(manifest.read_text(encoding="utf-8"))
            .get("format", "")
            .startswith(("elmokit-bilm", "elmokit-charbilm"))
        )
    except (OSError, ValueError, AttributeError):
        return False


def _print_perplexity(r: dict, mode: str, as_json: bool) -> None:
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
            f"{r['direction']} LM, {mode} mode: {r['tokens']:,} tokens predicted, {r['words']:,} words; "
            f"perplexity per subword {r['subword_ppl']:.2f}, per word {per_word}{bpc}"
        )


@click.command()
@click.argument("forward", type=click.Path())
@click.argument("backward", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="The biLM directory to write.")
@choice_option(
    "--encoder",
    ("same", "forward", "backward"),
    "same",
    "Two character-CNN LMs: the token encoder of the biLM (its files hold one). same: the LMs' must be equal "
    "(the backward trained with model.encoder_from=FWD, kept frozen: the default, and the measured best); "
    "backward: the backward LM's (trained further with model.train_encoder=true) for both, which the forward LM "
    "was not trained on (measured: its perplexity ~5x worse); forward: the forward's.",
)
@friendly_errors
def bundle(forward, backward, out, encoder):
    """Pair a FORWARD and a BACKWARD LM (pretrain --out directories) into one self-contained biLM directory.

    The pair is checked (directions, same vocabulary, same shape) before anything is written. The bundle holds both
    model directories and a manifest pinning their hashes; `embed` and the Python API accept it. Two
    character-CNN LMs (model.encoder=char_cnn) become a character biLM in bilm-tf's layout (one token encoder, each
    direction's softmax, the word vocabulary), which `elmokit export-elmo` writes as options.json + weights.hdf5.

    Example: elmokit bundle runs/fwd runs/bwd --out runs/bilm
    """
    from elmokit.bilm.bundle import write_bundle

    path = write_bundle(forward, backward, out, encoder)
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
@click.option(
    "--vocab",
    type=click.Path(),
    default=None,
    help="With OPTIONS.json WEIGHTS.hdf5: bilm-tf's word vocabulary (vocab.txt, or .gz), kept in the bundle; it names "
    "the rows of the softmax where the weights hold one (an archive or directory brings its own).",
)
@friendly_errors
def import_elmo(source, out, overwrite, vocab):
    """Import a published ELMo as an elmokit biLM bundle, usable by every command that takes a biLM.

    \b
    SOURCE is one of
      MODEL.zip                   an archive as published: the NLPL repository's (model.hdf5, options.json,
                                  vocab.txt or vocab.txt.gz, meta.json) or ELMoForManyLangs' (config.json,
                                  char.dic, word.dic, token_embedder.pkl, encoder.pkl), read straight from it
      OPTIONS.json WEIGHTS.hdf5   bilm-tf / AllenNLP files (e.g. the English ELMo of Peters et al.)
      MODEL_DIR                   an ELMoForManyLangs model directory, or an NLPL archive unpacked

    The bundle records the source files' sha256 (and the archive's, and NLPL's meta.json). Options the format does
    not allow and weights that do not fit them are refused. The vocabulary is kept, and the softmax where the
    weights hold one (softmax/W, softmax/b: bilm-tf's dump_weights leaves them out, so published model.hdf5 files
    have none). Then, for instance:

    \b
      elmokit import-elmo 144.zip --out elmo-en                  an archive of the NLPL repository
      elmokit embed BILM sentences.txt vectors.hdf5              each sentence from a fresh state
      elmokit embed BILM sentences.txt vectors.hdf5 --stateful   bilm-tf's / AllenNLP's numbers
      elmokit substitutes BILM "the cat sat" --position 1        where the model kept its softmax
    """
    from elmokit.core.errors import ElmokitError

    # --out is checked before anything is read (see elmokit.bilm.import_elmo.check_out): not a source, not a link,
    # an existing one only with --overwrite and only a bundle; what a killed import left beside it is put right
    if len(source) == 2:
        from elmokit.bilm.import_elmo import import_bilm_tf

        path = import_bilm_tf(source[0], source[1], out, overwrite=overwrite, vocab=vocab)
    elif len(source) == 1:
        from elmokit.bilm.import_elmo import import_path

        if vocab is not None:
            raise ElmokitError(
                f"--vocab {vocab}: goes with OPTIONS.json WEIGHTS.hdf5; an archive or a model directory brings its own"
            )
        path = import_path(source[0], out, overwrite=overwrite)
    else:
        raise ElmokitError(
            f"expected MODEL.zip, OPTIONS.json WEIGHTS.hdf5 or one model directory, got {len(source)} paths"
        )
    from elmokit.bilm.bundle import load_bilm

    bilm = load_bilm(path)
    kept = ""
    if getattr(bilm, "words", None):
        softmax = "its softmax" if bilm.has_softmax else "no softmax"
        kept = f"; a vocabulary of {len(bilm.words):,} words, {softmax}"
    click.echo(f"wrote {path}: {bilm.num_layers} layers of {2 * bilm.dim}{kept}")
    manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
    for note in manifest.get("source", {}).get("notes", []):
        click.echo(f"note: {note}")


@click.command()
@click.argument("bilm", type=click.Path())
@click.argument("sentence")
@click.option("--position", "-k", type=int, required=True, help="Which word (0-based over whitespace words).")
@click.option("--top", default=10, show_default=True, help="Candidates per list.")
@click.option(
    "--delimiters",
    is_flag=True,
    help="Keep the sentence delimiters among the candidates (<S>, </S>; for pieces <s>, </s>, <pad>), which "
    "simple_elmo leaves out.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line.")
@friendly_errors
def substitutes(bilm, sentence, position, top, delimiters, device, as_json):
    """The language models' most likely words at one position of SENTENCE (simple_elmo's "substitutes").

    The forward LM's, given the words before position K (its top layer at the word before, <S> for the first),
    the backward LM's, given the words after it, each with its probability (the full softmax), and both together
    (the geometric mean of the two, which ranks as their product). BILM needs a softmax: elmokit's own biLM
    (`elmokit bundle`; its candidates are sentencepiece pieces, said in the output), or an ELMo imported from
    weights that hold softmax/W and softmax/b with their vocab.txt. Each sentence is read from a zero state.

    \b
    Example:
      elmokit substitutes runs/bilm "the cat sat on the mat ." --position 1 --top 5
      elmokit substitutes runs/bilm "the cat sat on the mat ." -k 1 --json
    """
    from elmokit.bilm.bundle import load_bilm
    from elmokit.bilm.substitutes import substitutes as compute

    at_least(**{"--top": (top, 1)})
    result = compute(load_bilm(bilm, device=device), sentence.split(), position, top, delimiters, name=bilm)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    w = result.words
    before, after = " ".join(w[: result.position]) or "<S>", " ".join(w[result.position + 1 :]) or "</S>"
    click.echo(f"{result.word!r}: word {result.position} of {len(w)} ({result.note})")
    unit = "pieces" if result.unit == "piece" else "words"
    for title, cands in (
        (f"forward LM, after {before!r}", result.forward),
        (f"backward LM, before {after!r}", result.backward),
        ("both (geometric mean of the two)", result.both),
    ):
        click.echo(f"{title}: most likely {unit}")
        width = max(len(c.token) for c in cands)
        for n, c in enumerate(cands, 1):
            click.echo(f"  {n:>3}  {c.token:<{width}}  {c.probability:.4f}")


@click.command("export-elmo")
@click.argument("bilm", type=click.Path())
@click.option(
    "--out", required=True, type=click.Path(), help="The directory to write: options.json, weights.hdf5, vocab.txt."
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier export at --out (once the new one is complete).")
@friendly_errors
def export_elmo(bilm, out, overwrite):
    """Write a character biLM (trained here or imported) as bilm-tf's files, which AllenNLP's Elmo, bilm-tf,
    simple_elmo and flair load.

    \b
      DIR/options.json    the shape (n_characters 262, as AllenNLP and bilm-tf's inference read it)
      DIR/weights.hdf5    bilm-tf's datasets (TensorFlow's gate order and forget bias, the highways' carry form),
                          and softmax/W, softmax/b where the biLM has a softmax
      DIR/vocab.txt       its word vocabulary (or only <S>, </S>, <UNK> without one)
      DIR/elmokit.json    what made them: the biLM's sha256, elmokit's version

    A pieces biLM, a GRU, and ELMoForManyLangs' lexicon characters or word embedding are refused with the reason.
    """
    from elmokit.bilm.export_elmo import export_elmo as export

    done = export(bilm, out, overwrite=overwrite)
    softmax = {"none": "no softmax", "shared": "its softmax", "per-direction": "both softmaxes"}[done.softmax]
    click.echo(f"wrote {done.path}: options.json, weights.hdf5 ({softmax}), vocab.txt ({done.words} words)")
    for note in done.notes:
        click.echo(f"note: {note}")
