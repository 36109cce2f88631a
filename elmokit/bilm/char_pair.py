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
    keys = ("chars", "max_chars", "char_dim", "filters", "num_highway", "char_activation", "embed_dim")
    keys += ("hidden_size", "num_layers", "residual", "cell_clip", "proj_clip")
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
    if c.word_vocab:
        raise ElmokitError(
            "this biLM's token encoder has a word embedding (ELMoForManyLangs'); elmokit's LMs have none"
        )
    # fmt: off
    cfg = ModelConfig(
        size="imported", cell="lstm", num_layers=c.num_layers, embed_dim=c.projection_dim, hidden_size=c.cells,
        proj_size=c.projection_dim, residual=c.skip_connections, dropout=0.0, head="full",
        cell_clip=c.cell_clip, proj_clip=c.proj_clip, encoder="char_cnn",
        chars="bytes" if c.characters == "elmo-bytes" else "lexicon", max_chars=c.max_chars, char_dim=c.char_dim,
        filters=[list(f) for f in c.filters], num_highway=c.num_highway, char_activation=c.activation,
    )
    # fmt: on
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
