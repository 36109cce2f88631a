import pytest

from elmokit.core.errors import CorpusError
from elmokit.tasks.readers import read_conll, read_conllu
from elmokit.tasks.tables import read_table


def test_conll(tmp_path):
    p = tmp_path / "a.conll"
    p.write_text(
        "-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n", encoding="utf-8"
    )
    sents = read_conll(p)
    assert [s.words for s in sents] == [["EU", "rejects"], ["Peter"]]
    assert sents[0].tags == ["B-ORG", "O"] and read_conll(p, tag_column=1)[0].tags == ["NNP", "VBZ"]
    assert sents[1].line == 6


def test_conll_errors(tmp_path):
    p = tmp_path / "b.conll"
    p.write_text("EU NNP B-ORG\nrejects O\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"b.conll:2: 2 columns, but this sentence's lines have 3"):
        read_conll(p)
    p.write_text("\n-DOCSTART- O\n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no sentences"):
        read_conll(p)


def test_conllu_skips_ranges_and_empty_nodes(tmp_path):
    p = tmp_path / "a.conllu"
    rows = [
        "# text = I don't know",
        "1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_",
        "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_",
        "2\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_",
        "3\tn't\tnot\tPART\tRB\t_\t0\troot\t_\t_",
        "3.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t_\t_",
        "",
        "",
    ]
    p.write_text("\n".join(rows), encoding="utf-8")
    (s,) = read_conllu(p)
    assert s.words == ["I", "do", "n't"] and s.tags == ["PRON", "AUX", "PART"]
    assert read_conllu(p, "xpos")[0].tags == ["PRP", "VBP", "RB"]
    p.write_text("1 I I PRON PRP _ 0 root _ _\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"a.conllu:1: 1 tab-separated columns, CoNLL-U has 10"):
        read_conllu(p)


def test_tsv_nsmc_and_plain(tmp_path):
    p = tmp_path / "nsmc.txt"
    p.write_text('id\tdocument\tlabel\n1\t재밌다 "진짜"\t1\n2\t별로\t0\n', encoding="utf-8")
    ex = read_table(p, "tsv", "classifier")
    assert [(e.words, e.target, e.line) for e in ex] == [(["재밌다", '"진짜"'], "1", 2), (["별로"], "0", 3)]
    q = tmp_path / "plain.tsv"
    q.write_text("good movie\tpos\nbad\tneg\n", encoding="utf-8")
    assert [e.target for e in read_table(q, "tsv", "classifier")] == ["pos", "neg"]
    q.write_text("good movie\tpos\nno label here\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"plain.tsv:2: no column 1 in this row"):
        read_table(q, "tsv", "classifier")
