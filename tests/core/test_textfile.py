import pytest

from elmokit.core.errors import CorpusError
from elmokit.core.textfile import iter_lines, split_long_line


def test_crlf_and_empty_lines(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"one two\r\n\r\nthree\r\n")
    assert list(iter_lines(p)) == [(1, "one two"), (2, ""), (3, "three")]


def test_invalid_utf8_names_file_line_column(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"fine\nalso fine\nbad \xff byte\n")
    with pytest.raises(CorpusError, match=r"bad.txt:3: invalid UTF-8 at byte column 5"):
        list(iter_lines(p))


def test_nul_byte(tmp_path):
    p = tmp_path / "nul.txt"
    p.write_bytes(b"ok\nx\x00y\n")
    with pytest.raises(CorpusError, match=r"nul.txt:2: NUL byte at byte column 2"):
        list(iter_lines(p))


def test_missing_and_empty(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        list(iter_lines(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(CorpusError, match="empty"):
        list(iter_lines(tmp_path / "empty.txt"))


def test_long_line_is_split_not_lost(tmp_path):
    words = [f"w{i}" for i in range(100_000)]
    p = tmp_path / "long.txt"
    p.write_text(" ".join(words) + "\nshort\n", encoding="utf-8")
    out = list(iter_lines(p, max_line_chars=20000))
    assert all(len(t) <= 20000 for _, t in out)
    assert [w for _, t in out[:-1] for w in t.split()] == words
    assert out[-1] == (2, "short") and {n for n, _ in out[:-1]} == {1}


def test_split_inside_giant_word():
    assert split_long_line("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
