"""Commands that look at a trained LM: ``generate`` (sample text), ``cells`` (units that track features of the
text), ``gradients`` (how far back the gradient reaches), ``similarity`` (one word's vectors across contexts)."""

from __future__ import annotations

import json

import click

from elmokit.commands import at_least, cache_dir_option, choice_option, friendly_errors
from elmokit.core.choices import CELL_FEATURES, POOLINGS


@click.command()
@click.argument("model", type=click.Path())
@click.option("--prompt", default="", help="Text to continue (forward LM) or to precede (backward LM).")
@click.option("--tokens", "n_tokens", default=60, show_default=True, help="Pieces to sample.")
@click.option("--temperature", default=0.8, show_default=True)
@click.option("--top-k", default=40, show_default=True, help="Sample among the k likeliest pieces (0 = all).")
@click.option("--seed", default=0, show_default=True)
@friendly_errors
def generate(model, prompt, n_tokens, temperature, top_k, seed):
    """Sample text from MODEL: a forward LM continues --prompt, a backward LM writes what comes before it."""
    from elmokit.core.errors import ElmokitError
    from elmokit.lm.generate import sample
    from elmokit.lm.model_dir import load_model

    at_least(**{"--tokens": (n_tokens, 1), "--top-k": (top_k, 0)})
    if not temperature > 0:
        raise ElmokitError(f"--temperature {temperature}: must be above 0 (1 samples as the LM predicts)")
    loaded = load_model(model)
    lm, vocab, manifest = loaded.model, loaded.vocab, loaded.manifest
    backward = manifest["direction"] == "backward"
    click.echo(sample(lm, vocab, prompt, n_tokens, temperature, top_k, seed, backward, mapper=loaded.mapper))


@click.command()
@click.argument("model", type=click.Path())
@click.argument("input_files", metavar="INPUT...", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Directory for cells.json, cells.html and cells.png.")
@click.option(
    "--feature",
    "features",
    multiple=True,
    type=click.Choice(list(CELL_FEATURES)),
    help="Rank units by this feature (repeatable; default: all of them).",
)
@click.option("--regex", default=None, help="One more feature: inside a match of this regular expression.")
@click.option(
    "--unit",
    "units",
    multiple=True,
    metavar="STATE:INDEX",
    help="Show this unit, e.g. c1:17 (layer 1's cell state, unit 17) or h2:5 (repeatable; default: the "
    "best unit of each feature).",
)
@click.option("--max-pieces", default=40000, show_default=True, help="Read at most this many pieces of INPUT.")
@click.option("--top", default=10, show_default=True, help="Units listed per feature in cells.json.")
@click.option(
    "--control",
    is_flag=True,
    help="Also rank the units of an untrained model of the same shape: the chance level to beat.",
)
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
    from elmokit.analysis.cells import inspect_cells, summary_lines

    at_least(**{"--max-pieces": (max_pieces, 1), "--top": (top, 1)})

    r = inspect_cells(
        model,
        list(input_files),
        out,
        list(features),
        regex,
        list(units),
        max_pieces,
        top,
        control,
        max_chars=show_chars,
    )
    if as_json:
        click.echo(json.dumps(r))
    else:
        click.echo("\n".join(summary_lines(r)))
        click.echo(f"wrote {out}/cells.json, cells.html and cells.png")


@click.command()
@click.argument("model", type=click.Path())
@click.argument("corpus", nargs=-1, required=True, type=click.Path())
@click.option(
    "--out", required=True, type=click.Path(), help="Output path without suffix: writes OUT.json and OUT.png."
)
@click.option("--max-lag", default=300, show_default=True, help="The longest lag k measured (steps back).")
@click.option("--sequences", default=32, show_default=True, help="Sequences drawn from CORPUS (the median is shown).")
@click.option("--warmup", default=100, show_default=True, help="Pieces read (no gradient) before the measured steps.")
@click.option("--seed", default=0, show_default=True, help="Where the sequences start.")
@cache_dir_option()
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
    from elmokit.analysis.gradients import measure_gradients, summary_lines

    r = measure_gradients(model, list(corpus), out, max_lag, sequences, warmup, seed, cache_dir, progress=not quiet)
    if not quiet:
        click.echo("\n".join(summary_lines(r)))
        click.echo(f"wrote {out}.json and {out}.png")


@click.command()
@click.argument("bilm", type=click.Path())
@click.argument("sentences", metavar="SENTENCE...", nargs=-1)
@click.option("--word", required=True, help="The word to compare: a whole whitespace word (or see --substring).")
@click.option("--substring", is_flag=True, help="Also find --word inside a word (연패 in 4연패, bank in banks).")
@click.option(
    "--occurrence",
    "occurrences",
    multiple=True,
    metavar="[S:]N",
    help="Where a sentence has the word more than once: use its N-th match (in every such sentence), or S:N in "
    "sentence S (repeatable; counted from 1, left to right).",
)
@choice_option("--pooling", POOLINGS, "edges", "How a run of pieces gives one vector, as `embed --pooling`.")
@click.option("--out", type=click.Path(), default=None, help="Also write OUT.json and OUT.png (a heatmap per layer).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON instead of the table.")
@friendly_errors
def similarity(bilm, sentences, word, substring, occurrences, pooling, out, as_json):
    """The same word in several sentences: the cosine similarity of BILM's vectors of it between every pair of
    sentences, per layer (layer 0, each LSTM layer, and the average of the layers).

    This is why ELMo exists. A static embedding gives a word one vector whatever its context: layer 0, the token
    layer, gives the same word the same vector in every sentence (cosine 1). The LSTM layers have read the
    sentence, so a word used in two senses can get two vectors (a cosine below 1, lower than between two uses in
    one sense).

    A sentence is split at whitespace into words; --word is found as a whole word, or with --substring inside a
    word. For a biLM of sentencepiece pieces the vector is the pieces that overlap the match, pooled as the biLM
    pools a word's pieces (the pieces are printed: where both matches are cut into the same pieces, layer 0 is
    exactly 1). A character biLM (import-elmo) has one position per word: the whole word's vector is used.

    \b
    The lectures' example: 연패 is "consecutive wins" in the first sentence, "consecutive losses" in the second.
      elmokit similarity runs/nsmc-bilm --word 연패 --substring \\
          "삼성, 사상 첫 통합우승 4연패" "'18연패' 한화 이글스 무한 추락" --out sim/yeonpae
    An English word in three contexts, two of one sense and one of another:
      elmokit similarity runs/wt2-bilm --word bank "I paid the cheque into the bank ." \\
          "The bank raised its interest rates ." "We sat on the grassy bank of the river ."

    Prints a table per layer (sentences as s1, s2, ...); --out OUT writes OUT.json (every matrix, every pair,
    where the word was found and the pieces used) and OUT.png (a heatmap per layer, the sentences labelled).
    """
    from elmokit.analysis.similarity import find_word, summary_lines, word_similarity, write_outputs
    from elmokit.bilm.bundle import load_bilm

    find_word(list(sentences), word, substring, occurrences)  # a sentence without the word: before the biLM loads
    r = word_similarity(load_bilm(bilm), list(sentences), word, substring, occurrences, pooling, name=str(bilm))
    if out:
        write_outputs(r, out)
    if as_json:
        click.echo(json.dumps(r.to_json(), ensure_ascii=False))
    else:
        click.echo("\n".join(summary_lines(r)))
        if out:
            click.echo(f"wrote {out}.json and {out}.png")
