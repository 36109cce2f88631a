"""Tables: CSV/TSV/JSONL with named or numbered columns, LABEL text lines, HF datasets offline, file:line errors."""

from __future__ import annotations

import json

import pytest

from elmokit.core.errors import CorpusError
from elmokit.tasks.tables import read_table


def rows(items):
    return [(" ".join(i.words), i.target, i.line) for i in items]


def test_csv_named_columns_quotes_and_multiline(tmp_path):
    p = tmp_path / "hate.csv"
    p.write_text(
        'id,comments,hate\n1,"you, sir, are kind",none\n2,"two\nlines ""quoted""",hate\n3,ok,none\n', encoding="utf-8"
    )
    with pytest.raises(
        CorpusError,
        match=r"hate.csv:1: none of the columns \['id', 'comments', 'hate'\] is a label "
        r"column .*set data.label_column",
    ):
        read_table(p, "csv", "classifier")
    got = read_table(p, "csv", "classifier", text_column="comments", label_column="hate")
    assert rows(got) == [("you, sir, are kind", "none", 2), ('two lines "quoted"', "hate", 3), ("ok", "none", 5)]
    assert rows(read_table(p, "csv", "classifier", text_column="1", label_column="2")) == rows(got)  # numbers
    p.write_text('comments,hate\n"unclosed,none\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"hate.csv:\d+: not valid CSV"):
        read_table(p, "csv", "classifier")


def test_tsv_numbered_columns_without_header_and_wrong_width(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("x\tgreat film\tpos\ny\tdull\tneg\n", encoding="utf-8")
    assert rows(read_table(p, "tsv", "classifier", "1", "2")) == [("great film", "pos", 1), ("dull", "neg", 2)]
    with pytest.raises(CorpusError, match="has no header; give its number"):
        read_table(p, "tsv", "classifier", "review", "2")
    p.write_text("text\tlabel\ngood\tpos\nbad\tneg\textra\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"t.tsv:3: 3 columns, the header has 2"):
        read_table(p, "tsv", "classifier")


def test_jsonl_classifier_and_tagger(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"text": "nice one", "label": 1}) + "\n\n" + json.dumps({"text": "meh", "label": 0}) + "\n")
    assert rows(read_table(p, "jsonl", "classifier")) == [("nice one", "1", 1), ("meh", "0", 3)]
    t = tmp_path / "t.jsonl"
    t.write_text(
        json.dumps({"tokens": ["I", "run"], "tags": ["PRON", "VERB"]})
        + "\n"
        + json.dumps({"tokens": "You sing", "tags": "PRON VERB"})
        + "\n"
    )
    items = read_table(t, "jsonl", "tagger")
    assert [(i.words, i.target) for i in items] == [
        (["I", "run"], ["PRON", "VERB"]),
        (["You", "sing"], ["PRON", "VERB"]),
    ]
    t.write_text(json.dumps({"tokens": ["I", "run"], "tags": ["PRON"]}) + "\n")
    with pytest.raises(CorpusError, match=r"t.jsonl:1: 2 tokens but 1 tags"):
        read_table(t, "jsonl", "tagger")
    t.write_text(json.dumps({"tokens": ["I"], "tags": ["PRON"]}) + "\n{not json\n")
    with pytest.raises(CorpusError, match=r"t.jsonl:2: not JSON"):
        read_table(t, "jsonl", "tagger")


def test_label_text_lines(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("__label__pos a fine film\nneg  not good\n\nneu\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"l.txt:4: a label \('neu'\) and no text"):
        read_table(p, "label_text", "classifier")
    p.write_text("__label__pos a fine film\nneg  not good\n", encoding="utf-8")
    assert rows(read_table(p, "label_text", "classifier")) == [("a fine film", "pos", 1), ("not good", "neg", 2)]


def test_latin1_file_names_the_line(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("text,label\ncaf\xe9,pos\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin.csv:2: .*UTF-8"):
        read_table(p, "csv", "classifier")


def test_hf_datasets_offline(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    ds = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"sentence": ["good film", "bad film"], "label": [1, 0]}, features=features
            )
        }
    )
    ds.save_to_disk(str(tmp_path / "saved"))
    got = read_table(f"hf:{tmp_path / 'saved'}:train", "tsv", "classifier")
    assert rows(got) == [("good film", "pos", 1), ("bad film", "neg", 2)]  # class ids as their names
    with pytest.raises(CorpusError, match="no split 'test'"):
        read_table(f"hf:{tmp_path / 'saved'}:test", "tsv", "classifier")
    tags = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER"])),
        }
    )
    datasets.Dataset.from_dict({"tokens": [["Ann", "sings"]], "ner_tags": [[1, 0]]}, features=tags).save_to_disk(
        str(tmp_path / "ner")
    )
    (item,) = read_table(f"hf:{tmp_path / 'ner'}", "", "tagger")
    assert item.words == ["Ann", "sings"] and item.target == ["B-PER", "O"]
    j = tmp_path / "d.jsonl"
    j.write_text(json.dumps({"review": "fine", "stars": 5}) + "\n")
    assert rows(read_table(f"hf:json:{j}", "", "classifier", label_column="stars")) == [("fine", "5", 1)]
    c = tmp_path / "d.csv"
    c.write_text("text,label\nfine,pos\n")
    assert rows(read_table(f"hf:csv:{c}", "", "classifier")) == [("fine", "pos", 1)]


# --- issue 34, case 11: a BOM, a long cell, a label that is an object or a list, hf:json with a bad line -------------
BOM = "\ufeff"


@pytest.mark.parametrize(
    "name,fmt,body",
    [
        ("b.csv", "csv", "text,label\nfine film,pos\n"),
        ("b.tsv", "tsv", "text\tlabel\nfine film\tpos\n"),
        ("b.jsonl", "jsonl", '{"text": "fine film", "label": "pos"}\n'),
        ("b.txt", "label_text", "pos fine film\n"),
    ],
)
def test_a_utf8_bom_is_not_part_of_the_first_column(tmp_path, name, fmt, body):
    """Excel's "CSV UTF-8" starts with a byte order mark: the first column is `text`, not `\\ufefftext`."""
    p = tmp_path / name
    p.write_bytes((BOM + body).encode("utf-8"))
    assert rows(read_table(p, fmt, "classifier")) == [("fine film", "pos", 2 if fmt in ("csv", "tsv") else 1)]
    if fmt in ("csv", "tsv"):  # the advice a missing column gives (data.text_column=text) works
        assert rows(read_table(p, fmt, "classifier", text_column="text", label_column="label"))[0][1] == "pos"


@pytest.mark.parametrize("fmt,sep", [("csv", ","), ("tsv", "\t")])
def test_a_cell_longer_than_the_csv_modules_default_limit_is_read(tmp_path, fmt, sep):
    """131,072 characters is the csv module's default limit for a field; a long review is longer."""
    long_text = " ".join(["word"] * 60_000)  # 299,999 characters
    p = tmp_path / f"long.{fmt}"
    p.write_text(f"text{sep}label\n{long_text}{sep}pos\nshort{sep}neg\n", encoding="utf-8")
    got = read_table(p, fmt, "classifier")
    assert [len(i.words) for i in got] == [60_000, 1] and [i.target for i in got] == ["pos", "neg"]


def test_a_cell_over_the_limit_is_reported_as_such_not_as_bad_quotes(tmp_path, monkeypatch):
    import csv

    import elmokit.tasks.tables as T

    p = tmp_path / "over.csv"
    p.write_text("text,label\n" + "x" * 2000 + ",pos\n", encoding="utf-8")
    before = csv.field_size_limit()
    monkeypatch.setattr(T, "FIELD_LIMIT", 1000)
    csv.field_size_limit(1000)
    try:
        with pytest.raises(CorpusError, match=r"over.csv:2: a cell of more than 1,000 characters") as e:
            read_table(p, "csv", "classifier")
    finally:
        csv.field_size_limit(before)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "task,line,match",
    [
        ("classifier", {"text": "b", "label": {"stars": 5}}, r"d.jsonl:2: the label \(column 'label'\) is a JSON obj"),
        ("classifier", {"text": "b", "label": ["pos", "neg"]}, r"d.jsonl:2: the label \(column 'label'\) is a list"),
        ("classifier", {"text": {"t": "b"}, "label": "pos"}, r"d.jsonl:2: the text \(column 'text'\) is a JSON object"),
        ("classifier", {"text": ["b", {"w": 1}], "label": "pos"}, r"d.jsonl:2: the text column holds a JSON object"),
        ("tagger", {"tokens": ["b", "c"], "tags": ["X", {"t": "Y"}]}, r"d.jsonl:2: the tags column holds a JSON obj"),
        ("tagger", {"tokens": ["b", ["c"]], "tags": ["X", "Y"]}, r"d.jsonl:2: the tokens column holds a list"),
    ],
)
def test_a_jsonl_label_that_is_an_object_or_a_list_is_refused_naming_the_line(tmp_path, task, line, match):
    """Not silently made a class named "{'stars': 5}"."""
    first = {"text": "a", "label": "pos"} if task == "classifier" else {"tokens": ["a"], "tags": ["X"]}
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(first) + "\n" + json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=match) as e:
        read_table(p, "jsonl", task)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "body,match",
    [
        ('{"text": "a", "label": "x"}\n\n{"text": oops}\n', r"^\S*bad.json:3: not JSON"),  # JSON Lines: the line
        ('{"text": "a", "label": "x"}\n[1, 2]\n', r"^\S*bad.json:2: a JSON list, not an object"),
        ('[{"text": "a", "label": "x"},\n oops]\n', r"^hf:json:\S*bad.json: the datasets json builder cannot read"),
    ],
)
def test_hf_json_with_an_invalid_line_is_one_error_naming_the_file(tmp_path, monkeypatch, capfd, body, match):
    """datasets raises its own errors (three tracebacks, no line number) and logs to stderr: one CorpusError naming
    the file (and the line, for JSON Lines), nothing else printed."""
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    p = tmp_path / "bad.json"
    p.write_text(body, encoding="utf-8")
    capfd.readouterr()
    with pytest.raises(CorpusError, match=match) as e:
        read_table(f"hf:json:{p}", "", "classifier")
    assert "\n" not in str(e.value)
    out, err = capfd.readouterr()
    assert not out.strip() and not err.strip(), err
