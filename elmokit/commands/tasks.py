"""Downstream commands: ``fit`` and ``adapt`` (does the biLM fit the task's text; fit it), ``train-tagger``,
``train-classifier``, ``predict``, ``score``."""

from __future__ import annotations

import json

import click

from elmokit.commands import cache_dir_option, choice_option, friendly_errors
from elmokit.core.choices import TASK_FORMATS


def text_options(task_data: str):
    """``--format`` and ``--text-column``: what ``fit`` and ``adapt`` read their files as (``task_data`` says what
    they take of task data)."""

    def add(fn):
        fn = click.option("--text-column", default="", help="A table's text (or tokens) column, as data.text_column.")(
            fn
        )
        fmt_help = f"text: one sentence per line; or task data ({task_data})."
        return choice_option("--format", ["text", *TASK_FORMATS], "text", fmt_help, dest="fmt")(fn)

    return add


@click.command()
@click.argument("bilm", type=click.Path())
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path())
@text_options("read as `data.format` reads it")
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
    from elmokit.bilm.domain_fit import adapt_arguments, measure_fit, summary_lines
    from elmokit.tasks.readers import read_text

    r = measure_fit(
        bilm,
        read_text(list(files), fmt, text_column=text_column),
        max_lines,
        what=", ".join(files),
        adapt_args=adapt_arguments(list(files), fmt, text_column),
    )
    if as_json:
        click.echo(json.dumps(r))
    else:
        click.echo("\n".join(summary_lines(r)))
    if r["warning"]:
        click.echo(r["warning"], err=True)


@click.command()
@click.argument("bilm", type=click.Path())
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path())
@click.option(
    "--out", required=True, type=click.Path(), help="The adapted biLM bundle to write (runs go to OUT.work/)."
)
@click.option(
    "--minutes", default=10.0, show_default=True, help="Budget per direction (both run side by side on 2+ cores)."
)
@click.option("--epochs", default=4, show_default=True, help="At most this many passes over the text.")
@click.option(
    "--dev",
    "dev",
    default=None,
    type=click.Path(),
    help="Held-out text to measure on (default: every 20th line of FILE, at most 2,000).",
)
@text_options("its words are the text; labels are ignored")
@cache_dir_option("encoded text")
@click.option(
    "--overwrite", is_flag=True, help="Adapt again over a biLM this command adapted at --out (never other files)."
)
@friendly_errors
def adapt(bilm, files, out, minutes, epochs, dev, fmt, text_column, cache_dir, overwrite):
    """Adapt BILM to unlabelled text: both LMs continue training from their weights on FILE (a third of their
    learning rate, a cosine schedule sized to --minutes), are measured before and after on held-out lines, and
    are bundled at --out. Point a task config's model.bilm at the result.

    Works from a few thousand sentences (a treebank's training text) to millions (the budget then caps it).
    Interrupted, the same command resumes.

    Example: elmokit adapt runs/wt2-bilm ewt-train.conllu --format conllu --out runs/ewt-bilm --minutes 12
    """
    from elmokit.bilm.adapt import adapt as run_adapt
    from elmokit.tasks.readers import read_text

    lines = read_text(list(files), fmt, text_column=text_column)
    dev_lines = read_text([dev], fmt, text_column=text_column) if dev else None
    r = run_adapt(bilm, lines, out, minutes, dev_lines, epochs, cache_dir, overwrite)
    unit = r.get("ppl_per", "piece")
    for d in ("forward", "backward"):
        before, head, after = r["dev_ppl_before"][d], (r.get("dev_ppl_after_head") or {}).get(d), r["dev_ppl_after"][d]
        figures = [f"{before:.1f}" if before is not None else "(no softmax)"]
        figures += [f"{head:.1f} after {r['head_steps']} head steps"] if head is not None else []
        click.echo(f"{d}: held-out perplexity per {unit} {' -> '.join(figures)} -> {after:.1f}")
    click.echo(
        f"adapted biLM written to {out} ({r['steps']['forward']} forward and {r['steps']['backward']} backward "
        f"steps of {r['planned_steps']} planned, on {r['train_lines']:,} lines; figures in {out}.work/adapt.json)"
    )


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
    click.option(
        "--resume",
        is_flag=True,
        help="Continue from OUT/checkpoint (saved after every evaluation); the "
        "config, data and biLM must be those it was made with.",
    ),
    click.option("--overwrite", is_flag=True, help="Start over in an OUT that holds a finished run or a checkpoint."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
]


def _train_options(fn):
    for opt in reversed(_TRAIN_OPTIONS):
        fn = opt(fn)
    return fn


@click.command("train-tagger")
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


@click.command("train-classifier")
@_train_options
@friendly_errors
def train_classifier(config, overrides, out, resume, overwrite, quiet):
    """Train a BiLSTM sentence classifier (max/mean/attention/max+mean pooling) on the biLM's scalar mix.

    \b
    elmokit train-classifier recipes/tasks/nsmc.yaml                       (see the recipe's first line)
    elmokit train-classifier recipes/tasks/nsmc.yaml model.use_elmo=false  the same model without ELMo

    Input (data.format): a TSV or CSV (NSMC's `id<TAB>document<TAB>label` with a header, or `text<TAB>label`),
    JSONL, `LABEL text` lines, or a HF dataset (hf:DIR, hf:json:FILE, hf:csv:FILE); name the columns with
    data.text_column / data.label_column. Outputs as train-tagger.
    """
    _train("classifier", config, out, resume, overwrite, quiet, overrides)


@click.command()
@click.argument("model", type=click.Path())
@click.argument("input_file", metavar="INPUT", type=click.Path())
@click.argument("output", type=click.Path())
@choice_option(
    "--format",
    ["auto", *TASK_FORMATS, "text"],
    "auto",
    "INPUT's format (auto: conllu for *.conllu, else the model's training format); "
    "text = one sentence per line, words split on whitespace.",
    dest="fmt",
)
@click.option("--bilm", type=click.Path(), default=None, help="The biLM bundle, if it moved since training.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT (never INPUT itself).")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: the GPU when there is one, else the CPU).")
@friendly_errors
def predict(model, input_file, output, fmt, bilm, overwrite, device):
    """Tag or classify INPUT with a trained MODEL; write CoNLL (word<TAB>tag, blank line between sentences) for a
    tagger, TSV (text<TAB>label) for a classifier. Gold tags or labels in INPUT are ignored. A tagger given
    --format text writes one line of space-separated tags per input line (an empty line stays an empty line), so
    `paste INPUT OUTPUT` lines them up. An existing OUTPUT is replaced only with --overwrite, INPUT never; OUTPUT
    appears complete or not at all (written aside, then renamed).

    \b
    elmokit predict ~/elmokit-runs/ewt-upos-elmo en_ewt-ud-test.conllu tagged.conll
    elmokit predict ~/elmokit-runs/nsmc-elmo reviews.txt labelled.tsv --format text
    """
    from elmokit.tasks.model_dir import load_task_model
    from elmokit.tasks.predict import check_output, run_predict

    check_output(input_file, output, overwrite)  # before the model loads (run_predict also keeps out of it)
    tm = load_task_model(model, bilm, device)
    n = run_predict(tm, input_file, output, fmt, overwrite)
    click.echo(f"wrote {output} ({n} {'sentences' if tm.cfg.task == 'tagger' else 'lines'})")


@click.command()
@click.argument("model", type=click.Path())
@click.argument("gold", type=click.Path())
@choice_option(
    "--format", ["auto", *TASK_FORMATS], "auto", "GOLD's format (auto: the model's training format).", dest="fmt"
)
@click.option("--bilm", type=click.Path(), default=None, help="The biLM bundle, if it moved since training.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: the GPU when there is one, else the CPU).")
@friendly_errors
def score(model, gold, fmt, bilm, device):
    """Score a trained MODEL on a GOLD file: token accuracy (and span F1 for chunk tags) or accuracy and macro F1;
    prints JSON.

    \b
    elmokit score ~/elmokit-runs/ewt-upos-elmo $ELMOKIT_DATA/ud-english-ewt/en_ewt-ud-test.conllu
    """
    from elmokit.tasks.model_dir import load_task_model
    from elmokit.tasks.predict import run_score

    tm = load_task_model(model, bilm, device)
    click.echo(json.dumps(run_score(tm, gold, fmt)))
