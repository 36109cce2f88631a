"""Predicting and scoring with a downstream model: in memory (used by training) and on files (``elmokit predict``,
``elmokit score``).

``predict`` writes, for a tagger, CoNLL (``word<TAB>tag`` per line, a blank line after each sentence) and, for a
classifier, TSV (``text<TAB>label`` per line, no header); both read back with :mod:`elmokit.tasks.readers`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from elmokit.core.errors import CorpusError, ElmokitError
from elmokit.core.files import fsync_dir
from elmokit.tasks.batching import collate, make_batches
from elmokit.tasks.items import Item
from elmokit.tasks.lexicon import Lexicon
from elmokit.tasks.metrics import classification_scores, span_f1
from elmokit.tasks.readers import read_items


@torch.no_grad()
def predict_items(
    model: nn.Module,
    items: list[Item],
    lexicon: Lexicon,
    features=None,
    batch_size: int = 64,
    device: torch.device | str | None = None,
) -> list[list[str] | str]:
    """Predicted tags (a list per sentence) or labels, in input order (on ``device``; None: the model's)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    enc = model.encoder
    out: list = [None] * len(items)
    for idx in make_batches([len(it.words) for it in items], batch_size, shuffle=False):
        batch = collate(
            idx, items, lexicon, features, enc.words is not None, enc.chars is not None, with_targets=False
        ).to(device)
        for i, pred in zip(idx, model.decode(batch)):
            out[i] = [lexicon.labels[t] for t in pred] if isinstance(pred, list) else lexicon.labels[pred]
    model.train(was_training)
    return out


def score_predictions(items: list[Item], preds: list, scheme: str = "") -> dict[str, float]:
    """Tagger: token ``accuracy`` (and span ``f1``/``precision``/``recall`` with per-type F1 when ``scheme`` is set);
    classifier: ``accuracy`` and ``macro_f1``. Percentages."""
    if not items:
        return {}
    if isinstance(items[0].target, list):
        s = span_f1([it.target for it in items], preds, {"iob1": "bio"}.get(scheme, scheme or "bio"))
        out = {"accuracy": s.accuracy}
        if scheme:
            out.update(
                {
                    "f1": s.f1,
                    "precision": s.precision,
                    "recall": s.recall,
                    **{f"f1_{t}": v for t, v in s.type_f1().items()},
                }
            )
        return out
    return classification_scores([it.target for it in items], preds)


def main_metric(scores: dict[str, float], metric: str) -> float:
    """The number early stopping watches."""
    return scores["f1"] if metric == "span_f1" else scores["accuracy"]


def read_input(path: str | Path, task: str, fmt: str, text_column: str = "", label_column: str = "") -> list[Item]:
    """Items to predict: the training formats (gold targets ignored; a table's label column may be missing), or
    ``text``: one sentence per line, words separated by whitespace (a classifier's line is its text)."""
    if fmt == "text":
        from elmokit.core.textfile import iter_lines

        items = [Item(line.split(), [] if task == "tagger" else "", n) for n, line in iter_lines(path)]
        if not items:
            raise CorpusError(f"{path}: empty file")
        return items
    return read_items(path, fmt, task, text_column=text_column, label_column=label_column, need_target=False)


def _input_file(spec: str | Path) -> Path | None:
    """The file an input spec reads (``hf:json:FILE`` / ``hf:csv:FILE`` name one too), or None."""
    s = str(spec)
    if s.startswith(("hf:json:", "hf:csv:")):
        s = s.split(":", 2)[2]
    elif s.startswith("hf:"):
        return None
    return Path(s)


def _same_file(a: Path, b: Path) -> bool:
    """``a`` and ``b`` are one file: the same path once resolved, or the same inode (a symlink, a hard link)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare the resolved paths
        return a.resolve() == b.resolve()


def check_output(input_path: str | Path, output: str | Path, overwrite: bool = False, protect: tuple = ()) -> Path:
    """Refuse, before anything is read or run, an ``output`` that would destroy something: the input itself or a
    file inside a ``protect`` directory (the model's: even with ``overwrite``), an existing file without
    ``overwrite``, a directory; and one that cannot be written: a missing or non-directory parent.

    Raises:
        ElmokitError: one line naming OUTPUT, what is wrong and what to do.
    """
    out = Path(output)
    inp = _input_file(input_path)
    if inp is not None and _same_file(inp, out):
        raise ElmokitError(
            f"{output}: is the input {input_path}; writing the predictions there would replace the text they "
            f"are made from: give another OUTPUT"
        )
    for d in protect:
        if d is not None and Path(d).is_dir() and Path(d).resolve() in out.resolve().parents:
            raise ElmokitError(
                f"{output}: is inside the model directory {d}; writing there would damage the model: give another "
                f"OUTPUT"
            )
    if out.is_dir():
        raise ElmokitError(f"{output}: is a directory; give a file name for the predictions (e.g. {out / 'pred.tsv'})")
    if out.is_symlink() and not out.exists():
        raise ElmokitError(
            f"{output}: a symbolic link to {os.readlink(out)}, which does not exist; remove the link or give "
            f"another OUTPUT"
        )
    if out.exists():
        if not out.is_file():
            raise ElmokitError(f"{output}: exists and is not a regular file; give another OUTPUT")
        if not overwrite:
            raise ElmokitError(f"{output}: exists; pass --overwrite to replace it, or give another OUTPUT")
    parent = out.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise ElmokitError(
            f"{output}: the directory {parent} {what}; create it first (mkdir -p) or give another OUTPUT"
        )
    return out


def write_predictions(
    items: list[Item], preds: list, path: str | Path, line_per_sentence: bool = False, overwrite: bool = True
) -> Path:
    """Write CoNLL (tagger) or TSV (classifier) atomically: into a temporary file beside ``path``, fsynced, then
    renamed to ``path`` (replacing a file there only with ``overwrite``). A failed write (a full disk) leaves no
    temporary file and raises one :class:`ElmokitError` naming ``path``.

    ``line_per_sentence`` (a tagger's ``text`` input): one line of space-separated tags per input line, so the
    output lines up with the input line by line, an empty line included (CoNLL has no empty sentence: a blank
    line there is a separator, and reading it back would lose the sentence and shift the rest).
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp_name)
        with open(fd, "w", encoding="utf-8") as f:
            # mkstemp's file is private: the output gets the mode of the file it replaces, or a new file's
            os.fchmod(f.fileno(), path.stat().st_mode & 0o777 if path.is_file() else 0o666 & ~_umask())
            for it, p in zip(items, preds):
                if isinstance(p, list) and line_per_sentence:
                    f.write(" ".join(p[: len(it.words)]) + "\n")
                elif isinstance(p, list):
                    f.writelines(f"{w}\t{t}\n" for w, t in zip(it.words, p))
                    f.write("\n")
                else:
                    f.write(f"{' '.join(it.words)}\t{p}\n")
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:  # no clobbering a file that appeared meanwhile: a hard link is not made over an existing name
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links: the check made before writing stands
                if path.exists() or path.is_symlink():
                    raise FileExistsError(path) from None
                os.replace(tmp, path)
        fsync_dir(path.parent)
    except FileExistsError:
        raise ElmokitError(f"{path}: exists; pass --overwrite to replace it, or give another OUTPUT") from None
    except OSError as e:
        raise ElmokitError(
            f"{path}: cannot write the predictions ({e.strerror or e}); nothing was written: free space (or "
            f"give another OUTPUT) and run again"
        ) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def guess_format(path: str | Path, trained_on: str) -> str:
    """``conllu`` for ``*.conllu``, else the format the model was trained on (pass ``text`` for raw text)."""
    return "conllu" if str(path).endswith(".conllu") else trained_on


def _live(tm):
    from elmokit.tasks.features import LiveFeatures

    return LiveFeatures(tm.bilm, tm.cfg.model.pooling) if tm.bilm is not None else None


def run_predict(tm, input_path: str | Path, output: str | Path, fmt: str = "auto", overwrite: bool = False) -> int:
    """``elmokit predict``: returns the number of examples written. ``output`` must not be the input, nor (without
    ``overwrite``) an existing file (:func:`check_output`)."""
    protect = (getattr(tm, "path", None),)
    check_output(input_path, output, overwrite, protect)
    fmt = guess_format(input_path, tm.cfg.data.format) if fmt == "auto" else fmt
    items = read_input(input_path, tm.cfg.task, fmt, tm.cfg.data.text_column, tm.cfg.data.label_column)
    preds = predict_items(tm.model, items, tm.lexicon, _live(tm), 2 * tm.cfg.train.batch_size)
    check_output(input_path, output, overwrite, protect)  # again: the model ran a while
    write_predictions(items, preds, output, line_per_sentence=fmt == "text", overwrite=overwrite)
    return len(items)


def run_score(tm, gold_path: str | Path, fmt: str = "auto") -> dict[str, float]:
    """``elmokit score``: the model's scores on a gold file (unknown labels are errors naming file and line)."""
    d = tm.cfg.data
    fmt = d.format if fmt == "auto" else fmt
    items = read_items(gold_path, fmt, tm.cfg.task, d.tag, d.tag_column, d.scheme, d.text_column, d.label_column)
    for it in items:
        tm.lexicon.label_ids(it, gold_path)
    preds = predict_items(tm.model, items, tm.lexicon, _live(tm), 2 * tm.cfg.train.batch_size)
    return score_predictions(items, preds, d.scheme)
