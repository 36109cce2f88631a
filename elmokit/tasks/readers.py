"""Readers for downstream data, with errors naming the file, the line, what is wrong and what to do.

- CoNLL column files (``-DOCSTART-`` lines skipped, blank lines between sentences, the token in column 0 and the
  tag in a chosen column);
- CoNLL-U (UPOS or XPOS; multiword-token ranges ``1-2`` and empty nodes ``1.1`` skipped, comments ignored);
- tables (CSV, TSV, JSONL, ``LABEL text`` lines, HF datasets): :mod:`elmokit.tasks.tables`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from elmokit.core.choices import COLUMN_FORMATS, TAG_KINDS
from elmokit.core.errors import CorpusError
from elmokit.core.textfile import conllu_form, iter_lines
from elmokit.tasks.items import Item


@dataclass
class TaggedSentence:
    words: list[str]
    tags: list[str]
    line: int = 0  # where the sentence starts in its file


def _blocks(path: str | Path, is_break) -> Iterator[list[tuple[int, str]]]:
    """The sentences of a column file: runs of lines between the lines ``is_break`` is true of, each a list of
    ``(line number, line)``."""
    block: list[tuple[int, str]] = []
    for lineno, line in iter_lines(path, max_line_chars=1 << 62):
        if is_break(line):
            if block:
                yield block
            block = []
        else:
            block.append((lineno, line))
    if block:
        yield block


def read_conll(path: str | Path, tag_column: int = -1, min_columns: int = 2) -> list[TaggedSentence]:
    """Sentences of a whitespace-separated CoNLL column file.

    Args:
        tag_column: index of the tag column (default: the last).
        min_columns: every token line must have at least this many columns.

    Raises:
        CorpusError: an empty file, a line with too few columns or a different column count than its sentence.
    """
    out: list[TaggedSentence] = []
    for block in _blocks(path, lambda line: line.split(None, 1)[:1] in ([], ["-DOCSTART-"])):
        words, tags, ncols = [], [], None
        for lineno, line in block:
            cols = line.split()
            if len(cols) < min_columns:
                raise CorpusError(
                    f"{path}:{lineno}: {len(cols)} column(s), need at least {min_columns} (token ... "
                    f"tag); separate sentences by blank lines"
                )
            if ncols is not None and len(cols) != ncols:
                raise CorpusError(f"{path}:{lineno}: {len(cols)} columns, but this sentence's lines have {ncols}")
            ncols = len(cols)
            if not -ncols <= tag_column < ncols:
                raise CorpusError(f"{path}:{lineno}: no tag column {tag_column} in a line of {ncols} columns")
            words.append(cols[0])
            tags.append(cols[tag_column])
        out.append(TaggedSentence(words, tags, block[0][0]))
    if not out:
        raise CorpusError(f"{path}: no sentences (only blank or -DOCSTART- lines)")
    return out


def read_conllu(path: str | Path, tag: str = "upos") -> list[TaggedSentence]:
    """Sentences of a CoNLL-U file with their UPOS (column 4) or XPOS (column 5) tags.

    Raises:
        CorpusError: not 10 tab-separated columns, a bad ID, an empty file.
    """
    if tag not in TAG_KINDS:
        raise ValueError(f"tag must be one of {TAG_KINDS}, got {tag!r}")
    col = 3 if tag == "upos" else 4
    out: list[TaggedSentence] = []
    for block in _blocks(path, lambda line: not line.strip()):
        words, tags, start = [], [], 0
        for lineno, line in block:
            if line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 10:
                raise CorpusError(
                    f"{path}:{lineno}: {len(cols)} tab-separated columns, CoNLL-U has 10; is this a "
                    f"CoNLL-U file (fields separated by tabs)?"
                )
            form = conllu_form(cols)
            if form is None:  # multiword-token range or empty node
                continue
            if not cols[0].isdigit():
                raise CorpusError(f"{path}:{lineno}: ID {cols[0]!r} is not a word index")
            start = start or lineno
            words.append(form)
            tags.append(cols[col])
        if words:
            out.append(TaggedSentence(words, tags, start))
    if not out:
        raise CorpusError(f"{path}: no sentences")
    return out


def read_items(
    path: str | Path,
    fmt: str,
    task: str,
    tag: str = "upos",
    tag_column: int = -1,
    scheme: str = "",
    text_column: str = "",
    label_column: str = "",
    need_target: bool = True,
) -> list[Item]:
    """Read a split as :class:`Item` s.

    Args:
        fmt: ``conllu`` | ``conll`` | a table format (``tsv``, ``csv``, ``jsonl``, ``label_text``); an ``hf:``
            path is read as a dataset whatever ``fmt`` says. task: ``tagger`` | ``classifier``.
        scheme: chunk tags as written (``iob1`` is converted to BIO; ``bio``/``bioes`` kept).
        text_column, label_column: a table's columns (see :mod:`elmokit.tasks.tables`).
        need_target: False for input to predict (a table may lack its label column).

    Raises:
        CorpusError: as the readers.
    """
    from elmokit.tasks.tables import read_table
    from elmokit.tasks.tags import iob1_to_bio

    if str(path).startswith("hf:") or fmt not in COLUMN_FORMATS:
        items = read_table(path, fmt, task, text_column, label_column, need_target)
    else:
        sents = read_conllu(path, tag) if fmt == "conllu" else read_conll(path, tag_column)
        items = [Item(s.words, s.tags, s.line) for s in sents]
    if scheme == "iob1":
        return [Item(it.words, iob1_to_bio(it.target), it.line) for it in items]
    return items


def read_text(files: list[str], fmt: str = "text", task: str = "classifier", text_column: str = "") -> list[str]:
    """The lines of plain text files, or the sentences of task data (``fmt`` as ``data.format``), words joined by
    spaces: the text ``elmokit fit`` measures and ``elmokit adapt`` trains on."""
    if fmt == "text":
        return [line for f in files for _, line in iter_lines(f)]
    task = "tagger" if fmt in COLUMN_FORMATS else task
    return [
        " ".join(it.words) for f in files for it in read_items(f, fmt, task, text_column=text_column, need_target=False)
    ]
