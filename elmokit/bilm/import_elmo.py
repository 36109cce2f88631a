"""``elmokit import-elmo``: the published ELMo models as elmokit character-biLM bundles.

Sources:

- bilm-tf / AllenNLP: ``options.json`` + ``weights.hdf5`` (the English ELMo of Peters et al. and its smaller
  siblings), with bilm-tf's word vocabulary where given (``--vocab``). TensorFlow's LSTM cell is converted to
  PyTorch's: ``W_0`` rows are ``[input; h_prev]``, its gates ``i, j, f, o`` become ``i, f, g, o``, and TensorFlow's
  forget bias of 1 becomes ``f``'s part of ``bias_hh`` (``B`` itself is ``bias_ih``); the highways' carry weights
  are negated (:mod:`elmokit.modules.char_cnn` says why); ``char_embed`` gets a zero row in front (id 0 pads
  missing words).
- ELMoForManyLangs: a model directory (``config.json`` naming the model JSON, ``char.dic``, ``word.dic``,
  ``token_embedder.pkl``, ``encoder.pkl``); its state dicts are already in PyTorch's gate order and are read with
  ``torch.load(weights_only=True)`` (nothing is unpickled).
- A zip archive as published (:func:`import_archive`), or one unpacked (:func:`import_directory`), of either
  layout below; members are read straight from the archive (:class:`Archive`).

What the archives hold (found in the public sources named; layouts checked at import, one line when one lacks a
file):

- The NLPL vector repository's ELMo archives (``vectors.nlpl.eu/repository/20/ID.zip``): ``model.hdf5`` (bilm-tf's
  weights), ``options.json``, ``vocab.txt`` or ``vocab.txt.gz`` (bilm-tf's word vocabulary: one token a line, the
  line number its id; ``<S>``, ``</S>``, ``<UNK>`` among them) and NLPL's ``meta.json`` (corpus, algorithm, id), at
  the archive's top. simple_elmo's ``ElmoModel.load`` (ltgoslo/simple_elmo ``simple_elmo/elmo_helpers.py``) reads
  exactly these members with ``zipfile`` (``vocab.txt``, ``options.json``, ``model.hdf5``; a directory's
  ``vocab.txt.gz`` first, else ``vocab.txt``, else none; ``model.hdf5``, else the first ``*.hdf5``); its README
  calls the vocabulary optional (a word cache), and simple_elmo issues #6 and #9 are archives without one, which
  are imported here without a vocabulary. Some archives hold a TensorFlow checkpoint (``model.ckpt-*``,
  ``checkpoint``) instead of ``model.hdf5`` (akutuzov/webvectors issue #60: archive 212), what simple_elmo's
  ``load(..., full=True)`` needs for its language-model predictions; without TensorFlow it cannot be read here, and
  such an archive is refused with the way out (bilm-tf's ``bin/dump_weights.py``).
- The softmax: bilm-tf trains one, shared by the two directions (``training.py``: "the output softmax variables --
  they are shared if bidirectional"), ``lm/softmax/W`` ``(n_tokens_vocab, projection_dim)`` and ``lm/softmax/b``
  ``(n_tokens_vocab,)``; its ``dump_weights`` writes every trainable variable into the HDF5 file under its name less
  ``lm/`` except those named ``softmax`` ("don't dump these"), so the published ``model.hdf5`` / ``weights.hdf5``
  files hold no softmax. A file that does (``softmax/W``, ``softmax/b``: what a dump keeping them writes, and what
  elmokit's ``export-elmo`` writes) keeps it here, with the vocabulary naming its rows (``model.softmax`` "shared");
  a softmax without a vocabulary is left out, and said.
- ELMoForManyLangs' archives (NLPL repository ids 136-179, listed in HIT-SCIR/ELMoForManyLangs' README; simple_elmo
  issue #2: "config.json, meta.json, word.dic, char.dic, encoder.pkl, token_embedder.pkl"), possibly inside one
  folder (its own ``zhs.model``). Their ``config.json`` names the model JSON ``cnn_50_100_512_4096_sample.json`` by a
  path that is not in the archive (``../configs/...`` or its author's home: ELMoForManyLangs issues #27, #55):
  found in the archive by its name where it is there, else, for that name, the copy of ELMoForManyLangs'
  ``configs/`` file built in here (as ELMoForManyLangs itself falls back to it since its pull request #86); the
  weights' shapes are checked against it either way. A trained ``classifier.pkl`` (ELMoForManyLangs' softmax, saved
  only with ``--save_classify_layer``; not in the published archives) is not read.

Whatever the format does not allow is refused with the file and key (or line), before anything is written: unknown
options, values of the wrong type or sign, lexicons that are not UTF-8 ``token<TAB>id`` lines, state dicts that are
not tensors, missing or misshapen weights, links inside the HDF5 file; for an archive, also members that leave it,
repeat, are links or encrypted, or unpack to far more than they pack (a zip bomb). ``--out`` must not be, be inside
or hold a source, nor be a symbolic link; an existing one is replaced only with ``overwrite`` and only if it is a
biLM bundle. HDF5 has no checksums: bytes flipped inside a weights file import silently; the bundle records each
source file's sha256 (and an archive's), to compare with the published one.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from elmokit.bilm.bundle import BUNDLE_FORMAT
from elmokit.bilm.charbilm import CHAR_BUNDLE_FORMAT, VOCAB_SPECIALS, CharBiLMConfig, write_char_bundle
from elmokit.core.errors import CheckpointError
from elmokit.core.files import check_out_dir, safe_load
from elmokit.core.textfile import sha256_file
from elmokit.modules.char_cnn import ACTIVATIONS
from elmokit.modules.characters import LEXICON_SPECIALS, WORD_SPECIALS, read_dic

LSTM_KEYS = {"dim", "projection_dim", "n_layers", "cell_clip", "proj_clip", "use_skip_connections"}
CNN_KEYS = {"embedding", "filters", "n_highway", "activation", "max_characters_per_token", "n_characters"}
# what bilm-tf's training writes beside the model's shape; none of it changes the biLM's vectors
TRAINING_KEYS = {
    "bidirectional",
    "dropout",
    "all_clip_norm_val",
    "n_epochs",
    "n_train_tokens",
    "batch_size",
    "n_tokens_vocab",
    "unroll_steps",
    "n_negative_samples_batch",
    "share_embedding_softmax",
}
FIX = "; correct the file (or use the one published with the model)"
# what a trained model never holds; HDF5 and pickles have no checksums, so this catches some damaged bytes, not all
CORRUPT = "the file is corrupt: download it again and compare its sha256 with the published one"
FILE_CHARS = 261  # rows of bilm-tf's char_embed (ids 0..260); elmokit's table has one more (0 pads)


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; pass {what}")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not JSON ({e}); pass {what}") from None
    if not isinstance(d, dict):
        raise CheckpointError(f"{path}: expected a JSON object; pass {what}")
    return d


def _need(d: dict, key: str, where: str, kind: type | tuple = int):
    if key not in d:
        raise CheckpointError(f"{where}: missing key {key!r}{FIX}")
    v = d[key]
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        name = {dict: "an object", list: "a list", str: "a string"}.get(kind, getattr(kind, "__name__", kind))
        raise CheckpointError(f"{where}: {key!r} must be {name}, got {v!r:.80}{FIX}")
    return v


def _int(d: dict, key: str, where: str, least: int = 1, default: int | None = None) -> int:
    """``d[key]``, an integer ``>= least`` (``default`` when absent, if given)."""
    if key not in d and default is not None:
        return default
    v = _need(d, key, where, int)
    if v < least:
        raise CheckpointError(f"{where}: {key!r} must be an integer >= {least}, got {v!r}{FIX}")
    return v


def _clip(d: dict, key: str, where: str) -> float:
    """A clip: a number >= 0 (absent, null or 0: no clipping)."""
    v = d.get(key)
    if v is None:
        return 0.0
    if (
        isinstance(v, bool)
        or not isinstance(v, (int, float))
        or (isinstance(v, float) and not math.isfinite(v))
        or v < 0
    ):
        raise CheckpointError(f"{where}: {key!r} must be a number >= 0 (0 or null: no clipping), got {v!r:.80}{FIX}")
    return float(v)


def _filters(v, where: str, max_chars: int) -> list[list[int]]:
    if not (
        isinstance(v, list)
        and v
        and all(
            isinstance(f, list)
            and len(f) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in f)
            for f in v
        )
    ):
        raise CheckpointError(
            f"{where}: 'filters' must be a list of [width, count] pairs of positive ints, got {v!r:.80}{FIX}"
        )
    if max(f[0] for f in v) > max_chars:
        raise CheckpointError(
            f"{where}: 'filters' has one wider than 'max_characters_per_token' ({max_chars}); a word's ids are "
            f"that many, so no filter can be wider"
        )
    return [list(f) for f in v]


def options_config(path: Path) -> CharBiLMConfig:
    """The :class:`~elmokit.bilm.charbilm.CharBiLMConfig` of a bilm-tf ``options.json``.

    Raises:
        CheckpointError: an unknown key, a missing or mistyped one, or a model this format cannot hold.
    """
    o = _read_json(path, "bilm-tf's options.json")
    unknown = sorted(set(o) - {"lstm", "char_cnn"} - TRAINING_KEYS)
    if unknown:
        raise CheckpointError(
            f"{path}: unknown key(s) {', '.join(unknown)}; elmokit reads bilm-tf's lstm and char_cnn options"
        )
    if o.get("bidirectional") is False:
        raise CheckpointError(f"{path}: bidirectional is false; ELMo needs both directions")
    if "char_cnn" not in o:
        raise CheckpointError(
            f"{path}: no char_cnn options; word-embedding ELMo models are not supported (only the "
            f"character-CNN ones that were published)"
        )
    lstm, cnn = _need(o, "lstm", str(path), dict), _need(o, "char_cnn", str(path), dict)
    for section, d, known in (("lstm", lstm, LSTM_KEYS), ("char_cnn", cnn, CNN_KEYS)):
        bad = sorted(map(str, set(d) - known))
        if bad:
            raise CheckpointError(
                f"{path}: unknown {section} key(s) {', '.join(bad)}; known: {', '.join(sorted(known))}"
            )
    w = f"{path}: char_cnn"
    activation = cnn.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"{w}: activation must be one of {ACTIVATIONS}, got {activation!r:.80}")
    n_chars = cnn.get("n_characters", 262)
    if isinstance(n_chars, bool) or n_chars not in (261, 262):
        raise CheckpointError(f"{w}: 'n_characters' must be 261 or 262 (bilm-tf's byte ids), got {n_chars!r:.80}")
    max_chars = _int(cnn, "max_characters_per_token", w, least=3)
    filters = _filters(_need(cnn, "filters", w, list), w, max_chars)
    wl = f"{path}: lstm"
    skip = lstm.get("use_skip_connections", False)
    if not isinstance(skip, bool):
        raise CheckpointError(f"{wl}: 'use_skip_connections' must be true or false, got {skip!r:.80}")
    return CharBiLMConfig(
        characters="elmo-bytes",
        max_chars=max_chars,
        num_chars=FILE_CHARS + 1,
        char_dim=_int(_need(cnn, "embedding", w, dict), "dim", f"{w}.embedding"),
        filters=filters,
        num_highway=_int(cnn, "n_highway", w, least=0, default=0),
        activation=activation,
        projection_dim=_int(lstm, "projection_dim", wl),
        cells=_int(lstm, "dim", wl),
        num_layers=_int(lstm, "n_layers", wl),
        cell_clip=_clip(lstm, "cell_clip", wl),
        proj_clip=_clip(lstm, "proj_clip", wl),
        skip_connections=skip,
    )


TF_GATE_OF = (0, 2, 1, 3)  # PyTorch's gates i, f, g, o are TensorFlow's blocks i (0), f (2), j (1), o (3)


SAME_MODEL = "are the options and weights from the same model?"


def _open_hdf5(weights: Path):
    import h5py

    try:
        return h5py.File(weights, "r")
    except OSError as e:
        raise CheckpointError(f"{weights}: cannot read as HDF5 ({e}); pass bilm-tf's weights.hdf5") from None


def _dataset(f, weights: Path, name: str, shape: tuple):
    """The dataset ``name`` of the open HDF5 file ``f``: reached by the file's own (hard) links only, numbers, of
    ``shape`` (``None`` for a length any value may take, but not 0)."""
    import h5py

    node, path = f, ""
    for part in name.split("/"):
        if not isinstance(node, h5py.Group):
            raise CheckpointError(f"{weights}: {path} is a dataset, not a group holding {name}; {SAME_MODEL}")
        path = f"{path}/{part}" if path else part
        link = node.get(part, getlink=True)
        if link is None:
            raise CheckpointError(f"{weights}: no dataset {name}; is this the weights file of these options?")
        if not isinstance(link, h5py.HardLink):
            raise CheckpointError(
                f"{weights}: {path} is {'a soft' if isinstance(link, h5py.SoftLink) else 'an external'} link; "
                f"elmokit reads only datasets stored in the file itself (bilm-tf's files have no links)"
            )
        try:
            node = node[part]
        except (KeyError, OSError, ValueError) as e:
            raise CheckpointError(f"{weights}: cannot open {path} ({e}); the file is corrupt") from None
    if not isinstance(node, h5py.Dataset):
        raise CheckpointError(f"{weights}: {name} is a group, not a dataset of weights; {SAME_MODEL}")
    if node.dtype.kind not in "fiu":
        raise CheckpointError(
            f"{weights}: {name} holds {node.dtype} values, not numbers; is this bilm-tf's weights file?"
        )
    fits = len(node.shape) == len(shape) and all(
        (want is None and got > 0) or got == want for got, want in zip(node.shape, shape)
    )
    if not fits:
        want = tuple("V" if w is None else w for w in shape)
        raise CheckpointError(f"{weights}: {name} has shape {node.shape}, the options make it {want}; {SAME_MODEL}")
    return node


def _read(weights: Path, name: str, node, cols: slice = slice(None)) -> np.ndarray:
    try:
        a = np.asarray(node[:, cols] if cols != slice(None) else node[()], dtype=np.float32)
    except (OSError, ValueError, TypeError) as e:  # a damaged chunk, a filter HDF5 cannot undo
        raise CheckpointError(f"{weights}: cannot read {name} ({e}); the file is corrupt") from None
    if not np.isfinite(a).all():
        raise CheckpointError(f"{weights}: {name} holds NaN or infinite values; {CORRUPT}")
    return a


def bilm_tf_softmax(weights: Path, cfg: CharBiLMConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """bilm-tf's softmax, where the weights file holds it: ``softmax/W`` ``(V, D)`` and ``softmax/b`` ``(V,)``, the
    names bilm-tf's ``dump_weights`` would give the variables ``lm/softmax/W`` and ``lm/softmax/b`` that its
    training shares between the two directions (``dump_weights`` itself skips them: see the module docstring).

    Returns:
        ``(W, b)``, or ``None`` where the file has no ``softmax`` group.

    Raises:
        CheckpointError: one of the two without the other, or either misshapen.
    """
    with _open_hdf5(weights) as f:
        if f.get("softmax", getlink=True) is None:
            return None
        P = cfg.projection_dim
        w_node = _dataset(f, weights, "softmax/W", (None, P))
        b_node = _dataset(f, weights, "softmax/b", (w_node.shape[0],))
        return _read(weights, "softmax/W", w_node), _read(weights, "softmax/b", b_node)


def bilm_tf_state(weights: Path, cfg: CharBiLMConfig) -> dict[str, torch.Tensor]:
    """Read a bilm-tf ``weights.hdf5`` into a :class:`~elmokit.bilm.charbilm.CharBiLM` state dict, one dataset at a
    time (peak memory: the weights plus one dataset; W_0 is read one gate at a time). The softmax, where the file
    holds one, is :func:`bilm_tf_softmax`'s.

    Raises:
        CheckpointError: a file that is not HDF5, or a dataset that is missing or has the wrong shape.
    """
    f = _open_hdf5(weights)
    F = sum(n for _, n in cfg.filters)
    P, H, d = cfg.projection_dim, cfg.cells, cfg.char_dim

    def dataset(name: str, shape: tuple):
        return _dataset(f, weights, name, shape)

    def read(name: str, node, cols: slice = slice(None)) -> np.ndarray:
        return _read(weights, name, node, cols)

    def get(name: str, shape: tuple) -> np.ndarray:
        return read(name, dataset(name, shape))

    t = torch.from_numpy
    state: dict[str, torch.Tensor] = {}
    with f:
        rows = get("char_embed", (FILE_CHARS, d))  # read first: its shape bounds what is allocated
        emb = np.zeros((FILE_CHARS + 1, d), dtype=np.float32)
        emb[1:] = rows
        state["token_encoder.char_embedding.weight"] = t(emb)
        for i, (width, n) in enumerate(cfg.filters):
            w = get(f"CNN/W_cnn_{i}", (1, width, d, n))[0]  # (width, d, n)
            state[f"token_encoder.convolutions.{i}.weight"] = t(np.ascontiguousarray(w.transpose(2, 1, 0)))  # (n, d, w)
            state[f"token_encoder.convolutions.{i}.bias"] = t(get(f"CNN/b_cnn_{i}", (n,)))
        for k in range(cfg.num_highway):
            g = f"CNN_high_{k}"
            w = np.concatenate([get(f"{g}/W_transform", (F, F)).T, -get(f"{g}/W_carry", (F, F)).T])  # (2F, F)
            b = np.concatenate([get(f"{g}/b_transform", (F,)), -get(f"{g}/b_carry", (F,))])
            state[f"token_encoder.highways.{k}.weight"], state[f"token_encoder.highways.{k}.bias"] = t(w), t(b)
        if f.get("CNN_proj", getlink=True) is not None or F != P:
            w_proj, b_proj = get("CNN_proj/W_proj", (F, P)).T.copy(), get("CNN_proj/b_proj", (P,))
        else:  # bilm-tf has no projection when the filters are already projection_dim wide
            w_proj, b_proj = np.eye(P, dtype=np.float32), np.zeros(P, dtype=np.float32)
        state["token_encoder.projection.weight"], state["token_encoder.projection.bias"] = t(w_proj), t(b_proj)
        for direction, name in ((0, "forward_rnn"), (1, "backward_rnn")):
            for layer in range(cfg.num_layers):
                g = f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
                w0 = f"{g}/W_0"  # (2P, 4H): rows [input; h_prev], columns TensorFlow's gates i, j, f, o
                w0_data = dataset(w0, (2 * P, 4 * H))
                w_ih, w_hh = torch.empty(4 * H, P), torch.empty(4 * H, P)
                for dst, src in enumerate(TF_GATE_OF):  # one gate's columns at a time: no copy of all of W_0
                    block = read(w0, w0_data, slice(src * H, (src + 1) * H))  # (2P, H)
                    w_ih[dst * H : (dst + 1) * H] = t(block[:P].T)
                    w_hh[dst * H : (dst + 1) * H] = t(block[P:].T)
                b = get(f"{g}/B", (4 * H,))
                bias = np.concatenate([b[src * H : (src + 1) * H] for src in TF_GATE_OF])
                # TensorFlow's LSTMCell adds forget_bias=1 inside the cell: kept apart in bias_hh (the cell adds the
                # two biases, the same float32 sum as B + 1), so that export-elmo gives bilm-tf's B back bit for bit
                forget = torch.zeros(4 * H)
                forget[H : 2 * H] = 1.0
                pre = f"{name}.layers.{layer}."
                state[pre + "weight_ih_l0"], state[pre + "weight_hh_l0"] = w_ih, w_hh  # (4H, P) each
                state[pre + "bias_ih_l0"], state[pre + "bias_hh_l0"] = t(bias), forget
                state[pre + "weight_hr_l0"] = t(np.ascontiguousarray(get(f"{g}/W_P_0", (H, P)).T))  # (P, H)
    return state


def _is_bundle(d: Path) -> bool:
    """Whether directory ``d`` holds a biLM bundle (its manifest says so) or nothing at all."""
    if not any(d.iterdir()):
        return True
    try:
        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") in (CHAR_BUNDLE_FORMAT, BUNDLE_FORMAT)


def check_out(out: Path, sources: list[Path], overwrite: bool) -> None:
    """Refuse an ``out`` the import must not write: a dangling or any symbolic link, a path equal to, inside or
    holding a source (``--overwrite`` would delete it), an existing path without ``overwrite``, and, even with it,
    anything but a biLM bundle (or an empty directory). What a killed import of ``out`` left beside it is put right
    first (:func:`~elmokit.core.files.recover_dir`).

    Raises:
        CheckpointError: naming ``out`` and what to do.
    """
    check_out_dir(out, sources, overwrite, "import", _is_bundle, "a biLM bundle")


VOCAB_CAP = 512 << 20  # bytes of a vocabulary, unpacked (bilm-tf's English one: 793,471 words, 6.7 MB)


def read_vocab(data: bytes, where: str) -> list[str]:
    """bilm-tf's word vocabulary from a file's bytes, read as its ``Vocabulary`` reads it: UTF-8, one token per line
    (``\\n``, ``\\r\\n`` or ``\\r``), each stripped of surrounding whitespace, ``!!!MAXTERMID`` skipped; the id of a
    token is its place among the rest. ``where`` names the file in errors.

    Raises:
        CheckpointError: bytes that are not UTF-8 (naming the line).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CheckpointError(
            f"{where}:{line}: not UTF-8 (byte {data[e.start]:#04x}); bilm-tf's vocabulary is UTF-8, one token a line"
        ) from None
    return [w for w in (line.strip() for line in io.StringIO(text, newline=None)) if w != "!!!MAXTERMID"]


def gunzip(data: bytes, where: str, cap: int = VOCAB_CAP) -> bytes:
    """The bytes a gzip file unpacks to, refusing more than ``cap`` (a gzip bomb) and a damaged file.

    Raises:
        CheckpointError: naming ``where``.
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
            out = g.read(cap + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise CheckpointError(f"{where}: cannot unpack ({e}); {CORRUPT}") from None
    if len(out) > cap:
        raise CheckpointError(
            f"{where}: unpacks to more than {cap >> 20} MiB; no word vocabulary is that large (a gzip bomb?)"
        )
    return out


def read_vocab_file(path: Path) -> list[str]:
    """:func:`read_vocab` of a file (``.gz``: gzip-compressed)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; pass bilm-tf's vocabulary (vocab.txt, one token a line)")
    if path.stat().st_size > VOCAB_CAP:
        raise CheckpointError(f"{path}: over {VOCAB_CAP >> 20} MiB; no word vocabulary is that large")
    data = path.read_bytes()
    return read_vocab(gunzip(data, str(path)) if path.name.endswith(".gz") else data, str(path))


def _write_bilm_tf(
    options: Path, weights: Path, vocab: list[str] | None, vocab_where: str, out: Path, source: dict
) -> Path:
    """The bundle of bilm-tf's files: the options, the weights (with their softmax, where they hold one) and the
    vocabulary (when there is one). A softmax without a vocabulary cannot name its rows and is left out; a vocabulary
    without ``<S>``, ``</S>`` or ``<UNK>`` beside no softmax is only a word list (simple_elmo caches such words) and is
    left out too: both are said in the manifest's ``source.notes``.

    Raises:
        CheckpointError: a softmax whose rows are not the vocabulary's words, or a vocabulary with a softmax that
            lacks bilm-tf's special tokens.
    """
    cfg = options_config(options)
    state = bilm_tf_state(weights, cfg)
    softmax = bilm_tf_softmax(weights, cfg)
    notes: list[str] = []
    if vocab is not None:
        missing = [t for t in VOCAB_SPECIALS if t not in set(vocab)]
        if missing and softmax is not None:
            raise CheckpointError(
                f"{vocab_where}: has no {', '.join(missing)}; the softmax's vocabulary (bilm-tf's) holds "
                f"{', '.join(VOCAB_SPECIALS)}: is this the model's vocab.txt?"
            )
        if missing:
            notes.append(
                f"{vocab_where} has no {', '.join(missing)}: not kept (a list of words, not bilm-tf's vocabulary)"
            )
            vocab = None
    if softmax is not None:
        W, b = softmax
        if vocab is None:
            notes.append(
                f"{weights} holds a softmax of {W.shape[0]} rows but no vocabulary names them: the softmax is not kept "
                f"(import again with the model's vocab.txt)"
            )
        elif len(vocab) != W.shape[0]:
            raise CheckpointError(
                f"{vocab_where}: {len(vocab)} words, but softmax/W of {weights} has {W.shape[0]} rows; are the "
                f"vocabulary and the weights from the same model?"
            )
        else:
            cfg.vocab_size, cfg.softmax = W.shape[0], "shared"  # bilm-tf trains one softmax for both directions
            state["softmax_forward.weight"], state["softmax_forward.bias"] = torch.from_numpy(W), torch.from_numpy(b)
    if notes:
        source["notes"] = notes
    return write_char_bundle(out, cfg, state, source, str(weights), vocab=vocab)


def import_bilm_tf(
    options: str | Path,
    weights: str | Path,
    out: str | Path,
    overwrite: bool = False,
    vocab: str | Path | None = None,
) -> Path:
    """Write a character-biLM bundle from bilm-tf's ``options.json`` and ``weights.hdf5`` (``overwrite``: replace a
    bundle already at ``out``; see :func:`check_out`), with bilm-tf's word vocabulary ``vocab`` (``vocab.txt``, or
    ``.gz``) where given: kept in the bundle, and naming the rows of the softmax where the weights hold one."""
    options, weights, out = Path(options), Path(weights), Path(out)
    vocab = Path(vocab) if vocab is not None else None
    check_out(out, [options, weights] + ([vocab] if vocab else []), overwrite)
    if not weights.is_file():
        options_config(options)  # a bad options file is named first
        raise CheckpointError(f"{weights}: no such file; pass bilm-tf's weights.hdf5")
    words = read_vocab_file(vocab) if vocab is not None else None
    files = [options, weights] + ([vocab] if vocab else [])
    source = {"kind": "bilm-tf", "files": {str(p): sha256_file(p) for p in files}}
    return _write_bilm_tf(options, weights, words, str(vocab), out, source)


def manylangs_config(model_dir: Path) -> tuple[CharBiLMConfig, Path]:
    """The shape of an ELMoForManyLangs model directory, and its model JSON's path."""
    top = _read_json(model_dir / "config.json", "an ELMoForManyLangs model directory")
    rel = _need(top, "config_path", str(model_dir / "config.json"), str)
    path = model_dir / rel if (model_dir / rel).is_file() else model_dir / Path(rel).name
    if not path.is_file():  # the published models name ELMoForManyLangs' own configs/ folder
        raise CheckpointError(
            f"{model_dir / 'config.json'}: config_path {rel!r} is not found beside it; copy "
            f"{Path(rel).name} (ELMoForManyLangs' configs/ folder) into {model_dir}"
        )
    c = _read_json(path, f"the model JSON that {model_dir / 'config.json'} names")
    tok = _need(c, "token_embedder", str(path), dict)
    enc = _need(c, "encoder", str(path), dict)
    wt, we = f"{path}: token_embedder", f"{path}: encoder"
    for what, d, want in ((wt, tok, "cnn"), (we, enc, "elmo")):
        name = d.get("name", want)
        if not isinstance(name, str) or name.lower() != want:
            raise CheckpointError(
                f"{what}: 'name' is {name!r:.80}; only the character-CNN token embedder ('cnn') and the ELMo "
                f"encoder ('elmo') are supported"
            )
    char_dim = _int(tok, "char_dim", wt, least=0)
    if char_dim == 0:
        raise CheckpointError(f"{wt}: 'char_dim' is 0; word-only models are not supported")
    activation = tok.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"{wt}: activation must be one of {ACTIVATIONS}, got {activation!r:.80}")
    max_chars = _int(tok, "max_characters_per_token", wt, least=3)
    word_dim = tok.get("word_dim")
    return CharBiLMConfig(
        characters="lexicon",
        max_chars=max_chars,
        num_chars=0,
        char_dim=char_dim,
        filters=_filters(_need(tok, "filters", wt, list), wt, max_chars),
        num_highway=_int(tok, "n_highway", wt, least=0, default=0),
        activation=activation,
        projection_dim=_int(enc, "projection_dim", we),
        cells=_int(enc, "dim", we),
        num_layers=_int(enc, "n_layers", we),
        cell_clip=_clip(enc, "cell_clip", we),
        proj_clip=_clip(enc, "proj_clip", we),
        skip_connections=True,  # its ElmobiLm always adds them
        word_vocab=0,
        word_dim=0 if word_dim is None else _int(tok, "word_dim", wt, least=0),
    ), path


def manylangs_state(token_embedder: dict, encoder: dict, cfg: CharBiLMConfig) -> dict[str, torch.Tensor]:
    """ELMoForManyLangs' two state dicts renamed into a :class:`~elmokit.bilm.charbilm.CharBiLM` state dict (the shapes
    are checked against the config when the bundle is written).

    Raises:
        CheckpointError: at the first missing tensor (so a config that claims a billion layers fails at once).
    """
    state: dict[str, torch.Tensor] = {}

    def take(dst: str, src: dict, key: str) -> torch.Tensor:
        v = src.get(key)
        if v is None:
            raise CheckpointError(
                f"token_embedder.pkl/encoder.pkl: no weights for {dst} ({key}); is this an ELMoForManyLangs model "
                f"with the options its config names?"
            )
        state[dst] = v
        return v

    take("token_encoder.char_embedding.weight", token_embedder, "char_emb_layer.embedding.weight")
    if cfg.word_dim:
        take("token_encoder.word_embedding.weight", token_embedder, "word_emb_layer.embedding.weight")
    for i in range(len(cfg.filters)):
        for p in ("weight", "bias"):
            take(f"token_encoder.convolutions.{i}.{p}", token_embedder, f"convolutions.{i}.{p}")
    for k in range(cfg.num_highway):
        for p in ("weight", "bias"):
            take(f"token_encoder.highways.{k}.{p}", token_embedder, f"highways._layers.{k}.{p}")
    for p in ("weight", "bias"):
        take(f"token_encoder.projection.{p}", token_embedder, f"projection.{p}")
    for direction in ("forward", "backward"):
        for k in range(cfg.num_layers):
            src, dst = f"{direction}_layer_{k}.", f"{direction}_rnn.layers.{k}."
            take(dst + "weight_ih_l0", encoder, src + "input_linearity.weight")
            take(dst + "weight_hh_l0", encoder, src + "state_linearity.weight")
            bias = take(dst + "bias_hh_l0", encoder, src + "state_linearity.bias")
            state[dst + "bias_ih_l0"] = torch.zeros_like(bias)  # the shape is checked when the bundle is written
            take(dst + "weight_hr_l0", encoder, src + "state_projection.weight")
    return {k: v.float().contiguous() for k, v in state.items()}


def _state_dict(obj, path: Path) -> dict[str, torch.Tensor]:
    """A loaded ``.pkl`` that must be a state dict: names → tensors."""
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path}: holds a {type(obj).__name__}, not a state dict; is this ELMoForManyLangs' file?"
        )
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(
                f"{path}: {k!r:.80} is {type(v).__name__} {v!r:.40}, not a tensor; is this ELMoForManyLangs' file?"
            )
        if not (v.is_floating_point() or v.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
            raise CheckpointError(f"{path}: {k!r:.80} holds {v.dtype} values; is this ELMoForManyLangs' file?")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{path}: {k!r:.80} holds NaN or infinite values; {CORRUPT}")
    return obj


def _rows(state: dict, key: str, path: Path) -> int:
    """Rows of an embedding table of the state dict (0 when absent; the import then names it missing)."""
    v = state.get(key)
    if v is None:
        return 0
    if v.dim() != 2:
        raise CheckpointError(f"{path}: {key} has shape {tuple(v.shape)}, not (rows, dim); is this the model's file?")
    return int(v.shape[0])


def _read_manylangs(d: Path) -> tuple[CharBiLMConfig, dict[str, torch.Tensor], dict, dict | None, list[Path]]:
    """An ELMoForManyLangs model directory read and checked: its config, its state dict (renamed), its lexicons and
    the files it was read from (config.json, the model JSON, char.dic, the two ``.pkl``, word.dic)."""
    cfg, model_json = manylangs_config(d)
    chars = read_dic(d / "char.dic", LEXICON_SPECIALS)
    words = read_dic(d / "word.dic", WORD_SPECIALS) if cfg.word_dim else None
    tok_path, enc_path = d / "token_embedder.pkl", d / "encoder.pkl"
    tok = _state_dict(safe_load(tok_path, "ELMoForManyLangs token embedder"), tok_path)
    enc = _state_dict(safe_load(enc_path, "ELMoForManyLangs encoder"), enc_path)
    cfg.num_chars = _rows(tok, "char_emb_layer.embedding.weight", tok_path)
    cfg.word_vocab = _rows(tok, "word_emb_layer.embedding.weight", tok_path) if cfg.word_dim else 0
    for table, rows, name in ((chars, cfg.num_chars, "char.dic"), (words or {}, cfg.word_vocab, "word.dic")):
        if table and rows and max(table.values()) >= rows:
            raise CheckpointError(
                f"{d / name}: ids go up to {max(table.values())}, the embedding has {rows} rows; "
                f"are the lexicon and the weights from the same model?"
            )
    state = manylangs_state(tok, enc, cfg)
    files = [d / "config.json", model_json, d / "char.dic", tok_path, enc_path]
    if words is not None:
        files.append(d / "word.dic")
    return cfg, state, chars, words, files


def import_manylangs(model_dir: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write a character-biLM bundle from an ELMoForManyLangs model directory (``overwrite``: replace a bundle
    already at ``out``; see :func:`check_out`)."""
    d, out = Path(model_dir), Path(out)
    if not d.is_dir():
        raise CheckpointError(f"{d}: not a directory; pass an ELMoForManyLangs model directory")
    check_out(out, [d], overwrite)
    _, model_json = manylangs_config(d)
    check_out(out, [d, model_json], overwrite)
    cfg, state, chars, words, files = _read_manylangs(d)
    source = {"kind": "elmoformanylangs", "files": {str(p): sha256_file(p) for p in files}}
    return write_char_bundle(out, cfg, state, source, str(d / "token_embedder.pkl"), chars, words)


# --- archives as published (NLPL's zips, ELMoForManyLangs' zips) ------------------------------------------------
TEXT_CAP = 4 << 20  # bytes of options.json, meta.json, config.json or the model JSON
BINARY_CAP = 64 << 30  # bytes of a weights file (the largest published ELMo's are under 1 GB)
BOMB_RATIO, BOMB_LEAST = 100, 8 << 20  # a member over 8 MiB that unpacks to 100 times its packed bytes is refused
FREE_MARGIN = 64 << 20  # bytes left free beside --out after a weights file is unpacked there
NLPL_LAYOUT = "model.hdf5, options.json, vocab.txt or vocab.txt.gz, meta.json"
MANYLANGS_REQUIRED = ("config.json", "char.dic", "token_embedder.pkl", "encoder.pkl")
MANYLANGS_LAYOUT = "config.json, char.dic, word.dic, token_embedder.pkl, encoder.pkl"
# ELMoForManyLangs' configs/cnn_50_100_512_4096_sample.json, which every model it published was trained with and
# which its archives do not hold (HIT-SCIR/ELMoForManyLangs issue #27; the same file in bozheng-hit/ELMo, configs/).
# ELMoForManyLangs itself falls back to it since its pull request #86; the weights' shapes are checked against it.
MANYLANGS_SAMPLE = "cnn_50_100_512_4096_sample.json"
MANYLANGS_SAMPLE_CONFIG = {
    "encoder": {"name": "elmo", "projection_dim": 512, "cell_clip": 3, "proj_clip": 3, "dim": 4096, "n_layers": 2},
    "token_embedder": {
        "name": "cnn",
        "activation": "relu",
        "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
        "n_highway": 2,
        "word_dim": 100,
        "char_dim": 50,
        "max_characters_per_token": 50,
    },
    "classifier": {"name": "sampled_softmax", "n_samples": 8192},
    "dropout": 0.1,
}


class Archive:
    """A zip archive read member by member, never unpacked as a whole: small members are read into memory, weights
    files are copied into a temporary directory of the caller's (under names the caller gives, never the members'
    own). Members may lie inside one top folder, which is then left out of their names.

    Refused, in one line each: a file that is not a zip archive; a member whose name leaves the archive (absolute,
    ``..``, a drive or a backslash) or appears twice; and, for a member that is read, one that is encrypted, a link,
    larger than what it can be, or that unpacks to over 100 times its packed size (a zip bomb); a damaged member
    (zip's CRC-32 is checked as it is read).

    Args:
        path: the archive.

    Raises:
        CheckpointError: naming the archive (and the member).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise CheckpointError(f"{path}: not a readable zip archive ({e}); download it again") from None
        infos = []
        for info in self.zf.infolist():
            name = info.filename
            base = PurePosixPath(name).name
            if info.is_dir() or name.startswith("__MACOSX/") or base.startswith("._") or base == ".DS_Store":
                continue
            parts = name.split("/")
            if name.startswith("/") or "\\" in name or ".." in parts or ":" in parts[0] or not base:
                self.zf.close()
                raise CheckpointError(
                    f"{path}: holds a member named {name!r:.80}, a path that leaves the archive; elmokit reads no "
                    f"such archive (the published ones have none)"
                )
            infos.append(info)
        tops = {i.filename.split("/")[0] for i in infos}
        self.top = f"{tops.pop()}/" if len(tops) == 1 and all("/" in i.filename for i in infos) else ""
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            rel = info.filename[len(self.top) :]
            if rel in self.members:
                self.zf.close()
                raise CheckpointError(f"{path}: holds {info.filename} twice; which is the model's? download it again")
            self.members[rel] = info

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.zf.close()

    def label(self, name: str) -> str:
        """How errors and the manifest name member ``name``: ``ARCHIVE/MEMBER``."""
        return f"{self.path}/{self.top}{name}"

    def listing(self, most: int = 8) -> str:
        names = sorted(self.members)
        return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "") or "nothing"

    def _member(self, name: str, cap: int) -> zipfile.ZipInfo:
        info, where = self.members[name], self.label(name)
        if info.flag_bits & 0x1:
            raise CheckpointError(f"{where}: encrypted; the published archives are not: download it again")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise CheckpointError(f"{where}: a symbolic link, not a file; the published archives hold none")
        if info.file_size > cap:
            raise CheckpointError(
                f"{where}: unpacks to {info.file_size:,} bytes, over the {cap:,} such a file can take; is this the "
                f"published archive?"
            )
        if info.file_size > BOMB_LEAST and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
            raise CheckpointError(
                f"{where}: {info.compress_size:,} packed bytes unpack to {info.file_size:,} (a zip bomb?); no "
                f"model's file packs that well: download the archive again"
            )
        return info

    def read(self, name: str, cap: int) -> bytes:
        """The bytes of member ``name`` (at most ``cap``)."""
        info = self._member(name, cap)
        try:
            with self.zf.open(info) as f:
                return f.read(cap + 1)[:cap]
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as e:
            raise CheckpointError(f"{self.label(name)}: cannot read ({e}); {CORRUPT}") from None

    def extract(self, name: str, dest: Path) -> None:
        """Copy member ``name`` into the new file ``dest``, in pieces (a weights file: no copy in memory), after
        checking that the disk beside it has room.

        Raises:
            CheckpointError: a damaged member, or too little free space.
        """
        info = self._member(name, BINARY_CAP)
        free = shutil.disk_usage(dest.parent).free
        if free < info.file_size + FREE_MARGIN:
            raise CheckpointError(
                f"{dest.parent.parent}: {free >> 20:,} MiB free, and {self.label(name)} unpacks to "
                f"{info.file_size >> 20:,} MiB (read from a copy beside --out while the bundle is written); free "
                f"some space or choose an --out on another disk"
            )
        try:
            with self.zf.open(info) as src, open(dest, "xb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
            raise CheckpointError(f"{self.label(name)}: cannot read ({e}); {CORRUPT}") from None

    def weights_name(self) -> str | None:
        """The NLPL layout's weights: ``model.hdf5``, else the only ``.hdf5`` beside ``options.json`` (simple_elmo
        takes the first it finds; several are refused here as not knowing which)."""
        if "model.hdf5" in self.members:
            return "model.hdf5"
        found = sorted(n for n in self.members if "/" not in n and n.endswith(".hdf5"))
        if len(found) > 1:
            raise CheckpointError(
                f"{self.path}: no model.hdf5 but {len(found)} weights files ({', '.join(found[:4])}); which one is "
                f"the model's? an NLPL archive holds {NLPL_LAYOUT}"
            )
        return found[0] if found else None

    def layout(self) -> str:
        """``"nlpl"`` (bilm-tf's files: NLPL's archives) or ``"elmoformanylangs"``.

        Raises:
            CheckpointError: an archive of neither layout, or one that lacks a file of its layout.
        """
        flat = {n for n in self.members if "/" not in n}
        manylangs = flat & {"token_embedder.pkl", "encoder.pkl", "char.dic"}
        if manylangs or ("config.json" in flat and "options.json" not in flat):
            missing = [n for n in MANYLANGS_REQUIRED if n not in flat]
            if missing:
                raise CheckpointError(
                    f"{self.path}: an ELMoForManyLangs archive without {', '.join(missing)} (it holds "
                    f"{MANYLANGS_LAYOUT}); download it again"
                )
            return "elmoformanylangs"
        weights = self.weights_name()
        if "options.json" in flat or weights:
            if "options.json" not in flat:
                raise CheckpointError(
                    f"{self.path}: no options.json beside {weights}; an NLPL archive holds {NLPL_LAYOUT}: download "
                    f"it again (or pass bilm-tf's options and weights: import-elmo OPTIONS.json WEIGHTS.hdf5)"
                )
            if weights is None:
                ckpt = sorted(n for n in flat if n.startswith("model.ckpt") or n == "checkpoint")
                if ckpt:
                    raise CheckpointError(
                        f"{self.path}: holds a TensorFlow checkpoint ({', '.join(ckpt[:3])}), not model.hdf5; elmokit "
                        f"reads bilm-tf's HDF5 weights: write them with bilm-tf's bin/dump_weights.py (which leaves "
                        f"the softmax out) and import OPTIONS.json WEIGHTS.hdf5 --vocab vocab.txt"
                    )
                raise CheckpointError(
                    f"{self.path}: no model.hdf5 beside options.json; an NLPL archive holds {NLPL_LAYOUT}"
                )
            return "nlpl"
        raise CheckpointError(
            f"{self.path}: neither an NLPL ELMo archive ({NLPL_LAYOUT}) nor an ELMoForManyLangs one "
            f"({MANYLANGS_LAYOUT}); it holds {self.listing()}"
        )


@contextmanager
def _named(tmp: Path, archive: Archive, local: dict[str, str]):
    """Errors about the unpacked copies in ``tmp`` name the archive's members instead (``local``: copy's name in
    ``tmp`` → member); an error naming no file is put after the archive's name."""
    try:
        yield
    except CheckpointError as e:
        msg = str(e)
        for copy, member in sorted(local.items(), key=lambda kv: -len(kv[0])):
            msg = msg.replace(str(tmp / copy), archive.label(member))
        msg = msg.replace(str(tmp), f"{archive.path}/{archive.top}".rstrip("/"))
        raise CheckpointError(msg if str(archive.path) in msg else f"{archive.path}: {msg}") from None


def _meta(archive: Archive, notes: list[str]) -> dict | None:
    """NLPL's ``meta.json`` (the model's corpus, algorithm and repository id), recorded in the manifest as it is."""
    if "meta.json" not in archive.members:
        return None
    data = archive.read("meta.json", TEXT_CAP)
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        notes.append(f"{archive.label('meta.json')} is not JSON ({e}): not recorded")
        return None
    return meta if isinstance(meta, dict) else None


def _archive_source(archive: Archive, kind: str, layout: str, files: dict[str, str], notes: list[str]) -> dict:
    source: dict = {
        "kind": kind,
        "archive": {"path": str(archive.path), "sha256": sha256_file(archive.path), "layout": layout},
        "files": files,
    }
    if archive.top:
        source["archive"]["top"] = archive.top
    meta = _meta(archive, notes)
    if meta is not None:
        source["meta"] = meta
    if notes:
        source["notes"] = notes
    return source


def _import_nlpl(archive: Archive, tmp: Path, out: Path) -> Path:
    weights = archive.weights_name()
    local = {"options.json": "options.json", "model.hdf5": weights}
    files: dict[str, str] = {}
    with _named(tmp, archive, local):
        data = archive.read("options.json", TEXT_CAP)
        (tmp / "options.json").write_bytes(data)
        files[archive.label("options.json")] = hashlib.sha256(data).hexdigest()
        options_config(tmp / "options.json")  # a bad options file (or vocabulary) before a large copy
        words, vocab_name = None, next((n for n in ("vocab.txt.gz", "vocab.txt") if n in archive.members), None)
        if vocab_name is not None:  # simple_elmo's order: vocab.txt.gz first
            data = archive.read(vocab_name, VOCAB_CAP)
            files[archive.label(vocab_name)] = hashlib.sha256(data).hexdigest()
            where = archive.label(vocab_name)
            words = read_vocab(gunzip(data, where) if vocab_name.endswith(".gz") else data, where)
        archive.extract(weights, tmp / "model.hdf5")
        files[archive.label(weights)] = sha256_file(tmp / "model.hdf5")
        notes: list[str] = []
        source = _archive_source(archive, "bilm-tf", "nlpl", files, notes)
        return _write_bilm_tf(
            tmp / "options.json", tmp / "model.hdf5", words, archive.label(vocab_name or "vocab.txt"), out, source
        )


def _import_manylangs_archive(archive: Archive, tmp: Path, out: Path) -> Path:
    local = {n: n for n in (*MANYLANGS_REQUIRED, "word.dic")}
    files: dict[str, str] = {}
    notes: list[str] = []
    with _named(tmp, archive, local):
        for name in ("config.json", "char.dic", "word.dic"):
            if name in archive.members:
                data = archive.read(name, TEXT_CAP if name == "config.json" else VOCAB_CAP)
                (tmp / name).write_bytes(data)
                files[archive.label(name)] = hashlib.sha256(data).hexdigest()
        top = _read_json(tmp / "config.json", "an ELMoForManyLangs model archive")
        rel = _need(top, "config_path", str(tmp / "config.json"), str)
        base = PurePosixPath(rel.replace("\\", "/")).name
        if base in ("", ".", "..") or base in local:
            raise CheckpointError(
                f"{archive.label('config.json')}: config_path {rel!r:.80} names no model JSON; is this "
                f"ELMoForManyLangs' config.json?"
            )
        found = sorted(n for n in archive.members if PurePosixPath(n).name == base)
        if len(found) > 1:
            raise CheckpointError(f"{archive.path}: holds {len(found)} files named {base}; which is the model's?")
        if found:
            local[base] = found[0]
            data = archive.read(found[0], TEXT_CAP)
            (tmp / base).write_bytes(data)
            files[archive.label(found[0])] = hashlib.sha256(data).hexdigest()
        elif base == MANYLANGS_SAMPLE:
            (tmp / base).write_text(json.dumps(MANYLANGS_SAMPLE_CONFIG), encoding="utf-8")
            notes.append(
                f"{archive.label('config.json')} names {rel}, which the archive does not hold: ELMoForManyLangs' "
                f"configs/{MANYLANGS_SAMPLE} (built into elmokit) was used, as ELMoForManyLangs itself does"
            )
        else:
            raise CheckpointError(
                f"{archive.label('config.json')}: config_path names {rel!r:.120}, which {archive.path} does not hold; "
                f"unpack the archive, copy the model JSON beside config.json and import the directory"
            )
        cfg, _ = manylangs_config(tmp)
        if cfg.word_dim and "word.dic" not in archive.members:
            raise CheckpointError(
                f"{archive.path}: no word.dic, and its model JSON gives the model a word embedding (word_dim "
                f"{cfg.word_dim}); an ELMoForManyLangs archive holds {MANYLANGS_LAYOUT}"
            )
        for name in ("token_embedder.pkl", "encoder.pkl"):  # read with torch.load(weights_only=True): no unpickling
            archive.extract(name, tmp / name)
            files[archive.label(name)] = sha256_file(tmp / name)
        cfg, state, chars, words, _ = _read_manylangs(tmp)
        source = _archive_source(archive, "elmoformanylangs", "elmoformanylangs", files, notes)
        return write_char_bundle(out, cfg, state, source, str(tmp / "token_embedder.pkl"), chars, words)


def import_archive(path: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write a character-biLM bundle from a zip archive as published: the NLPL repository's (bilm-tf's
    ``model.hdf5`` and ``options.json`` with ``vocab.txt`` or ``vocab.txt.gz`` and ``meta.json``) or
    ELMoForManyLangs' (see the module docstring). Members are read straight from the archive; the weights files are
    copied, one at a time, into a temporary directory beside ``out`` (removed at the end, or by the next import of
    ``out`` after a kill) and read from there. The bundle's manifest records the archive's sha256, each member's and
    NLPL's ``meta.json``.

    Raises:
        CheckpointError: one line naming the archive and what it lacks or what is wrong with it.
    """
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; pass the model's zip archive")
    check_out(out, [path], overwrite)
    with Archive(path) as archive:
        layout = archive.layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        # named as atomic_dir names its directories, so a killed import's copy is removed by the next one
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-zip-", dir=out.parent))
        try:
            if layout == "nlpl":
                return _import_nlpl(archive, tmp, out)
            return _import_manylangs_archive(archive, tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def import_directory(d: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """A model directory: ELMoForManyLangs' (``config.json``: :func:`import_manylangs`), or an NLPL archive unpacked
    (``options.json`` and ``model.hdf5``, or the only ``.hdf5``, with ``vocab.txt.gz`` or ``vocab.txt`` where there
    is one: :func:`import_bilm_tf`)."""
    d = Path(d)
    if not d.is_dir() or (d / "config.json").is_file() or not (d / "options.json").is_file():
        return import_manylangs(d, out, overwrite)
    weights = d / "model.hdf5"
    if not weights.is_file():
        found = sorted(p for p in d.glob("*.hdf5") if p.is_file())
        if len(found) != 1:
            raise CheckpointError(
                f"{d}: options.json and {'no' if not found else len(found)} .hdf5 weights files, but no model.hdf5; "
                f"an NLPL model directory holds {NLPL_LAYOUT}"
            )
        weights = found[0]
    vocab = next((d / n for n in ("vocab.txt.gz", "vocab.txt") if (d / n).is_file()), None)
    return import_bilm_tf(d / "options.json", weights, out, overwrite, vocab)


def import_path(path: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """``elmokit import-elmo SOURCE`` with one path: a zip archive (:func:`import_archive`) or a model directory
    (:func:`import_directory`)."""
    p = Path(path)
    if p.is_dir():
        return import_directory(p, out, overwrite)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file or directory; pass MODEL.zip, MODEL_DIR or OPTIONS.json WEIGHTS.hdf5")
    if not zipfile.is_zipfile(p):
        raise CheckpointError(
            f"{p}: neither a zip archive nor a directory; pass an NLPL or ELMoForManyLangs MODEL.zip, a MODEL_DIR, "
            f"or bilm-tf's OPTIONS.json WEIGHTS.hdf5"
        )
    return import_archive(p, out, overwrite)
