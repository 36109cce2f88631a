"""``elmokit export-elmo``: a character biLM written in bilm-tf's files, for every tool that reads ELMo.

``DIR/options.json``, ``DIR/weights.hdf5`` and ``DIR/vocab.txt`` are laid out as bilm-tf's ``dump_weights`` writes
them and as its ``BidirectionalLanguageModel``, AllenNLP's ``Elmo`` (``_ElmoCharacterEncoder``, ``ElmoLstm``),
simple_elmo and flair read them. Every conversion of :mod:`elmokit.bilm.import_elmo` is undone:

- ``char_embed``: the table without its row 0 (the padding of a missing word, which every reader puts back as
  zeros): 261 rows; ``n_characters`` is 262, what bilm-tf's and simple_elmo's inference and AllenNLP expect (bilm-tf's
  *training* asks for 261: set it back to go on training there).
- ``CNN/W_cnn_i`` ``(1, width, dim, count)`` and ``b_cnn_i``; ``CNN_high_k``: the carry weights and bias negated back
  (TensorFlow gates the transform with ``σ(x W_carry + b_carry)``; :mod:`elmokit.modules.char_cnn` gates the input),
  every matrix transposed to TensorFlow's ``x W``; ``CNN_proj/W_proj`` ``(F, P)`` and ``b_proj``, always written
  (AllenNLP reads it at any width; bilm-tf reads it only when the filters are wider than the projection).
- ``RNN_{0,1}/RNN/MultiRNNCell/Cell{k}/LSTMCell``: ``W_0`` ``(2P, 4H)``, rows ``[input; h_prev]``, columns in
  TensorFlow's gate order ``i, j, f, o``; ``B`` the sum of PyTorch's two biases less TensorFlow's forget bias of 1
  (its ``LSTMCell`` adds it inside the cell); ``W_P_0`` ``(H, P)``. ``RNN_0`` is the forward direction.
- A word softmax, where the biLM has one: ``softmax/W`` ``(V, D)`` and ``softmax/b`` ``(V,)`` (bilm-tf's names and
  shapes; its row ``i`` is line ``i`` of ``vocab.txt``, and ``options.json`` gets ``n_tokens_vocab``). bilm-tf's files
  hold one softmax, shared by both directions; a biLM with one per direction writes the forward one there and the
  backward one as ``softmax_backward/W`` and ``softmax_backward/b``, which bilm-tf and AllenNLP do not read (they
  read their datasets by name and ignore the rest).
- ``vocab.txt``: bilm-tf's vocabulary (one word a line, ``<S>``, ``</S>``, ``<UNK>`` among them): the biLM's words,
  or, for a biLM without a word vocabulary, those three alone (bilm-tf's ``Batcher`` and simple_elmo read the
  characters of any word with it).
- ``DIR/elmokit.json``: what made the files (the source bundle's path and sha256, each file's sha256, the versions, the
  notes printed at export).

Refused, with the reason, is what the format cannot hold: elmokit's own pieces biLM, a stack that is not an LSTM with
a projection, a token encoder with a word embedding or characters from a lexicon (ELMoForManyLangs' code points:
bilm-tf's tools would read other ids), a character table that is not the 262 byte ids, filters narrower than the
projection, and filters as wide as it with a projection that is not the identity (bilm-tf has none there).

``--out`` follows :func:`elmokit.bilm.import_elmo.check_out`'s rules: never the source, inside it or holding it, never a
link; an existing one is replaced only with ``overwrite`` and only if it is an earlier export. The files are written
into a temporary directory, flushed, read back through the importer's own reader and compared with the biLM, then
renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from elmokit.bilm.bundle import BUNDLE_FORMAT, load_bilm
from elmokit.bilm.charbilm import CharBiLM
from elmokit.bilm.import_elmo import FILE_CHARS, TF_GATE_OF, bilm_tf_state, options_config
from elmokit.core.errors import CheckpointError
from elmokit.core.files import (
    atomic_dir,
    check_out_dir,
    commit_dir,
    fsync_dir,
    removed_on_disk_error,
    versions,
)
from elmokit.core.textfile import sha256_file

EXPORT_FORMAT = "elmokit-export-elmo/1"
FILES = ("options.json", "weights.hdf5", "vocab.txt")
VOCAB_SPECIALS = ("<S>", "</S>", "<UNK>")  # bilm-tf's Vocabulary needs all three
SOFTMAXES = ("none", "shared", "per-direction")
ALLENNLP_CHARS = 50  # AllenNLP's ELMoCharacterMapper makes 50 ids per word
BILM_TF_LAYERS = 8  # bilm-tf's reader maps the LSTM variables of layers 0..7 only
TOLERANCE = 1e-6  # the read-back check of the LSTM biases, the only values not copied exactly (b + 1 - 1 rounds)
PIECES = (
    "a pieces biLM (elmokit's own: sentencepiece pieces in and out), not a character biLM; bilm-tf's files hold a "
    "character CNN over UTF-8 bytes: pretrain the pair with model.encoder=char_cnn to export it"
)


@dataclass
class Exported:
    """What :func:`export_elmo` wrote."""

    path: Path
    words: int  # lines of vocab.txt
    softmax: str  # none | shared | per-direction
    notes: list[str] = field(default_factory=list)  # which readers will not take it as it is, and why


def refusal(bilm) -> str | None:
    """Why bilm-tf's files cannot hold ``bilm`` (``None`` when they can).

    Args:
        bilm: a loaded biLM (:func:`~elmokit.bilm.bundle.load_bilm`).
    """
    if not isinstance(bilm, CharBiLM):
        return PIECES
    cfg, enc, P = bilm.cfg, bilm.token_encoder, bilm.cfg.projection_dim
    for name in ("forward_rnn", "backward_rnn"):
        rnn = getattr(bilm, name)
        if rnn.cell != "lstm":
            return (
                f"its {name.split('_')[0]} stack is a {rnn.cell.upper()}; bilm-tf's files hold LSTM cells with a "
                f"projection (LSTMP) only"
            )
        if rnn.proj_size != P or not all(layer.bias for layer in rnn.layers):
            return "its LSTMs have no projection (or no bias); bilm-tf's files hold LSTMP cells with biases only"
    if enc.word_embedding is not None or cfg.word_vocab:
        return (
            "its token encoder has a word embedding beside the characters (ELMoForManyLangs); bilm-tf's files hold "
            "a character CNN only"
        )
    if cfg.characters != "elmo-bytes":
        return (
            "its characters are code points from an ELMoForManyLangs lexicon (char.dic), not UTF-8 bytes; "
            "bilm-tf's and AllenNLP's tools would read other character ids"
        )
    if cfg.num_chars != FILE_CHARS + 1:
        return (
            f"its character table has {cfg.num_chars} rows; bilm-tf's byte ids need {FILE_CHARS + 1} (the file's "
            f"{FILE_CHARS} and the padding row every reader adds)"
        )
    F = enc.num_filters
    if F < P:
        return (
            f"its filters give {F} features, fewer than the projection's {P}; bilm-tf projects the filters only "
            f"down (it asserts n_filters > projection_dim)"
        )
    if F == P and not _is_identity(enc.projection):
        return (
            f"its filters give {F} features, as many as the projection's, and the projection is not the identity; "
            f"bilm-tf has no projection at that width (AllenNLP reads one), so no file reads the same in both"
        )
    kind = getattr(cfg, "softmax", "none")
    if kind not in SOFTMAXES:
        return f"its softmax is {kind!r}, not one of {SOFTMAXES}; written by a newer elmokit?"
    return None


def _is_identity(linear: torch.nn.Linear) -> bool:
    w = linear.weight.detach()
    b = linear.bias.detach() if linear.bias is not None else torch.zeros(w.shape[0])
    return w.shape[0] == w.shape[1] and torch.equal(w, torch.eye(w.shape[0], dtype=w.dtype)) and not b.any()


def _number(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)


def export_options(bilm: CharBiLM) -> dict:
    """bilm-tf's ``options.json`` of ``bilm`` (a clip of 0 is written ``null``: bilm-tf clips at any number)."""
    cfg = bilm.cfg
    options = {
        "lstm": {
            "use_skip_connections": bool(cfg.skip_connections),
            "projection_dim": cfg.projection_dim,
            "cell_clip": _number(cfg.cell_clip) if cfg.cell_clip else None,
            "proj_clip": _number(cfg.proj_clip) if cfg.proj_clip else None,
            "dim": cfg.cells,
            "n_layers": cfg.num_layers,
        },
        "char_cnn": {
            "activation": cfg.activation,
            "n_characters": FILE_CHARS + 1,
            "filters": [list(f) for f in cfg.filters],
            "n_highway": cfg.num_highway,
            "embedding": {"dim": cfg.char_dim},
            "max_characters_per_token": cfg.max_chars,
        },
    }
    heads = softmax_heads(bilm)
    if heads:
        options["n_tokens_vocab"] = int(heads[0][1].weight.shape[0])
    return options


def softmax_heads(bilm: CharBiLM) -> list[tuple[str, torch.nn.Linear]]:
    """The softmaxes to write: ``[("softmax", forward)]``, and ``("softmax_backward", backward)`` for a biLM with
    one per direction; ``[]`` without."""
    kind = getattr(bilm.cfg, "softmax", "none")
    if kind == "none":
        return []
    heads = [("softmax", bilm.softmax_forward)]
    if kind == "per-direction":
        heads.append(("softmax_backward", bilm.softmax_backward))
    return heads


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


def export_datasets(bilm: CharBiLM) -> Iterator[tuple[str, np.ndarray]]:
    """``bilm``'s weights as bilm-tf's datasets, one at a time: ``(name, float32 array)`` (see the module docstring)."""
    enc, cfg = bilm.token_encoder, bilm.cfg
    yield "char_embed", _np(enc.char_embedding.weight[1:])  # (261, d): row 0 pads, every reader adds it back
    for i, conv in enumerate(enc.convolutions):
        yield f"CNN/W_cnn_{i}", _np(conv.weight.permute(2, 1, 0).unsqueeze(0))  # (count, d, w) -> (1, w, d, count)
        yield f"CNN/b_cnn_{i}", _np(conv.bias)
    F = enc.num_filters
    for k, layer in enumerate(enc.highways):
        w, b = layer.weight, layer.bias  # (2F, F): [transform; -carry], (2F,)
        g = f"CNN_high_{k}"
        yield f"{g}/W_transform", _np(w[:F].t())
        yield f"{g}/W_carry", _np(-w[F:].t())
        yield f"{g}/b_transform", _np(b[:F])
        yield f"{g}/b_carry", _np(-b[F:])
    yield "CNN_proj/W_proj", _np(enc.projection.weight.t())  # (F, P)
    yield "CNN_proj/b_proj", _np(enc.projection.bias)
    H, P = cfg.cells, cfg.projection_dim
    for direction, rnn in enumerate((bilm.forward_rnn, bilm.backward_rnn)):
        for k, layer in enumerate(rnn.layers):
            g = f"RNN_{direction}/RNN/MultiRNNCell/Cell{k}/LSTMCell"
            w_ih, w_hh = _np(layer.weight_ih_l0), _np(layer.weight_hh_l0)  # (4H, P) each, gates i, f, g, o
            # TensorFlow's LSTMCell adds forget_bias=1 to f inside the cell: taken from bias_hh first, so that a
            # bias_hh holding just that 1 (and a bias_ih holding bilm-tf's B) gives B back bit for bit
            hh = _np(layer.bias_hh_l0).astype(np.float64)
            hh[H : 2 * H] -= 1.0  # PyTorch's gates i, f, g, o: f is the second block
            bias = _np(layer.bias_ih_l0).astype(np.float64) + hh
            w0 = np.empty((2 * P, 4 * H), dtype=np.float32)  # rows [input; h_prev], columns gates i, j, f, o
            b0 = np.empty(4 * H, dtype=np.float32)
            for src, dst in enumerate(TF_GATE_OF):  # PyTorch's gate src is TensorFlow's block dst
                w0[:P, dst * H : (dst + 1) * H] = w_ih[src * H : (src + 1) * H].T
                w0[P:, dst * H : (dst + 1) * H] = w_hh[src * H : (src + 1) * H].T
                b0[dst * H : (dst + 1) * H] = bias[src * H : (src + 1) * H]
            yield f"{g}/W_0", w0
            yield f"{g}/B", b0
            yield f"{g}/W_P_0", _np(layer.weight_hr_l0.t())  # (P, H) -> (H, P)
    for name, head in softmax_heads(bilm):
        yield f"{name}/W", _np(head.weight)  # (V, D), as bilm-tf's softmax/W
        yield f"{name}/b", _np(head.bias) if head.bias is not None else np.zeros(head.weight.shape[0], np.float32)


def vocab_words(bilm: CharBiLM, where: str) -> list[str] | None:
    """The biLM's word vocabulary in id order (``None`` when it has none).

    Raises:
        CheckpointError: words bilm-tf's vocabulary file cannot hold (a line end, whitespace at an end), a missing
            ``<S>``/``</S>``/``<UNK>``, or a count that differs from the softmax's rows.
    """
    words = getattr(bilm, "words", None)
    if not words:
        words = None
    elif isinstance(words, Mapping):
        words = [w for w, _ in sorted(words.items(), key=lambda kv: kv[1])]
    else:
        words = list(words)
    heads = softmax_heads(bilm)
    rows = int(heads[0][1].weight.shape[0]) if heads else None
    if rows is not None and (words is None or len(words) != rows):
        raise CheckpointError(
            f"{where}: the softmax has {rows} rows but the biLM holds {len(words or [])} words; the bundle is "
            f"corrupt: bundle or import it again"
        )
    if words is None:
        return None
    # bilm-tf's Vocabulary reads a line as line.strip(): a word with a line end, or whitespace at an end, reads back
    # as another word
    bad = next((w for w in words if not isinstance(w, str) or "\n" in w or "\r" in w or w != w.strip()), None)
    missing = [s for s in VOCAB_SPECIALS if s not in set(words)]
    if bad is not None or missing:
        what = f"the word {bad!r:.40}, which a line cannot hold" if bad is not None else f"no {missing[0]}"
        raise CheckpointError(f"{where}: its vocabulary has {what}; bilm-tf's vocabulary file cannot hold it")
    return words


def _notes(bilm: CharBiLM, words: list[str] | None) -> list[str]:
    cfg, notes = bilm.cfg, []
    if not cfg.skip_connections:
        notes.append(
            "no skip connections (use_skip_connections false): bilm-tf and simple_elmo read it, AllenNLP's Elmo "
            "refuses it"
        )
    if cfg.max_chars != ALLENNLP_CHARS:
        notes.append(
            f"{cfg.max_chars} characters per word: AllenNLP's batch_to_ids makes {ALLENNLP_CHARS}; use bilm-tf's "
            f"Batcher"
        )
    if cfg.num_layers > BILM_TF_LAYERS:
        notes.append(f"{cfg.num_layers} LSTM layers: bilm-tf's reader maps {BILM_TF_LAYERS} at most")
    if words is None:
        notes.append(
            "no word vocabulary: vocab.txt holds only <S>, </S>, <UNK> (enough for bilm-tf's Batcher and "
            "simple_elmo, which read each word's characters)"
        )
    if getattr(cfg, "softmax", "none") == "per-direction":
        notes.append(
            "one softmax per direction: the forward one is softmax/W, softmax/b (what bilm-tf reads); the "
            "backward one is softmax_backward/W, /b, which bilm-tf and AllenNLP ignore"
        )
    return notes


def _is_export(d: Path) -> bool:
    """Whether directory ``d`` holds an earlier export (its ``d/elmokit.json`` says so) or nothing at all."""
    if not any(d.iterdir()):
        return True
    try:
        made = json.loads((d / "elmokit.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(made, dict) and made.get("format") == EXPORT_FORMAT


def check_out(out: Path, source: Path, overwrite: bool) -> None:
    """Refuse an ``out`` the export must not write: a dangling or any symbolic link, a path equal to, inside or
    holding the source bundle, an existing path without ``overwrite``, and, even with it, anything but an earlier
    export (or an empty directory). What a killed export of ``out`` left beside it is put right first.

    Raises:
        CheckpointError: naming ``out`` and what to do.
    """
    check_out_dir(out, [source], overwrite, "export", _is_export, "an earlier export-elmo output")


def _flush(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _verify(tmp: Path, bilm: CharBiLM, words: list[str] | None, where: str) -> None:
    """Read the written files back (the importer's own reader) and compare them with ``bilm``.

    Raises:
        CheckpointError: a value that does not read back (a bug, or a disk that changed the bytes).
    """
    import h5py

    def differs(what: str) -> CheckpointError:
        return CheckpointError(
            f"{where}: the written files do not read back as the biLM ({what}); nothing was written: export again, "
            f"and report it if it happens twice"
        )

    cfg = options_config(tmp / "options.json")
    shape = ("max_chars", "num_chars", "char_dim", "filters", "num_highway", "activation", "projection_dim", "cells")
    for key in (*shape, "num_layers", "cell_clip", "proj_clip", "skip_connections"):
        if getattr(cfg, key) != getattr(bilm.cfg, key):
            raise differs(f"options: {key}")
    state = bilm_tf_state(tmp / "weights.hdf5", cfg)
    own = bilm.state_dict()
    for key, value in state.items():
        mine = own[key].float()
        if key.endswith("bias_hh_l0"):
            continue
        if key.endswith("bias_ih_l0"):  # one bias in the file: the sums, less what (b + 1) - 1 rounds off
            value = value + state[key.replace("_ih_", "_hh_")]
            mine = mine + own[key.replace("_ih_", "_hh_")].float()
            if not torch.allclose(value, mine, rtol=TOLERANCE, atol=TOLERANCE):
                raise differs(f"{key}: off by {float((value - mine).abs().max()):.3g}")
            continue
        if key == "token_encoder.char_embedding.weight":
            value, mine = value[1:], mine[1:]  # row 0 pads: zeros in every reader
        if not torch.equal(value, mine):  # transposes, gate order, negation: exact
            raise differs(f"{key}: off by {float((value - mine).abs().max()):.3g}")
    with h5py.File(tmp / "weights.hdf5", "r") as f:
        for name, head in softmax_heads(bilm):
            for part, tensor in (("W", head.weight), ("b", head.bias)):
                if tensor is not None and not np.array_equal(f[f"{name}/{part}"][()], _np(tensor)):
                    raise differs(f"{name}/{part}")
    lines = (tmp / "vocab.txt").read_bytes().decode("utf-8").split("\n")[:-1]
    if lines != (words if words is not None else list(VOCAB_SPECIALS)):
        raise differs("vocab.txt")


def write_export(bilm, out: Path, source: dict, where: str | None = None) -> Exported:
    """Write ``bilm`` in bilm-tf's files at ``out`` (``out`` already checked: :func:`check_out`).

    Args:
        bilm: the loaded biLM.
        out: the directory to write.
        source: what it came from (``path``, ``sha256``), recorded in ``out/elmokit.json``.
        where: the biLM's path as the user gave it, for errors (``source["path"]`` by default).

    Raises:
        CheckpointError: a biLM the format cannot hold (the reason), a vocabulary that does not fit, a full disk.
    """
    import h5py

    where = where or source["path"]
    reason = refusal(bilm)
    if reason:
        raise CheckpointError(f"{where}: {reason}")
    words = vocab_words(bilm, where)
    notes = _notes(bilm, words)
    tmp = atomic_dir(out)
    try:
        with removed_on_disk_error(tmp, out, "", "free some space and export again"):
            _write_text(tmp / "options.json", json.dumps(export_options(bilm), indent=2) + "\n")
            with h5py.File(tmp / "weights.hdf5", "w") as f:
                for name, array in export_datasets(bilm):
                    f.create_dataset(name, data=array)  # float32, contiguous, no filter: as dump_weights writes
            _flush(tmp / "weights.hdf5")
            _write_text(tmp / "vocab.txt", "".join(f"{w}\n" for w in (words or VOCAB_SPECIALS)))
            _verify(tmp, bilm, words, where)
            made = {
                "format": EXPORT_FORMAT,
                "source": source,
                "files": {n: sha256_file(tmp / n) for n in FILES},
                "softmax": getattr(bilm.cfg, "softmax", "none"),
                "words": len(words) if words is not None else 0,
                "notes": notes,
                "versions": versions(),
            }
            _write_text(tmp / "elmokit.json", json.dumps(made, indent=2, ensure_ascii=False) + "\n")
            fsync_dir(tmp)
    except BaseException:  # a refused read-back, a full disk, an interrupt: nothing is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    commit_dir(tmp, out)
    fsync_dir(out.parent)
    return Exported(out, len(words or VOCAB_SPECIALS), made["softmax"], notes)


def export_elmo(bilm: str | Path, out: str | Path, overwrite: bool = False) -> Exported:
    """Write the character biLM bundle ``bilm`` as bilm-tf's ``options.json``, ``weights.hdf5`` and ``vocab.txt`` in
    the directory ``out`` (``overwrite``: replace an earlier export there; see :func:`check_out`).

    Raises:
        CheckpointError: see :func:`write_export`; an ``out`` it must not write; a bundle that does not load.
    """
    path, out = Path(bilm), Path(out)
    check_out(out, path, overwrite)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None  # load_bilm says what is wrong
    if isinstance(manifest, dict) and manifest.get("format") == BUNDLE_FORMAT:  # refused before its LMs are loaded
        raise CheckpointError(f"{path}: {PIECES}")
    model = load_bilm(path)
    source = {"path": str(path.resolve()), "format": (manifest or {}).get("format"), "sha256": model.sha256}
    return write_export(model, out, source, str(path))
