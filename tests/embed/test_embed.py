import hashlib
import json
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from elmokit.cli import main
from elmokit.core.errors import CorpusError, ElmokitError
from elmokit.embed import Embedder, EmbeddingsFile
from elmokit.embed.writer import write_hdf5

LINES = [
    "The old farmer sees many cats .",
    "",
    "Birds sing .",
    "고양이가 책을 본다 .",
    "Birds sing .",
    "a/b c/d keys with slashes are fine",
    "Some machines wait today .",
] * 3


@pytest.fixture(scope="module")
def emb(tiny_pair):
    return Embedder(tiny_pair["bundle"], batch_tokens=64)


@pytest.fixture()
def text(tmp_path):
    p = tmp_path / "in.txt"
    p.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("layout", ["allennlp", "packed"])
@pytest.mark.parametrize("layers", ["all", "top", "average"])
def test_hdf5_reads_back_equal_to_the_api(emb, text, tmp_path, layout, layers):
    out = write_hdf5(emb, text, tmp_path / "v.hdf5", layers=layers, layout=layout, chunk_lines=4, progress=False)
    want = emb.embed_sentences(LINES)
    with EmbeddingsFile(out) as f:
        assert len(f) == len(LINES)
        assert f.attrs["model_sha256"] == emb.bilm.sha256 and f.attrs["layers"] == layers and f.attrs["complete"]
        for i, w in enumerate(want):
            ref = w if layers == "all" else (w[-1] if layers == "top" else w.mean(0))
            np.testing.assert_allclose(f[i], ref, atol=1e-6)
        if layout == "allennlp":
            s2i = f.sentence_to_index()
            assert s2i["Birds sing ."] == "2" and s2i[""] == "1"  # the first of duplicates; empty lines too
    assert not (tmp_path / "v.hdf5.partial").exists()


def test_allennlp_layout_with_plain_h5py(emb, text, tmp_path):
    out = write_hdf5(emb, text, tmp_path / "v.hdf5", progress=False)
    with h5py.File(out, "r") as f:
        assert f["0"].shape == (3, 7, 64) and f["1"].shape == (3, 0, 64) and f["0"].dtype == np.float32
        s2i = json.loads(f["sentence_to_index"][0])
        assert f[s2i["Birds sing ."]].shape == (3, 3, 64)


@pytest.mark.parametrize("layout", ["allennlp", "packed"])
@pytest.mark.parametrize("layers", ["all", "top", "average"])
def test_float16(emb, text, tmp_path, layout, layers):
    out = write_hdf5(
        emb, text, tmp_path / "v.hdf5", dtype="float16", layout=layout, layers=layers, chunk_lines=5, progress=False
    )
    want = emb.embed_sentences(LINES)
    with EmbeddingsFile(out) as f:
        for i, w in enumerate(want):
            ref = w if layers == "all" else (w[-1] if layers == "top" else w.mean(0))
            assert f[i].dtype == np.float16 and f[i].shape == ref.shape
            np.testing.assert_allclose(f[i], ref.astype(np.float16), atol=1e-3)  # rounded once, from float32


def test_packed_orders_hold_the_same_vectors(tiny_pair):
    """The three layouts of ``embed_packed`` (and its float16 output) are the same numbers, placed differently, also
    for a sentence embedded in several windows and for empty sentences."""
    e = Embedder(tiny_pair["bundle"], batch_tokens=40, max_words=4)
    sents = [s.split() for s in LINES[:8]] + [[], "cats sing near the old river today .".split()]
    by_layer, offsets = e.embed_packed(sents)  # (layers, words, 2D)
    L, W, D2 = by_layer.shape
    by_word, off_w = e.embed_packed(sents, order="words")
    rows, off_s = e.embed_packed(sents, order="sentences")
    half, _ = e.embed_packed(sents, order="sentences", dtype=np.float16)
    assert offsets == off_w == off_s and offsets[-1] == W == sum(len(s) for s in sents)
    np.testing.assert_array_equal(by_word, by_layer.transpose(1, 0, 2))
    assert rows.shape == (L * W, D2) and half.dtype == np.float16
    for a, b in zip(offsets[:-1], offsets[1:]):
        block = rows[L * a : L * b].reshape(L, b - a, D2)
        np.testing.assert_array_equal(block, by_layer[:, a:b])
        np.testing.assert_array_equal(half[L * a : L * b].reshape(L, b - a, D2), block.astype(np.float16))
    got = e.embed_tokens(sents)
    assert all(g.flags.c_contiguous for g in got)
    np.testing.assert_array_equal(got[-1], by_layer[:, offsets[-2] :])
    with pytest.raises(ValueError, match="order"):
        e.embed_packed(sents, order="columns")


def test_iter_sentences_yields_each_sentence_once_as_embed_tokens(tiny_pair):
    """The streaming path (one batch in memory, sentences as their batch is done) gives the same arrays as the
    buffered one (within the 1e-5 any batching gives), also for a sentence longer than max_words and for empty
    sentences."""
    e = Embedder(tiny_pair["bundle"], batch_tokens=40, max_words=4)
    sents = [s.split() for s in LINES[:8]] + [[], "cats sing near the old river today .".split()]
    want = e.embed_tokens(sents)
    got = list(e.iter_sentences(sents))
    assert sorted(i for i, _ in got) == list(range(len(sents)))
    assert [i for i, _ in got] != list(range(len(sents)))  # sorted by length into batches, not in input order
    for i, v in got:
        assert v.flags.c_contiguous and v.dtype == np.float32
        np.testing.assert_allclose(v, want[i], atol=1e-5)  # other batches (the long sentence is apart): within 1e-5
    half = dict(e.iter_sentences(sents, np.float16))
    assert half[0].dtype == np.float16
    np.testing.assert_allclose(half[0], want[0], atol=1e-3)


def test_ranges_is_the_concatenated_aranges():
    from elmokit.embed.embedder import _ranges

    starts, counts = np.array([5, 0, 9, 3]), np.array([2, 0, 3, 1])
    want = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts)])
    np.testing.assert_array_equal(_ranges(starts, counts), want)
    assert _ranges(np.array([], dtype=np.int64), np.array([], dtype=np.int64)).shape == (0,)


def test_batches_hold_multiples_of_row_multiple_within_the_budget(tiny_pair):
    from elmokit.embed.embedder import ROW_MULTIPLE

    e = Embedder(tiny_pair["bundle"], batch_tokens=400)
    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(3, 120, size=700)] + [500]  # one longer than the budget
    batches = list(e._batches(lengths))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) < ROW_MULTIPLE or len(b) % ROW_MULTIPLE == 0  # a bounded set of batch sizes
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 400
    assert max(len(b) for b in batches) >= ROW_MULTIPLE


def test_sentence_to_index_is_json_of_the_first_occurrences(tmp_path):
    from elmokit.embed.writer import _scan

    lines = ["a b", 'say "hi" \\ now', "", "a b", "영화 좋아요", "", "z"]
    p = tmp_path / "in.txt"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    first: dict[str, str] = {}
    for k, t in enumerate(lines):
        first.setdefault(t, str(k))
    index, n = _scan(p, tokenized=False, with_index=True)
    blob = b"".join(index.pieces(size=8))  # in pieces of about 8 bytes: the same JSON
    assert n == len(lines) and blob == json.dumps(first, ensure_ascii=False).encode("utf-8")
    assert index.nbytes == len(blob) and index.sha256 == hashlib.sha256(blob).hexdigest()
    assert _scan(p, tokenized=False, with_index=False) == (None, len(lines))


def test_killed_inside_a_chunk_resumes_equal(emb, text, tmp_path, monkeypatch):
    """The AllenNLP layout writes each batch's sentences as they are done: a kill in the middle of a chunk leaves
    its part unfinished (never journalled), and --resume redoes that chunk whole."""
    full = write_hdf5(emb, text, tmp_path / "full.hdf5", progress=False)  # one chunk (default 10,000 lines)
    cut = tmp_path / "cut.hdf5"
    real = Embedder.iter_sentences

    def killed(self, sentences, dtype=np.float32):
        for k, item in enumerate(real(self, sentences, dtype)):
            if k == 5:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(Embedder, "iter_sentences", killed)
    with pytest.raises(KeyboardInterrupt):
        write_hdf5(emb, text, cut, progress=False)
    partial = tmp_path / "cut.hdf5.partial"
    assert partial.is_dir() and len((partial / "journal.jsonl").read_text().splitlines()) == 1  # no part done
    with pytest.raises(ElmokitError, match="unfinished run of this output is here; continue it with --resume"):
        write_hdf5(emb, text, cut, progress=False)
    monkeypatch.setattr(Embedder, "iter_sentences", real)
    write_hdf5(emb, text, cut, progress=False, resume=True)
    assert not partial.exists()
    with EmbeddingsFile(full) as a, EmbeddingsFile(cut) as b:
        assert len(a) == len(b) == len(LINES)
        for i in range(len(a)):
            np.testing.assert_array_equal(a[i], b[i])
        assert a.sentence_to_index() == b.sentence_to_index()


@pytest.mark.parametrize("layout", ["allennlp", "packed"])
def test_killed_then_resumed_equals_uninterrupted(emb, text, tmp_path, layout):
    full = write_hdf5(emb, text, tmp_path / "full.hdf5", layout=layout, chunk_lines=4, progress=False)
    cut = tmp_path / "cut.hdf5"
    partial = write_hdf5(emb, text, cut, layout=layout, chunk_lines=4, progress=False, stop_after_chunks=2)
    assert partial.name == "cut.hdf5.partial" and not cut.exists()
    with pytest.raises(ElmokitError, match="incomplete"):
        EmbeddingsFile(partial)
    write_hdf5(emb, text, cut, layout=layout, chunk_lines=4, progress=False, resume=True)
    with EmbeddingsFile(full) as a, EmbeddingsFile(cut) as b:
        assert len(a) == len(b) and a.attrs["complete"] and b.attrs["lines_done"] == len(LINES)
        for i in range(len(a)):
            np.testing.assert_array_equal(a[i], b[i])
        assert a.sentence_to_index() == b.sentence_to_index()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"layers": "top"}, "was started with layers='all', now 'top'"),
        ({"tokenized": True}, "was started with tokenized=False, now True"),
        ({"chunk_lines": 5}, "was started with chunk_lines=4, now 5"),
        ({"layout": "packed"}, "was started with layout='allennlp'"),
        ({"dtype": "float16"}, "was started with dtype='float32'"),
    ],
)
def test_resume_refuses_other_options(emb, text, tmp_path, change, message):
    write_hdf5(emb, text, tmp_path / "o.hdf5", chunk_lines=4, progress=False, stop_after_chunks=1)
    opts = {"chunk_lines": 4, **change}
    with pytest.raises(ElmokitError, match=message):
        write_hdf5(emb, text, tmp_path / "o.hdf5", progress=False, resume=True, **opts)
    assert (tmp_path / "o.hdf5.partial" / "part-00000000.h5").is_file()  # nothing written is lost


def test_resume_refuses_another_input(emb, text, tmp_path):
    write_hdf5(emb, text, tmp_path / "o.hdf5", chunk_lines=4, progress=False, stop_after_chunks=1)
    text.write_text("other text\n" * 30, encoding="utf-8")
    with pytest.raises(ElmokitError, match="was started with input_sha256=.*same input"):
        write_hdf5(emb, text, tmp_path / "o.hdf5", chunk_lines=4, progress=False, resume=True)


def test_resume_redoes_a_damaged_or_torn_part(emb, text, tmp_path, capsys):
    """A part whose bytes changed after it was journalled is embedded again (and the parts after it); a torn last
    journal line (a kill while it was written) is dropped; the result equals an uninterrupted run."""
    full = write_hdf5(emb, text, tmp_path / "full.hdf5", chunk_lines=4, progress=False)
    partial = write_hdf5(emb, text, tmp_path / "o.hdf5", chunk_lines=4, progress=False, stop_after_chunks=3)
    p1 = partial / "part-00000001.h5"
    data = bytearray(p1.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p1.write_bytes(bytes(data))
    with open(partial / "journal-0.jsonl", "a", encoding="utf-8") as j:  # where this process journals its parts
        j.write('{"part": 3, "file": "part-0000')  # torn
    out = write_hdf5(emb, text, tmp_path / "o.hdf5", chunk_lines=4, progress=False, resume=True)
    assert "part-00000001.h5: missing or its sha256 differs" in capsys.readouterr().out
    with EmbeddingsFile(full) as a, EmbeddingsFile(out) as b:
        assert len(a) == len(b)
        for i in range(len(a)):
            np.testing.assert_array_equal(a[i], b[i])


def test_resume_of_an_old_partial_file_is_a_clear_error(emb, text, tmp_path):
    (tmp_path / "o.hdf5.partial").write_bytes(b"\x89HDF\r\n" + bytes(100))  # a .partial file of elmokit <= 0.1
    with pytest.raises(ElmokitError, match="partial file from an older elmokit.*delete it"):
        write_hdf5(emb, text, tmp_path / "o.hdf5", chunk_lines=4, progress=False, resume=True)
    assert (tmp_path / "o.hdf5.partial").exists()  # nothing is deleted for the user


def test_an_existing_output_is_kept_without_overwrite(emb, text, tmp_path):
    out = write_hdf5(emb, text, tmp_path / "v.hdf5", progress=False)
    before = out.read_bytes()
    with pytest.raises(ElmokitError, match="v.hdf5: exists; pass --overwrite"):
        write_hdf5(emb, text, out, layers="top", progress=False)
    with pytest.raises(ElmokitError, match="exists; pass --overwrite"):
        write_hdf5(emb, text, out, progress=False, resume=True)
    assert out.read_bytes() == before
    write_hdf5(emb, text, out, layers="top", progress=False, overwrite=True)
    with EmbeddingsFile(out) as f:
        assert f.attrs["layers"] == "top"


class _FullDisk:
    """os-level writes that fail with ENOSPC once ``budget`` bytes went through (a disk filling up)."""

    def __init__(self, budget):
        self.budget = budget

    def wrap(self, safe):
        real = safe.f.write

        def write(b):
            n = len(memoryview(b).cast("B"))
            if self.budget <= 0:
                raise OSError(28, "No space left on device")
            k = min(n, self.budget)
            self.budget -= k
            return real(memoryview(b).cast("B")[:k])

        safe.f = _Proxy(safe.f, write)


class _Proxy:
    def __init__(self, f, write):
        self._f, self.write = f, write

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.mark.parametrize("layout", ["allennlp", "packed"])
def test_a_full_disk_is_one_clear_error_and_keeps_the_done_parts(emb, text, tmp_path, monkeypatch, layout):
    """The disk fills up inside the third part: one DiskError naming the file (no HDF5 error storm, no crash), the
    two finished parts stay, the older output is untouched, and --resume on a freed disk finishes equal."""
    import elmokit.embed.hdf5_safe as V

    full = write_hdf5(emb, text, tmp_path / "full.hdf5", layout=layout, chunk_lines=4, progress=False)
    out = tmp_path / "o.hdf5"
    out.write_bytes(b"an older good output")
    disk = _FullDisk(0)
    real_init = V.SafeFile.__init__
    parts = []

    def init(self, path, mode):
        real_init(self, path, mode)
        if path.name.startswith(".part-"):  # (the merge into .final.tmp opens one too, once part 0 is done)
            parts.append(path)
        if len(parts) == 3 and path.name.startswith(".part-"):  # the third part: the disk fills up 3,000 bytes in
            disk.budget = 3000
            disk.wrap(self)

    monkeypatch.setattr(V.SafeFile, "__init__", init)
    with pytest.raises(V.DiskError, match=r"part-00000002.h5.tmp: cannot write: the disk is full.*--resume"):
        write_hdf5(emb, text, out, layout=layout, chunk_lines=4, progress=False, overwrite=True)
    assert out.read_bytes() == b"an older good output"
    partial = tmp_path / "o.hdf5.partial"
    assert sorted(p.name for p in partial.iterdir()) == [
        "journal-0.jsonl",  # the parts done, as this process journalled them
        "journal.jsonl",
        "part-00000000.h5",
        "part-00000001.h5",
    ]
    monkeypatch.setattr(V.SafeFile, "__init__", real_init)
    write_hdf5(emb, text, out, layout=layout, chunk_lines=4, progress=False, resume=True, overwrite=True)
    with EmbeddingsFile(full) as a, EmbeddingsFile(out) as b:
        assert len(a) == len(b)
        for i in range(len(a)):
            np.testing.assert_array_equal(a[i], b[i])


@pytest.mark.parametrize("layout", ["allennlp", "packed"])
def test_a_full_disk_while_merging_is_one_clear_error_and_keeps_every_part(emb, text, tmp_path, monkeypatch, layout):
    """The main process merges each part as it is done: the disk filling up in the merged file (``.final.tmp``)
    stops the run at once with one DiskError naming it; no output appears, every part done stays, the merged file
    is deleted, and --resume on a freed disk finishes equal."""
    import elmokit.embed.hdf5_safe as V

    full = write_hdf5(emb, text, tmp_path / "full.hdf5", layout=layout, chunk_lines=4, progress=False)
    out = tmp_path / "o.hdf5"
    disk = _FullDisk(0)
    real_init = V.SafeFile.__init__

    def init(self, path, mode):
        real_init(self, path, mode)
        if path.name == ".final.tmp":  # opened once part 0 is done; appending part 1 fills the disk
            disk.budget = 3000
            disk.wrap(self)

    monkeypatch.setattr(V.SafeFile, "__init__", init)
    with pytest.raises(V.DiskError, match=r"\.final\.tmp: cannot write: the disk is full.*--resume"):
        write_hdf5(emb, text, out, layout=layout, chunk_lines=4, progress=False)
    assert not out.exists()
    partial = tmp_path / "o.hdf5.partial"
    names = sorted(p.name for p in partial.iterdir())
    assert ".final.tmp" not in names and "part-00000000.h5" in names and "part-00000001.h5" in names
    monkeypatch.setattr(V.SafeFile, "__init__", real_init)
    write_hdf5(emb, text, out, layout=layout, chunk_lines=4, progress=False, resume=True)
    with EmbeddingsFile(full) as a, EmbeddingsFile(out) as b:
        assert len(a) == len(b)
        for i in range(len(a)):
            np.testing.assert_array_equal(a[i], b[i])


def test_too_little_free_space_is_refused_before_writing(emb, text, tmp_path, monkeypatch):
    import shutil as sh

    import elmokit.embed.hdf5_safe as V

    monkeypatch.setattr(V.shutil, "disk_usage", lambda p: sh._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    with pytest.raises(V.DiskError, match=r"1.0 MiB free, but the next chunk \(4 lines\) needs about"):
        write_hdf5(emb, text, tmp_path / "o.hdf5", chunk_lines=4, progress=False)
    assert not (tmp_path / "o.hdf5").exists()


def test_truncated_hdf5_is_a_clear_error(emb, text, tmp_path):
    out = write_hdf5(emb, text, tmp_path / "v.hdf5", progress=False)
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 3])
    with pytest.raises(ElmokitError, match="not a readable HDF5 file"):
        EmbeddingsFile(out)


def test_bad_input_keeps_the_existing_output(emb, text, tmp_path):
    out = write_hdf5(emb, text, tmp_path / "v.hdf5", progress=False)
    before = out.read_bytes()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nbroken \xe9 latin-1\n")
    with pytest.raises(CorpusError, match=r"bad.txt:2: invalid UTF-8"):
        write_hdf5(emb, bad, out, progress=False, overwrite=True)
    assert out.read_bytes() == before


@pytest.mark.slow
def test_a_100k_token_line_is_written_window_by_window(tiny_pair, tmp_path):
    """The AllenNLP layout writes a long line's windows into its dataset as they are done: the array memory of the
    run (numpy's, traced) stays well under the line's vectors (3 x 100k x 64 float32 = 77 MB; 109 MB traced when
    the line was buffered whole)."""
    import tracemalloc

    e = Embedder(tiny_pair["bundle"], max_words=1000)
    words = ["cats", "sing", "."] * 33_334  # 100,002 words
    p = tmp_path / "long.txt"
    p.write_text("Birds sing .\n" + " ".join(words) + "\n", encoding="utf-8")
    tracemalloc.start()
    try:
        out = write_hdf5(e, p, tmp_path / "long.hdf5", layers="all", progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    line_bytes = 3 * len(words) * 64 * 4
    assert peak < line_bytes / 2, (peak, line_bytes)
    with EmbeddingsFile(out) as f:
        got = f[1]
    assert got.shape == (3, len(words), 64)
    for a, b in ((0, 1000), (57_000, 58_000), (100_000, 100_002)):  # first, a middle and the last window
        np.testing.assert_allclose(got[:, a:b], e.embed_tokens([words[a:b]])[0], atol=1e-5)


@pytest.mark.parametrize("layers", ["top", "average"])
def test_long_line_windows_reduce_layers_as_short_lines_do(tiny_pair, tmp_path, layers):
    e = Embedder(tiny_pair["bundle"], max_words=100)
    words = ["cats", "sing", "."] * 84  # 252 words: windows of 100, 100 and 52
    p = tmp_path / "long.txt"
    p.write_text(" ".join(words) + "\n", encoding="utf-8")
    out = write_hdf5(e, p, tmp_path / "long.hdf5", layers=layers, dtype="float16", progress=False)
    full = e.embed_tokens([words])[0]  # (layers, words, 2D), the same windows
    want = full[-1] if layers == "top" else full.mean(0)
    with EmbeddingsFile(out) as f:
        assert f[0].dtype == np.float16
        np.testing.assert_allclose(f[0], want, atol=2e-3)


def test_tokenized_input(emb, tmp_path):
    p = tmp_path / "tok.conll"
    p.write_text("# sent 1\nThe\tDET\ncats\tNOUN\n\nBirds\tNOUN\nsing\tVERB\n", encoding="utf-8")
    out = write_hdf5(emb, p, tmp_path / "t.hdf5", tokenized=True, progress=False)
    with EmbeddingsFile(out) as f:
        assert len(f) == 2 and f[0].shape[1] == 2
        np.testing.assert_allclose(f[1], emb.embed_tokens([["Birds", "sing"]])[0], atol=1e-6)


def test_cli_bundle_and_embed(tiny_pair, text, tmp_path):
    r = CliRunner().invoke(
        main, ["bundle", str(tiny_pair["forward"]), str(tiny_pair["backward"]), "--out", str(tmp_path / "b")]
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        main,
        [
            "embed",
            str(tmp_path / "b"),
            str(text),
            str(tmp_path / "v.hdf5"),
            "--layers",
            "average",
            "--layout",
            "packed",
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    with EmbeddingsFile(tmp_path / "v.hdf5") as f:
        assert len(f) == len(LINES) and f[0].shape == (7, 64)
    r = CliRunner().invoke(
        main, ["bundle", str(tiny_pair["backward"]), str(tiny_pair["forward"]), "--out", str(tmp_path / "b2")]
    )
    assert r.exit_code == 2 and "pass the forward LM first" in r.output and "Traceback" not in r.output


def test_tokenized_reads_the_form_column_of_conllu(tmp_path):
    from elmokit.embed.writer import read_sentences

    p = tmp_path / "s.conllu"
    p.write_text(
        "# text = Don't go\n1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_\n1\tDo\tdo\tAUX\t_\t_\t_\t_\t_\t_\n"
        "2\tn't\tnot\tPART\t_\t_\t_\t_\t_\t_\n2.1\tgone\t_\t_\t_\t_\t_\t_\t_\t_\n3\tgo\tgo\tVERB\t_\t_\t_\t_\t_\t_\n\n"
        "hello\tX\nworld\tY\n",
        encoding="utf-8",
    )
    assert [w for _, w, _ in read_sentences(p, tokenized=True)] == [["Do", "n't", "go"], ["hello", "world"]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="found through dlsym on h5py's module (Linux)")
def test_output_file_evicts_dataset_metadata_on_close(tmp_path):
    """`embed`'s file drops each dataset's header from HDF5's metadata cache when it is closed (memory flat in
    the number of sentences): with it, the cache stays a fraction of a plain h5py file's after 2,000 datasets."""
    from elmokit.embed.hdf5_safe import SafeFile, _evict_on_close, new_dataset, open_hdf5

    assert _evict_on_close() is not None
    data = np.zeros((3, 2, 4), np.float32)
    sizes = {}
    for kind in ("plain", "embed"):
        safe = SafeFile(tmp_path / "o.hdf5", "w+b")
        f = h5py.File(tmp_path / f"{kind}.hdf5", "w") if kind == "plain" else open_hdf5(safe, create=True)
        for i in range(2000):
            new_dataset(f, str(i), data)
        sizes[kind] = f.id.get_mdc_size()[2]  # bytes in the metadata cache
        f.close()
        safe.close()
    assert sizes["embed"] < sizes["plain"] / 3, sizes
    safe = SafeFile(tmp_path / "o.hdf5", "r+b")
    f = open_hdf5(safe, create=False)  # the merge opens it the same way
    assert f.id.get_mdc_config().max_size == 4 * 2**20 and len(f) == 2000
    f.close()
    safe.close()
