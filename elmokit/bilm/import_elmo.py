"""``elmokit import-elmo``: the published ELMo models as elmokit character-biLM bundles.

Two sources:

- bilm-tf / AllenNLP: ``options.json`` + ``weights.hdf5`` (the English ELMo of Peters et al. and its smaller
  siblings). TensorFlow's LSTM cell is converted to PyTorch's: ``W_0`` rows are ``[input; h_prev]``, its gates
  ``i, j, f, o`` become ``i, f, g, o``, and TensorFlow's forget bias of 1 is added to ``f``'s bias; the highways'
  carry weights are negated (:mod:`elmokit.modules.char_cnn` says why); ``char_embed`` gets a zero row in front
  (id 0 pads missing words).
- ELMoForManyLangs: a model directory (``config.json`` naming the model JSON, ``char.dic``, ``word.dic``,
  ``token_embedder.pkl``, ``encoder.pkl``); its state dicts are already in PyTorch's gate order and are read with
  ``torch.load(weights_only=True)``.

Whatever the format does not allow is refused with the file and key (or line), before anything is written: unknown
options, values of the wrong type or sign, lexicons that are not UTF-8 ``token<TAB>id`` lines, state dicts that are
not tensors, missing or misshapen weights, links inside the HDF5 file. ``--out`` must not be, be inside or hold a
source, nor be a symbolic link; an existing one is replaced only with ``overwrite`` and only if it is a biLM bundle.
HDF5 has no checksums: bytes flipped inside a weights file import silently; the bundle records each source file's
sha256, to compare with the published one.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from elmokit.bilm.bundle import BUNDLE_FORMAT
from elmokit.bilm.characters import LEXICON_SPECIALS, WORD_SPECIALS, read_dic
from elmokit.bilm.charbilm import CHAR_BUNDLE_FORMAT, CharBiLMConfig, write_char_bundle
from elmokit.core.errors import CheckpointError
from elmokit.core.files import recover_dir, safe_load
from elmokit.core.textfile import sha256_file
from elmokit.modules.char_cnn import ACTIVATIONS

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


def bilm_tf_state(weights: Path, cfg: CharBiLMConfig) -> dict[str, torch.Tensor]:
    """Read a bilm-tf ``weights.hdf5`` into a :class:`~elmokit.bilm.charbilm.CharBiLM` state dict, one dataset at a
    time (peak memory: the weights plus one dataset; W_0 is read one gate at a time).

    Raises:
        CheckpointError: a file that is not HDF5, or a dataset that is missing or has the wrong shape.
    """
    import h5py

    try:
        f = h5py.File(weights, "r")
    except OSError as e:
        raise CheckpointError(f"{weights}: cannot read as HDF5 ({e}); pass bilm-tf's weights.hdf5") from None
    F = sum(n for _, n in cfg.filters)
    P, H, d = cfg.projection_dim, cfg.cells, cfg.char_dim
    same_model = "are the options and weights from the same model?"

    def dataset(name: str, shape: tuple):
        """The dataset ``name``: reached by the file's own (hard) links only, numbers, of this shape."""
        node, path = f, ""
        for part in name.split("/"):
            if not isinstance(node, h5py.Group):
                raise CheckpointError(f"{weights}: {path} is a dataset, not a group holding {name}; {same_model}")
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
            raise CheckpointError(f"{weights}: {name} is a group, not a dataset of weights; {same_model}")
        if node.dtype.kind not in "fiu":
            raise CheckpointError(
                f"{weights}: {name} holds {node.dtype} values, not numbers; is this bilm-tf's weights file?"
            )
        if node.shape != shape:
            raise CheckpointError(
                f"{weights}: {name} has shape {node.shape}, the options make it {shape}; {same_model}"
            )
        return node

    def read(name: str, node, cols: slice = slice(None)) -> np.ndarray:
        try:
            a = np.asarray(node[:, cols] if cols != slice(None) else node[()], dtype=np.float32)
        except (OSError, ValueError, TypeError) as e:  # a damaged chunk, a filter HDF5 cannot undo
            raise CheckpointError(f"{weights}: cannot read {name} ({e}); the file is corrupt") from None
        if not np.isfinite(a).all():
            raise CheckpointError(f"{weights}: {name} holds NaN or infinite values; {CORRUPT}")
        return a

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
                bias[H : 2 * H] += 1.0  # TensorFlow's LSTMCell adds forget_bias=1 inside the cell
                pre = f"{name}.layers.{layer}."
                state[pre + "weight_ih_l0"], state[pre + "weight_hh_l0"] = w_ih, w_hh  # (4H, P) each
                state[pre + "bias_ih_l0"], state[pre + "bias_hh_l0"] = t(bias), torch.zeros(4 * H)
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
    if out.is_symlink() and not out.exists():
        raise CheckpointError(
            f"{out}: a symbolic link to {os.readlink(out)}, which does not exist; remove the link or choose "
            f"another --out"
        )
    real = out.resolve()
    for src in sources:
        s = src.resolve()
        how = "is" if real == s else "is inside" if s in real.parents else "holds" if real in s.parents else ""
        if how:
            raise CheckpointError(
                f"{out}: {how} the source {src}; the import would write over what it reads: choose an --out "
                f"apart from the source"
            )
    if out.is_symlink():
        raise CheckpointError(
            f"{out}: a symbolic link (to {os.readlink(out)}); pass the directory itself, or choose another --out"
        )
    recover_dir(out)
    if not out.exists():
        return
    if not overwrite:
        raise CheckpointError(f"{out}: exists; pass --overwrite to replace it, or choose another --out")
    if not out.is_dir() or not _is_bundle(out):
        raise CheckpointError(
            f"{out}: exists and is not a biLM bundle; --overwrite replaces only a bundle: move it away yourself, "
            f"or choose another --out"
        )


def import_bilm_tf(options: str | Path, weights: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write a character-biLM bundle from bilm-tf's ``options.json`` and ``weights.hdf5`` (``overwrite``: replace a
    bundle already at ``out``; see :func:`check_out`)."""
    options, weights, out = Path(options), Path(weights), Path(out)
    check_out(out, [options, weights], overwrite)
    cfg = options_config(options)
    if not weights.is_file():
        raise CheckpointError(f"{weights}: no such file; pass bilm-tf's weights.hdf5")
    state = bilm_tf_state(weights, cfg)
    source = {"kind": "bilm-tf", "files": {str(options): sha256_file(options), str(weights): sha256_file(weights)}}
    return write_char_bundle(out, cfg, state, source, str(weights))


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


def import_manylangs(model_dir: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write a character-biLM bundle from an ELMoForManyLangs model directory (``overwrite``: replace a bundle
    already at ``out``; see :func:`check_out`)."""
    d, out = Path(model_dir), Path(out)
    if not d.is_dir():
        raise CheckpointError(f"{d}: not a directory; pass an ELMoForManyLangs model directory")
    check_out(out, [d], overwrite)
    cfg, model_json = manylangs_config(d)
    check_out(out, [d, model_json], overwrite)
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
    source = {"kind": "elmoformanylangs", "files": {str(p): sha256_file(p) for p in files}}
    return write_char_bundle(out, cfg, state, source, str(tok_path), chars, words)
