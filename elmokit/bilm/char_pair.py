"""A forward and a backward character-CNN LM (``model.encoder=char_cnn``) as one character biLM: the layout of
bilm-tf's files, so that ``elmokit export-elmo`` writes what every ELMo tool loads.

bilm-tf's files hold one token encoder for both directions. The two LMs are pretrained separately, and the backward
one takes the forward's encoder (``model.encoder_from=FWD_RUN``, kept frozen by default), so the pair holds the same
encoder twice; :func:`char_pair` checks that and refuses a pair whose encoders differ, saying how to fix it. With
``encoder="forward"`` or ``"backward"`` one LM's encoder serves both (a backward LM trained with
``model.train_encoder=true`` improved the forward's: ``"backward"`` writes it back). Each LM keeps its own softmax
(``model.softmax: per-direction``) over the word vocabulary, which the bundle keeps as ``vocab.txt``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from elmokit.bilm.charbilm import CharBiLMConfig
from elmokit.core.errors import CheckpointError
from elmokit.core.textfile import sha256_file
from elmokit.lm.model import ENCODER_KEYS
from elmokit.lm.model_dir import LoadedLM
from elmokit.modules.characters import ManyLangsLexicon

ENCODER_CHOICES = ("same", "forward", "backward")


def _same_encoder(f: LoadedLM, b: LoadedLM) -> bool:
    fs, bs = f.model.token_encoder.state_dict(), b.model.token_encoder.state_dict()
    return fs.keys() == bs.keys() and all(torch.equal(fs[k], bs[k]) for k in fs)


def char_pair(
    f: LoadedLM, b: LoadedLM, fwd_path: str, bwd_path: str, encoder: str = "same"
) -> tuple[CharBiLMConfig, dict[str, torch.Tensor]]:
    """The character biLM's shape and weights from two loaded LMs (checked to be a forward and a backward
    ``char_cnn`` LM with the same vocabulary, characters and shape).

    Args:
        f, b: the forward and the backward LM; fwd_path, bwd_path: their paths, for errors.
        encoder: ``same`` (refuse encoders that differ), ``forward`` or ``backward`` (that LM's for both).

    Returns:
        ``(config, state dict)`` of a :class:`~elmokit.bilm.charbilm.CharBiLM` with a per-direction softmax.

    Raises:
        CheckpointError: naming the LM and what does not fit, with what to do.
    """
    if encoder not in ENCODER_CHOICES:
        raise CheckpointError(f"--encoder must be one of {', '.join(ENCODER_CHOICES)}, got {encoder!r}")
    fm, bm = f.cfg.model, b.cfg.model
    for lm, path in ((fm, fwd_path), (bm, bwd_path)):
        if lm.encoder != "char_cnn":
            raise CheckpointError(
                f"{path}: a {lm.encoder} LM; pair it with another {lm.encoder} LM (the other is a char_cnn LM)"
            )
        if lm.cell != "lstm" or lm.proj_size != lm.embed_dim:
            raise CheckpointError(
                f"{path}: the character biLM is an LSTMP whose projection equals the token vector (bilm-tf's shape); "
                f"this LM has cell {lm.cell}, proj_size {lm.proj_size}, embed_dim {lm.embed_dim}"
            )
    keys = (*ENCODER_KEYS, "hidden_size", "num_layers", "residual", "cell_clip", "proj_clip")
    for key in keys:
        if getattr(fm, key) != getattr(bm, key):
            raise CheckpointError(
                f"{fwd_path} has model.{key}={getattr(fm, key)!r}, {bwd_path} {getattr(bm, key)!r}; pair two LMs "
                f"of the same shape"
            )
    if f.mapper.sha256 != b.mapper.sha256:
        raise CheckpointError(f"{fwd_path} and {bwd_path} read characters with different lexicons; pair LMs of one run")
    if encoder == "same" and not _same_encoder(f, b):
        raise CheckpointError(
            f"{fwd_path} and {bwd_path} have different token encoders, and the biLM's files hold one: train the "
            f"backward LM with model.encoder_from={fwd_path} (kept frozen), or pass --encoder backward to use the "
            f"backward LM's for both directions (--encoder forward: the forward's)"
        )
    source = b if encoder == "backward" else f
    cfg = CharBiLMConfig(
        characters="elmo-bytes" if fm.chars == "bytes" else "lexicon",
        max_chars=fm.max_chars,
        num_chars=source.model.token_encoder.char_embedding.weight.shape[0],
        char_dim=fm.char_dim,
        filters=[[int(w), int(n)] for w, n in fm.filters],
        num_highway=fm.num_highway,
        activation=fm.char_activation,
        projection_dim=fm.embed_dim,
        cells=fm.hidden_size,
        num_layers=fm.num_layers,
        cell_clip=fm.cell_clip,
        proj_clip=fm.proj_clip,
        skip_connections=fm.residual,
        vocab_size=f.vocab.size,
        softmax="per-direction",
    )
    state: dict[str, torch.Tensor] = {}
    for k, v in source.model.token_encoder.state_dict().items():
        state[f"token_encoder.{k}"] = v
    for prefix, lm in (("forward", f), ("backward", b)):
        for k, v in lm.model.rnn.state_dict().items():
            state[f"{prefix}_rnn.{k}"] = v
        state[f"softmax_{prefix}.weight"] = lm.model.head.weight.detach()
        state[f"softmax_{prefix}.bias"] = lm.model.head.bias.detach()
    return cfg, state


def write_char_pair(f: LoadedLM, b: LoadedLM, out: Path, encoder: str = "same") -> Path:
    """Write the pair as a character biLM bundle (:func:`elmokit.bilm.charbilm.write_char_bundle`)."""
    from elmokit.bilm.charbilm import write_char_bundle

    cfg, state = char_pair(f, b, str(f.path), str(b.path), encoder)
    lexicon = f.mapper.char_ids if isinstance(f.mapper, ManyLangsLexicon) else None
    source = {
        "kind": "elmokit-char-lm-pair",
        "encoder": encoder,
        "files": {str(d / "manifest.json"): sha256_file(d / "manifest.json") for d in (f.path, b.path)},
        # each LM's last validation: what `elmokit fit` compares a text's perplexity with
        "final_valid": {d: lm.manifest["summary"].get("final_valid") for d, lm in (("forward", f), ("backward", b))},
    }
    return write_char_bundle(out, cfg, state, source, str(f.path), chars=lexicon, vocab=list(f.vocab.words))


def load_char_pair(f: LoadedLM, b: LoadedLM, sha256: str, encoder: str = "same"):
    """The pair as a :class:`~elmokit.bilm.charbilm.CharBiLM` in memory (``load_bilm(FWD, BWD)``)."""
    from elmokit.bilm.charbilm import CharBiLM

    cfg, state = char_pair(f, b, str(f.path), str(b.path), encoder)
    model = CharBiLM(cfg, f.mapper, sha256, list(f.vocab.words))
    model.load_state_dict(state)
    model.own_valid = {d: lm.manifest["summary"].get("final_valid") for d, lm in (("forward", f), ("backward", b))}
    return model.to(f.model.head.weight.device)


def direction_lm(bilm, direction: str):
    """One direction of a character biLM that has a softmax, as the LM elmokit pretrains (``model.encoder=char_cnn``,
    sharing the biLM's tensors): what ``fit``, ``evaluate`` and ``adapt`` measure and train.

    Returns:
        ``(LanguageModel, WordVocab)``.

    Raises:
        ElmokitError: a biLM without a softmax, or whose token encoder has a word embedding (ELMoForManyLangs').
    """
    import hashlib

    from elmokit.core.config import ModelConfig
    from elmokit.core.errors import ElmokitError
    from elmokit.lm.model import LanguageModel
    from elmokit.lm.words import WordVocab

    c = bilm.cfg
    if not bilm.has_softmax:
        raise ElmokitError("this biLM kept no softmax: its perplexity cannot be measured nor its LMs trained")
    cfg = ModelConfig(size="imported", dropout=0.0, head="full", **bilm_shape(bilm))
    lm = LanguageModel(cfg, c.vocab_size, num_chars=c.num_chars, char_pad_id=bilm.vocab.pad_id)
    lm.token_encoder = bilm.token_encoder
    lm.rnn = bilm.forward_rnn if direction == "forward" else bilm.backward_rnn
    head = bilm.softmax_head(direction)
    lm.head.weight, lm.head.bias = head.weight, head.bias
    lm.to(head.weight.device).eval()
    text = "".join(f"{w}\n" for w in bilm.words)
    vocab = WordVocab(
        path=Path("vocab.txt"),
        words=list(bilm.words),
        index={w: i for i, w in enumerate(bilm.words)},
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )
    return lm, vocab


# --- fine-tuning a character biLM (the published ELMo, imported): one direction as the LM `elmokit pretrain` trains ---
INIT_DIR = "init-from-bilm"  # in the run directory: the direction as an LM model directory, the run's init_from
SHAPE_KEYS = (  # what a run started from a character biLM takes from it (model.KEY); the others are the run's own
    "encoder", "cell", "chars", "max_chars", "char_dim", "filters", "num_highway", "char_activation", "embed_dim",
    "hidden_size", "proj_size", "num_layers", "residual", "cell_clip", "proj_clip",
)  # fmt: skip


def is_char_bilm(path: str | Path) -> bool:
    """Whether ``path`` is a character biLM bundle (``import-elmo``, or a char_cnn pair bundled here)."""
    import json

    from elmokit.bilm.charbilm import CHAR_BUNDLE_FORMAT

    try:
        manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == CHAR_BUNDLE_FORMAT


def bilm_shape(bilm) -> dict:
    """The model keys (:data:`SHAPE_KEYS`) of one direction of the character biLM ``bilm``, as an LM config has them.

    Raises:
        ElmokitError: a token encoder with a word embedding (ELMoForManyLangs'), which elmokit's LMs have not.
    """
    from elmokit.core.errors import ElmokitError

    c = bilm.cfg
    if c.word_vocab:
        raise ElmokitError(
            "this biLM's token encoder has a word embedding (ELMoForManyLangs'); elmokit's LMs have none, so it "
            "cannot be trained further here"
        )
    # fmt: off
    return {
        "encoder": "char_cnn", "cell": "lstm", "chars": "bytes" if c.characters == "elmo-bytes" else "lexicon",
        "max_chars": c.max_chars, "char_dim": c.char_dim, "filters": [[int(w), int(n)] for w, n in c.filters],
        "num_highway": c.num_highway, "char_activation": c.activation, "embed_dim": c.projection_dim,
        "hidden_size": c.cells, "proj_size": c.projection_dim, "num_layers": c.num_layers,
        "residual": c.skip_connections, "cell_clip": float(c.cell_clip), "proj_clip": float(c.proj_clip),
    }
    # fmt: on


def bilm_overrides(config: str | None, overrides: list[str] | tuple[str, ...], bilm, bilm_path: str) -> list[str]:
    """``overrides`` with the biLM's shape added (``model.KEY=VALUE`` for each of :data:`SHAPE_KEYS`): the run
    takes the biLM's shape, whatever its ``model.size``; a shape key set to another value is refused.

    Raises:
        ConfigError: a conflicting shape key, or a ``data.vocab`` that is not a word vocabulary.
    """
    import json

    from elmokit.core.config import PretrainConfig, build_config, load_raw
    from elmokit.core.errors import ConfigError
    from elmokit.lm.words import is_word_vocab

    raw, where = load_raw(config, overrides)
    given = build_config(PretrainConfig, raw, where)
    shape = bilm_shape(bilm)
    for key in sorted(set((raw.get("model") or {}).keys()) & set(shape)):
        if getattr(given.model, key) != shape[key]:
            raise ConfigError(
                f"{where}: model.{key}={getattr(given.model, key)!r}, but --init-from {bilm_path} has {shape[key]!r}; "
                f"the run takes the biLM's shape: leave model.{key} out"
            )
    vocab = given.data.vocab
    if vocab and not is_word_vocab(vocab):
        raise ConfigError(
            f"data.vocab {vocab}: a character biLM predicts whole words, so the run needs a word vocabulary "
            f"(PREFIX.txt from `elmokit vocab FILE... --out PREFIX --model-type word`), not a sentencepiece model"
        )
    return [*overrides, *(f"model.{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in shape.items())]


def write_direction_lm(bilm, bilm_path: str, direction: str, cfg, out: Path) -> dict:
    """Write ``direction`` of the character biLM as an LM model directory at ``out`` (``cfg``: the run's resolved
    :class:`~elmokit.core.config.PretrainConfig`, in the biLM's shape): its token encoder and LSTM stack, and its
    softmax when it has one over exactly ``cfg.data.vocab``'s words, otherwise a new softmax over them, initialised as
    a fresh run's (the same seed). Returns what it was made from (also in its manifest's ``summary``).

    Raises:
        ConfigError: characters read otherwise than the biLM reads them, or a new softmax without head steps.
    """
    from accelerate.utils import set_seed

    from elmokit.core.config import to_dict
    from elmokit.core.errors import ConfigError
    from elmokit.core.files import atomic_dir, commit_dir
    from elmokit.lm.model import LanguageModel
    from elmokit.lm.model_dir import write_model_files
    from elmokit.lm.words import char_mapper, load_word_vocab, num_chars

    vocab = load_word_vocab(cfg.data.vocab)
    mapper = char_mapper(cfg.model.chars, cfg.model.max_chars, cfg.data.vocab)
    if mapper.sha256 != bilm.vocab.sha256 or num_chars(mapper) != bilm.cfg.num_chars:
        raise ConfigError(
            f"--init-from {bilm_path}: reads characters with another lexicon ({bilm.cfg.num_chars} characters) than "
            f"{cfg.data.vocab}'s ({num_chars(mapper)}); give the vocabulary a copy of the biLM's char.dic"
        )
    keep_head = bilm.has_softmax and list(bilm.words) == list(vocab.words)
    if not keep_head and cfg.train.head_steps == 0:
        why = "has no softmax" if not bilm.has_softmax else "has a softmax over other words than data.vocab's"
        raise ConfigError(
            f"--init-from {bilm_path}: {why}, so the run starts a new one; set train.head_steps (e.g. 200) to "
            f"train it alone first: from step 0, a random softmax's gradients would undo the pretrained LSTMs"
        )
    source = {
        "bilm": str(bilm_path),
        "bilm_sha256": bilm.sha256,
        "direction": direction,
        "softmax": "the biLM's" if keep_head else "new",
        "vocab_sha256": vocab.sha256,
        "seed": cfg.train.seed,
    }
    set_seed(cfg.train.seed)  # as pretrain's _new_model: the new head is the one a fresh run would start from
    lm = LanguageModel(
        cfg.model, vocab.size, seed=cfg.train.seed, num_chars=num_chars(mapper), char_pad_id=mapper.pad_id
    )
    try:
        lm.token_encoder.load_state_dict(bilm.token_encoder.state_dict())
        lm.rnn.load_state_dict((bilm.forward_rnn if direction == "forward" else bilm.backward_rnn).state_dict())
    except RuntimeError as e:
        raise ConfigError(f"--init-from {bilm_path}: its weights do not fit the run's model ({str(e)[:200]})") from None
    if keep_head:
        head = bilm.softmax_head(direction)
        lm.head.weight.data.copy_(head.weight)
        lm.head.bias.data.copy_(head.bias)
    tmp = atomic_dir(out)
    write_model_files(
        tmp, lm.state_dict(), to_dict(cfg), vocab.path, vocab.sha256, direction, vocab.size, {"init_from_bilm": source}
    )
    commit_dir(tmp, out)
    return source


def pretrain_from_bilm(
    config: str | None,
    direction: str,
    out: str | Path,
    overrides: list[str] | tuple[str, ...],
    bilm_path: str,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    resume_from: str | None = None,
) -> Path:
    """``elmokit pretrain --direction D --init-from BILM`` for a character biLM: the run takes the biLM's shape
    (:func:`bilm_overrides`), its direction is written as an LM model directory in the run directory
    (``OUT/init-from-bilm``, :func:`write_direction_lm`, kept), and pretraining starts from it. The biLM's sha256
    and that directory's weights' are in the run's fingerprint, so a resume refuses a changed biLM.

    Returns:
        The model directory ``OUT/model``.

    Raises:
        ElmokitError: what :func:`bilm_overrides`, :func:`write_direction_lm` and pretraining refuse.
    """
    import json
    import shutil

    from elmokit.bilm.charbilm import load_char_bilm
    from elmokit.core.errors import ConfigError, ElmokitError
    from elmokit.lm.checkpoint import list_checkpoints
    from elmokit.lm.pretrain import load_pretrain_config, pretrain

    if not is_char_bilm(bilm_path):
        raise ConfigError(
            f"--init-from {bilm_path}: not a character biLM bundle (`elmokit import-elmo`, `elmokit bundle`)"
        )
    bilm = load_char_bilm(Path(bilm_path), json.loads((Path(bilm_path) / "manifest.json").read_text(encoding="utf-8")))
    if direction not in ("forward", "backward"):
        raise ConfigError(f"--direction must be forward or backward, got {direction!r}")
    run_dir = Path(out).expanduser()
    fresh = not run_dir.exists()
    try:
        full = bilm_overrides(config, overrides, bilm, bilm_path)
        cfg = load_pretrain_config(config, full)
        init = run_dir / INIT_DIR
        try:
            made = json.loads((init / "manifest.json").read_text(encoding="utf-8"))["summary"]["init_from_bilm"]
        except (OSError, ValueError, KeyError, TypeError):
            made = None
        ckpts = list_checkpoints(run_dir) and not overwrite
        wanted = {"bilm_sha256": bilm.sha256, "direction": direction, "seed": cfg.train.seed}
        if made is None or (not ckpts and any(made.get(k) != v for k, v in wanted.items())) or overwrite and not resume:
            write_direction_lm(bilm, bilm_path, direction, cfg, init)  # else kept: the run's start, pinned below
        weights = json.loads((init / "manifest.json").read_text(encoding="utf-8"))["files"]["weights.pt"]
        return pretrain(
            config,
            direction,
            run_dir,
            full,
            resume=resume,
            init_from=str(init),
            progress=progress,
            overwrite=overwrite,
            resume_from=resume_from,
            init_print={"init_bilm_sha256": bilm.sha256, "init_weights_sha256": weights},
        )
    except ElmokitError:
        if fresh and not list_checkpoints(run_dir) and not (run_dir / "model").exists():  # refused: leave nothing
            from elmokit.core.run_guard import release_run_lock

            release_run_lock(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
