"""Downstream data in the shapes users have it: CSV, TSV and JSONL tables with named or numbered columns, ``LABEL
text`` lines (fastText's ``__label__X text`` too), and HF datasets (``hf:NAME[:SPLIT]``: a directory written by
``save_to_disk``, ``hf:json:FILE`` / ``hf:csv:FILE`` through those builders, or a hub name), with errors that name
the file and the line (the row, for a dataset).

A classifier reads a text column and a label column; a tagger reads a tokens column and a tags column (a JSON or
dataset list, or a whitespace-separated string in a CSV/TSV cell). Columns are named by ``data.text_column`` and
``data.label_column`` (a header name, or a number counted from 0); when unset the first of the usual names found is
taken (:data:`TEXT_NAMES`, :data:`LABEL_NAMES`, :data:`TOKEN_NAMES`, :data:`TAG_NAMES`). A CSV/TSV file has a
header when its first row names a column the reader is looking for; without one the columns are text (tokens)
first, label (tags) second, or the numbers given.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from elmokit.core.errors import CorpusError
from elmokit.core.textfile import iter_lines
from elmokit.tasks.items import Item

TEXT_NAMES = ("text", "document", "sentence", "review", "comment", "comments", "content", "tweet")
LABEL_NAMES = ("label", "labels", "sentiment", "class", "target", "category")
TOKEN_NAMES = ("tokens", "words", "token", "form")
TAG_NAMES = ("tags", "ner_tags", "pos_tags", "upos", "labels", "label")
TABLE_FORMATS = ("tsv", "csv", "jsonl", "label_text")
FIELD_LIMIT = 1 << 24  # characters in one CSV/TSV cell (the csv module's default, 131,072, is less than a long text)
BOM = "\ufeff"  # a UTF-8 byte order mark (Excel's "CSV UTF-8" starts with one): not part of the first column's name


def _column(
    wanted: str, names: list[str] | None, defaults: tuple[str, ...], position: int, what: str, where: str
) -> str | int:
    """The key (a name, or an index into a row) of one column."""
    key = f"data.{what}_column"
    if wanted.strip().lstrip("-").isdigit():
        return int(wanted)
    if names is None:  # rows without names: the default position
        if wanted:
            raise CorpusError(
                f"{where}: {key}={wanted!r} names a column, but the file has no header; give its number "
                f"(from 0) or add a header row"
            )
        return position
    lower = [str(n).strip().lower() for n in names]
    if wanted:
        if wanted.strip().lower() in lower:
            return names[lower.index(wanted.strip().lower())]
        raise CorpusError(
            f"{where}: no column {wanted!r} among {list(names)}; set {key} to one of them (or a column number, from 0)"
        )
    for d in defaults:
        if d in lower:
            return names[lower.index(d)]
    raise CorpusError(
        f"{where}: none of the columns {list(names)} is a {what} column ({', '.join(defaults)}); set "
        f"{key} to its name (or number, from 0)"
    )


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``iter_lines`` without a byte order mark at the start of the file."""
    for n, line in iter_lines(path, max_line_chars=1 << 62):
        yield n, line.removeprefix(BOM) if n == 1 else line


def _delimited_rows(path: str | Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """``(line, cells)`` of a CSV (quoted fields may span lines) or TSV (no quoting: NSMC's text holds quotes)."""
    lines = (line + "\n" for _, line in _lines(path))
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    if csv.field_size_limit() < FIELD_LIMIT:  # process-wide; raised once, never lowered
        csv.field_size_limit(FIELD_LIMIT)
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as e:
        if "field larger than field limit" in str(e):
            limit = csv.field_size_limit()
            why = (
                f"a quote opened on line {start} and never closed makes the rest of the file one field, or a "
                f"cell really is this long: check the quotes from line {start}, or split the text"
                if delimiter == ","
                else "split the text, or check that the file is a TSV"
            )
            raise CorpusError(
                f"{path}:{start}: a cell of more than {limit:,} characters (the most a table cell may hold); {why}"
            ) from None
        raise CorpusError(f"{path}:{reader.line_num}: not valid CSV ({e}); check the quotes on this line") from None


def _jsonl_rows(path: str | Path) -> Iterator[tuple[int, dict]]:
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(
                f"{path}:{lineno}: not JSON ({e.msg}, column {e.colno}); a JSONL file holds one JSON object per line"
            ) from None
        if not isinstance(row, dict):
            raise CorpusError(f"{path}:{lineno}: a JSON {type(row).__name__}, not an object with named fields")
        yield lineno, row


def open_hf(spec: str):
    """The dataset ``hf:...`` names: ``hf:DIR[:SPLIT]`` (``save_to_disk``), ``hf:json:FILE`` / ``hf:csv:FILE``
    (the ``json``/``csv`` builders, offline), or ``hf:NAME[:SPLIT]`` from the hub (needs network access).

    Raises:
        CorpusError: one line naming the spec (and, for a JSON Lines file, the first bad line) for whatever
            ``datasets`` raised.
    """
    import datasets

    body = spec[3:]
    kind, _, rest = body.partition(":")
    try:
        if kind in ("json", "csv") and rest:
            with _quiet_datasets():
                return datasets.load_dataset(kind, data_files=rest, split="train")
        name, _, split = body.rpartition(":") if ":" in body and not Path(body).exists() else (body, "", "")
        if Path(name).is_dir():
            ds = datasets.load_from_disk(name)
            if isinstance(ds, datasets.DatasetDict):
                split = split or "train"
                if split not in ds:
                    raise CorpusError(f"{spec}: no split {split!r}; the dataset has {list(ds)}")
                ds = ds[split]
            return ds
        return datasets.load_dataset(name, split=split or "train")  # a download: its progress bar stays
    except CorpusError:
        raise
    except (FileNotFoundError, ValueError, OSError, datasets.exceptions.DatasetsError) as e:
        if kind == "json" and rest and Path(rest).is_file():
            _check_json_lines(rest)  # a JSON Lines file with a bad line: that line, as data.format=jsonl says it
        cause = e.__cause__ if isinstance(e, datasets.exceptions.DatasetsError) and e.__cause__ else e
        why = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
        if kind in ("json", "csv") and rest and Path(rest).is_file():
            own = "jsonl" if kind == "json" else "csv"
            raise CorpusError(
                f"{spec}: the datasets {kind} builder cannot read {rest} ({why}); fix the file (named without hf: and "
                f"read with data.format={own}, its errors name the line)"
            ) from None
        raise CorpusError(
            f"{spec}: cannot load the dataset ({why}); give a directory written by save_to_disk, "
            f"hf:json:FILE, hf:csv:FILE or a hub name"
        ) from None


@contextmanager
def _quiet_datasets():
    """No progress bars or logged errors from ``datasets`` while it builds a dataset from a local file (a second):
    what goes wrong is raised, and reported as one line."""
    import datasets

    bars, level = datasets.is_progress_bar_enabled(), datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL + 10)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(level)
        if bars:
            datasets.enable_progress_bars()


def _check_json_lines(path: str) -> None:
    """Raise the error of a JSON Lines file's first bad line (not JSON, or not an object), if it looks like JSON
    Lines: its first non-blank line is one JSON object (a file holding one JSON document is left to ``datasets``)."""
    for _, line in _lines(path):
        if not line.strip():
            continue
        try:
            if not isinstance(json.loads(line), dict):
                return
        except json.JSONDecodeError:
            return
        break
    for _ in _jsonl_rows(path):
        pass


def source_sha256(spec: str) -> str:
    """What pins a split's content: a file's sha256, or for an ``hf:`` dataset the sha256 of its fingerprint."""
    import hashlib

    from elmokit.core.textfile import sha256_file

    if str(spec).startswith("hf:"):
        return hashlib.sha256(f"{spec}\n{open_hf(str(spec))._fingerprint}".encode()).hexdigest()
    return sha256_file(spec)


def _hf_rows(ds) -> Iterator[tuple[int, dict]]:
    """Rows with class-label ids turned into their names (``ClassLabel``, also inside sequences)."""
    import datasets

    def namer(feature):
        if isinstance(feature, datasets.ClassLabel):
            return feature.int2str
        inner = getattr(feature, "feature", None)
        if isinstance(feature, datasets.Sequence) and isinstance(inner, datasets.ClassLabel):
            return lambda v: [inner.int2str(x) for x in v]
        if isinstance(feature, list) and feature and isinstance(feature[0], datasets.ClassLabel):
            return lambda v: [feature[0].int2str(x) for x in v]
        return None

    names = {k: f for k, f in ((k, namer(v)) for k, v in ds.features.items()) if f}
    for i, row in enumerate(ds):
        yield i + 1, {k: (names[k](v) if k in names else v) for k, v in row.items()}


def _as_words(value: Any, where: str, what: str) -> list[str]:
    if isinstance(value, list):
        for v in value:
            if isinstance(v, (dict, list)):
                raise CorpusError(
                    f"{where}: the {what} column holds a {_json_kind(v)} ({_short(v)}) among its items; each item "
                    f"is one string (or number)"
                )
        return [str(v) for v in value]
    if isinstance(value, str):
        return value.split()
    raise CorpusError(f"{where}: the {what} column holds {type(value).__name__} {value!r}, not a list or a string")


def _json_kind(value: Any) -> str:
    return "JSON object" if isinstance(value, dict) else "list" if isinstance(value, list) else type(value).__name__


def _short(value: Any, n: int = 60) -> str:
    r = json.dumps(value, ensure_ascii=False, default=str)
    return r if len(r) <= n else r[: n - 1] + "…"


def _open_rows(path: str | Path, fmt: str, looked_for: set[str]):
    """``(names, rows, where_of)``: the column names (None for a delimited file without a header: its first row
    holds none of ``looked_for``), an iterator of ``(line or row number, row)`` and the error location of a number."""
    spec = str(path)
    if spec.startswith("hf:"):
        ds = open_hf(spec)
        return list(ds.column_names), _hf_rows(ds), (lambda n: f"{spec}: row {n}")
    if fmt == "jsonl":
        rows_list = list(_jsonl_rows(path))
        if not rows_list:
            raise CorpusError(f"{path}: no JSON lines")
        return list(rows_list[0][1]), iter(rows_list), (lambda n: f"{path}:{n}")
    if fmt in ("tsv", "csv"):
        rows_list = list(_delimited_rows(path, "\t" if fmt == "tsv" else ","))
        rows_list = [(n, r) for n, r in rows_list if any(c.strip() for c in r)]
        if not rows_list:
            raise CorpusError(f"{path}: empty file")
        has_header = any(c.strip().lower() in looked_for for c in rows_list[0][1])
        names = rows_list[0][1] if has_header else None
        return names, iter(rows_list[1:] if has_header else rows_list), (lambda n: f"{path}:{n}")
    raise CorpusError(f"{path}: data.format={fmt!r} is not a table format ({', '.join(TABLE_FORMATS)})")


def read_table(
    path: str | Path, fmt: str, task: str, text_column: str = "", label_column: str = "", need_target: bool = True
) -> list:
    """Read a split as :class:`elmokit.tasks.items.Item` s.

    Args:
        fmt: ``tsv`` | ``csv`` | ``jsonl`` | ``label_text`` (ignored for an ``hf:`` path).
        task: ``classifier`` (text and label) or ``tagger`` (tokens and tags).
        text_column, label_column: the columns (names, or numbers from 0); "" = the usual names.
        need_target: False for input to predict: a missing label column gives empty targets.

    Raises:
        CorpusError: naming the file and the line: a missing column, a bad row, an empty label, tokens and tags of
            different lengths, an empty file.
    """
    tagger = task == "tagger"
    text_names, label_names = (TOKEN_NAMES, TAG_NAMES) if tagger else (TEXT_NAMES, LABEL_NAMES)
    what_text, what_label = ("tokens", "tags") if tagger else ("text", "label")
    spec = str(path)
    if fmt == "label_text" and not spec.startswith("hf:"):
        return _label_text(path, tagger)
    looked_for = {*text_names, *label_names, *(c.strip().lower() for c in (text_column, label_column) if c)}
    names, rows, where_of = _open_rows(path, fmt, looked_for)
    where0 = where_of(1) if not spec.startswith("hf:") else spec
    tk = _column(text_column, names, text_names, 0, "text", where0)
    try:
        lk = _column(label_column, names, label_names, 1, "label", where0)
    except CorpusError:
        if need_target:
            raise
        lk = None
    if names is not None:  # numbers name header columns too
        tk, lk = (names[k] if isinstance(k, int) and -len(names) <= k < len(names) else k for k in (tk, lk))
        for k, key in ((tk, "text"), (lk, "label")):
            if isinstance(k, int):
                raise CorpusError(
                    f"{where0}: no column {k} in the header's {len(names)} ({names}); set data.{key}_column"
                )
    width = len(names) if names is not None else None
    out = []
    for n, row in rows:
        where = where_of(n)
        if isinstance(row, list):
            if width is not None and len(row) != width:
                raise CorpusError(
                    f"{where}: {len(row)} columns, the header has {width} ({names}); a {fmt.upper()} "
                    f"row per line" + (" (a tab inside the text?)" if fmt == "tsv" else "")
                )
            cells = dict(zip(names, row)) if names is not None else dict(enumerate(row))
        else:
            cells = row
        if tk not in cells:
            raise CorpusError(f"{where}: no column {tk!r} in this row; set data.text_column")
        if lk is not None and lk not in cells and need_target:
            raise CorpusError(f"{where}: no column {lk!r} in this row ({len(cells)} columns); set data.label_column")
        text, label = cells[tk], cells.get(lk) if lk is not None else None
        if tagger:
            words = _as_words(text, where, what_text)
            tags = _as_words(label, where, what_label) if label is not None else []
            if need_target and len(tags) != len(words):
                raise CorpusError(f"{where}: {len(words)} tokens but {len(tags)} tags")
            if not words:
                raise CorpusError(f"{where}: no tokens")
            out.append(Item(words, tags, n))
        else:
            if isinstance(label, (dict, list)):
                raise CorpusError(
                    f"{where}: the label (column {lk!r}) is a {_json_kind(label)} ({_short(label)}), not a label; "
                    f"give one string (or number) per row, or set data.label_column to the label's column"
                )
            if isinstance(text, dict):
                raise CorpusError(
                    f"{where}: the text (column {tk!r}) is a JSON object ({_short(text)}); give a string (or a "
                    f"list of words) per row, or set data.text_column to the text's column"
                )
            label = "" if label is None else str(label).strip()
            if need_target and not label:
                raise CorpusError(f"{where}: empty {what_label} (column {lk!r})")
            if not isinstance(text, str):
                text = " ".join(_as_words(text, where, what_text)) if isinstance(text, list) else str(text)
            out.append(Item(text.split(), label, n))
    if not out:
        raise CorpusError(f"{spec}: no examples")
    return out


def _label_text(path: str | Path, tagger: bool) -> list:
    """``LABEL text`` lines (a fastText ``__label__`` prefix is dropped)."""
    if tagger:
        raise CorpusError(f"{path}: data.format=label_text holds one label per line: a classifier's format")
    out = []
    for n, line in _lines(path):
        if not line.strip():
            continue
        label, _, text = line.strip().partition(" ")
        label = label.removeprefix("__label__")
        if not text.strip():
            raise CorpusError(f"{path}:{n}: a label ({label!r}) and no text; each line is LABEL then the text")
        out.append(Item(text.split(), label, n))
    if not out:
        raise CorpusError(f"{path}: no examples")
    return out
