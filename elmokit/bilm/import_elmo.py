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

Whatever the format does not allow is refused with the file and key: unknown options, missing or misshapen weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from elmokit.bilm.characters import LEXICON_SPECIALS, WORD_SPECIALS, read_dic
from elmokit.bilm.charbilm import CharBiLMConfig, write_char_bundle
from elmokit.core.errors import CheckpointError
from elmokit.core.files import safe_load
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
        raise CheckpointError(f"{where}: missing key {key!r}")
    v = d[key]
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        raise CheckpointError(f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}, got {v!r}")
    return v


def _filters(v, where: str) -> list[list[int]]:
    if not (
        isinstance(v, list)
        and v
        and all(isinstance(f, list) and len(f) == 2 and all(isinstance(x, int) and x > 0 for x in f) for f in v)
    ):
        raise CheckpointError(f"{where}: 'filters' must be a list of [width, count] pairs of positive ints, got {v!r}")
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
    lstm, cnn = _need(o, "lstm", str(path), dict), o["char_cnn"]
    for section, d, known in (("lstm", lstm, LSTM_KEYS), ("char_cnn", cnn, CNN_KEYS)):
        bad = sorted(set(d) - known)
        if bad:
            raise CheckpointError(
                f"{path}: unknown {section} key(s) {', '.join(bad)}; known: {', '.join(sorted(known))}"
            )
    w = f"{path}: char_cnn"
    activation = cnn.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"{w}: activation must be one of {ACTIVATIONS}, got {activation!r}")
    n_chars = cnn.get("n_characters", 262)
    if n_chars not in (261, 262):
        raise CheckpointError(f"{w}: n_characters must be 261 or 262 (bilm-tf's byte ids), got {n_chars!r}")
    max_chars = _need(cnn, "max_characters_per_token", w)
    filters = _filters(_need(cnn, "filters", w, list), w)
    if max(f[0] for f in filters) > max_chars:
        raise CheckpointError(f"{w}: a filter is wider than max_characters_per_token ({max_chars})")
    wl = f"{path}: lstm"
    return CharBiLMConfig(
        characters="elmo-bytes",
        max_chars=max_chars,
        num_chars=FILE_CHARS + 1,
        char_dim=_need(_need(cnn, "embedding", w, dict), "dim", f"{w}.embedding"),
        filters=filters,
        num_highway=cnn.get("n_highway", 0),
        activation=activation,
        projection_dim=_need(lstm, "projection_dim", wl),
        cells=_need(lstm, "dim", wl),
        num_layers=_need(lstm, "n_layers", wl),
        cell_clip=float(lstm.get("cell_clip") or 0),
        proj_clip=float(lstm.get("proj_clip") or 0),
        skip_connections=bool(lstm.get("use_skip_connections", False)),
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

    def get_shape(name: str, shape: tuple) -> None:
        if name not in f:
            raise CheckpointError(f"{weights}: no dataset {name}; is this the weights file of these options?")
        if f[name].shape != shape:
            raise CheckpointError(
                f"{weights}: {name} has shape {f[name].shape}, the options make it {shape}; are "
                f"the options and weights from the same model?"
            )

    def get(name: str, shape: tuple) -> np.ndarray:
        get_shape(name, shape)
        return np.asarray(f[name], dtype=np.float32)

    t = torch.from_numpy
    state: dict[str, torch.Tensor] = {}
    with f:
        emb = np.zeros((FILE_CHARS + 1, d), dtype=np.float32)
        emb[1:] = get("char_embed", (FILE_CHARS, d))
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
        if "CNN_proj" in f or F != P:
            w_proj, b_proj = get("CNN_proj/W_proj", (F, P)).T.copy(), get("CNN_proj/b_proj", (P,))
        else:  # bilm-tf has no projection when the filters are already projection_dim wide
            w_proj, b_proj = np.eye(P, dtype=np.float32), np.zeros(P, dtype=np.float32)
        state["token_encoder.projection.weight"], state["token_encoder.projection.bias"] = t(w_proj), t(b_proj)
        for direction, name in ((0, "forward_rnn"), (1, "backward_rnn")):
            for layer in range(cfg.num_layers):
                g = f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
                w0 = f"{g}/W_0"  # (2P, 4H): rows [input; h_prev], columns TensorFlow's gates i, j, f, o
                get_shape(w0, (2 * P, 4 * H))
                w_ih, w_hh = torch.empty(4 * H, P), torch.empty(4 * H, P)
                for dst, src in enumerate(TF_GATE_OF):  # one gate's columns at a time: no copy of all of W_0
                    block = np.asarray(f[w0][:, src * H : (src + 1) * H], dtype=np.float32)  # (2P, H)
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


def import_bilm_tf(options: str | Path, weights: str | Path, out: str | Path) -> Path:
    """Write a character-biLM bundle from bilm-tf's ``options.json`` and ``weights.hdf5``."""
    options, weights = Path(options), Path(weights)
    cfg = options_config(options)
    if not weights.is_file():
        raise CheckpointError(f"{weights}: no such file; pass bilm-tf's weights.hdf5")
    state = bilm_tf_state(weights, cfg)
    source = {"kind": "bilm-tf", "files": {str(options): sha256_file(options), str(weights): sha256_file(weights)}}
    return write_char_bundle(Path(out), cfg, state, source, str(weights))


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
    if tok.get("name", "cnn").lower() != "cnn":
        raise CheckpointError(
            f"{wt}: name {tok.get('name')!r}; only the character-CNN token embedder ('cnn') is supported"
        )
    if enc.get("name", "elmo").lower() != "elmo":
        raise CheckpointError(f"{we}: name {enc.get('name')!r}; only the ELMo encoder ('elmo') is supported")
    if _need(tok, "char_dim", wt) <= 0:
        raise CheckpointError(f"{wt}: char_dim is 0; word-only models are not supported")
    activation = tok.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"{wt}: activation must be one of {ACTIVATIONS}, got {activation!r}")
    return CharBiLMConfig(
        characters="lexicon",
        max_chars=_need(tok, "max_characters_per_token", wt),
        num_chars=0,
        char_dim=tok["char_dim"],
        filters=_filters(_need(tok, "filters", wt, list), wt),
        num_highway=tok.get("n_highway", 0),
        activation=activation,
        projection_dim=_need(enc, "projection_dim", we),
        cells=_need(enc, "dim", we),
        num_layers=_need(enc, "n_layers", we),
        cell_clip=float(enc.get("cell_clip") or 0),
        proj_clip=float(enc.get("proj_clip") or 0),
        skip_connections=True,  # its ElmobiLm always adds them
        word_vocab=0,
        word_dim=max(int(tok.get("word_dim") or 0), 0),
    ), path


def manylangs_state(token_embedder: dict, encoder: dict, cfg: CharBiLMConfig) -> dict[str, torch.Tensor]:
    """ELMoForManyLangs' two state dicts renamed into a :class:`~elmokit.bilm.charbilm.CharBiLM` state dict (the shapes
    are checked against the config when the bundle is written)."""
    state = {"token_encoder.char_embedding.weight": token_embedder.get("char_emb_layer.embedding.weight")}
    if cfg.word_dim:
        state["token_encoder.word_embedding.weight"] = token_embedder.get("word_emb_layer.embedding.weight")
    for i in range(len(cfg.filters)):
        for p in ("weight", "bias"):
            state[f"token_encoder.convolutions.{i}.{p}"] = token_embedder.get(f"convolutions.{i}.{p}")
    for k in range(cfg.num_highway):
        for p in ("weight", "bias"):
            state[f"token_encoder.highways.{k}.{p}"] = token_embedder.get(f"highways._layers.{k}.{p}")
    for p in ("weight", "bias"):
        state[f"token_encoder.projection.{p}"] = token_embedder.get(f"projection.{p}")
    for direction in ("forward", "backward"):
        for k in range(cfg.num_layers):
            src, dst = f"{direction}_layer_{k}.", f"{direction}_rnn.layers.{k}."
            state[dst + "weight_ih_l0"] = encoder.get(src + "input_linearity.weight")
            state[dst + "weight_hh_l0"] = encoder.get(src + "state_linearity.weight")
            state[dst + "bias_hh_l0"] = encoder.get(src + "state_linearity.bias")
            state[dst + "bias_ih_l0"] = torch.zeros(4 * cfg.cells)
            state[dst + "weight_hr_l0"] = encoder.get(src + "state_projection.weight")
    missing = [k for k, v in state.items() if v is None]
    if missing:
        raise CheckpointError(
            f"token_embedder.pkl/encoder.pkl: no weights for {', '.join(missing[:3])}; is this an "
            f"ELMoForManyLangs model with the options its config names?"
        )
    return {k: v.float().contiguous() for k, v in state.items()}


def import_manylangs(model_dir: str | Path, out: str | Path) -> Path:
    """Write a character-biLM bundle from an ELMoForManyLangs model directory."""
    d = Path(model_dir)
    if not d.is_dir():
        raise CheckpointError(f"{d}: not a directory; pass an ELMoForManyLangs model directory")
    cfg, model_json = manylangs_config(d)
    chars = read_dic(d / "char.dic", LEXICON_SPECIALS)
    words = read_dic(d / "word.dic", WORD_SPECIALS) if cfg.word_dim else None
    tok = safe_load(d / "token_embedder.pkl", "ELMoForManyLangs token embedder")
    enc = safe_load(d / "encoder.pkl", "ELMoForManyLangs encoder")
    if not (isinstance(tok, dict) and isinstance(enc, dict)):
        raise CheckpointError(f"{d}: token_embedder.pkl and encoder.pkl must hold state dicts")
    char_rows = tok.get("char_emb_layer.embedding.weight")
    word_rows = tok.get("word_emb_layer.embedding.weight")
    cfg.num_chars = int(char_rows.shape[0]) if char_rows is not None else 0
    cfg.word_vocab = int(word_rows.shape[0]) if (cfg.word_dim and word_rows is not None) else 0
    for table, rows, name in ((chars, cfg.num_chars, "char.dic"), (words or {}, cfg.word_vocab, "word.dic")):
        if table and max(table.values()) >= rows:
            raise CheckpointError(
                f"{d / name}: ids go up to {max(table.values())}, the embedding has {rows} rows; "
                f"are the lexicon and the weights from the same model?"
            )
    state = manylangs_state(tok, enc, cfg)
    files = [d / "config.json", model_json, d / "char.dic", d / "token_embedder.pkl", d / "encoder.pkl"]
    if words is not None:
        files.append(d / "word.dic")
    source = {"kind": "elmoformanylangs", "files": {str(p): sha256_file(p) for p in files}}
    return write_char_bundle(Path(out), cfg, state, source, str(d / "token_embedder.pkl"), chars, words)
