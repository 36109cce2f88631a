"""Commands that look at a trained LM: ``generate`` (sample text), ``cells`` (units that track features of the
text), ``gradients`` (how far back the gradient reaches)."""

from __future__ import annotations

import json

import click

from elmokit.commands import at_least, cache_dir_option, friendly_errors
from elmokit.core.choices import CELL_FEATURES


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
    click.echo(sample(lm, vocab, prompt, n_tokens, temperature, top_k, seed, manifest["direction"] == "backward"))


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
