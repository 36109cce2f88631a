"""The character biLM: the original ELMo's architecture, one position per word, imported by ``elmokit import-elmo``.

Each sentence becomes ``<S> w1 ... wn </S>`` (the mapper's sentence tokens); every token is a vector from its
characters (:class:`~elmokit.modules.char_cnn.CharCNN`, computed once per distinct word of a batch); a forward and a
backward LSTMP stack (bilm-tf's clips and skip connections) read the row. Word ``j``'s layer 0 is ``[token;
token]``, its layer ``k`` ``[forward layer k; backward layer k]`` at the word's position; the ``<S>``/``</S>``
positions are dropped. Every layer is ``2D`` wide (``D`` = the projection), the output of a sentence
``(num_layers + 1, words, 2D)``, as elmokit's own biLMs give (:class:`~elmokit.bilm.frozen.FrozenBiLM`).

By default every sentence starts from a zero state (the same vectors in any batch). bilm-tf and AllenNLP carry the
state from one batch to the next, row by row; :class:`CarriedState` does the same for users who need their numbers.

Bundle directory (written by :func:`write_char_bundle`, read by :func:`load_char_bilm`)::

    manifest.json   format "elmokit-charbilm/1", sha256 (naming the model), model (CharBiLMConfig), files (sha256
                    of each file below), source (the imported files and their sha256), layers, dim, versions
    weights.pt      the CharBiLM state dict (loaded with torch.load(weights_only=True))
    char.dic        characters="lexicon" only: ELMoForManyLangs' lexicons (token<TAB>id), copied
    word.dic        the same, when the token encoder has a word embedding
    vocab.txt       when the model came with one: bilm-tf's word vocabulary (UTF-8, one token per line, the line
                    number is the id; <S>, </S> and <UNK> among them), the rows of the softmax

The softmax (``model.softmax``): ``"none"`` (what bilm-tf's ``dump_weights`` leaves: it skips every variable named
``softmax``), ``"shared"`` (one ``(V, D)`` softmax read by both directions, as bilm-tf trains it: its
``softmax/W`` and ``softmax/b``) or ``"per-direction"`` (one per direction, as elmokit's separately pretrained LMs
have); ``model.vocab_size`` is its rows ``V`` (0 without one). State keys ``softmax_forward.weight`` ``(V, D)``,
``softmax_forward.bias`` ``(V,)`` and, per direction, ``softmax_backward.*``. A manifest without these keys (written
before they existed) is a model without a softmax; a model without one is written without them (and its ``sha256``
is the one it had before), so that older elmokit versions still read it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from elmokit.bilm.frozen import FrozenBiLM, padded_rows
from elmokit.core.choices import POOLINGS
from elmokit.core.errors import CheckpointError
from elmokit.core.files import (
    atomic_dir,
    commit_dir,
    removed_on_disk_error,
    safe_load,
    save_tensors,
    verify_files,
    versions,
    write_json,
)
from elmokit.core.textfile import sha256_file
from elmokit.modules.char_cnn import ACTIVATIONS, CharCNN
from elmokit.modules.characters import LEXICON_SPECIALS, WORD_SPECIALS, ElmoBytes, ManyLangsLexicon, read_dic, write_dic
from elmokit.modules.recurrent import RecurrentStack, State

CHAR_BUNDLE_FORMAT = "elmokit-charbilm/1"
CHARACTERS = ("elmo-bytes", "lexicon")
SOFTMAXES = ("none", "shared", "per-direction")
VOCAB_SPECIALS = ("<S>", "</S>", "<UNK>")  # what bilm-tf's vocabulary must hold (its Vocabulary(validate_file=True))


@dataclass
class CharBiLMConfig:
    """The shape of a character biLM (what ``options.json`` or ELMoForManyLangs' config says, in one form)."""

    characters: str  # how words become ids: elmo-bytes (bilm-tf, AllenNLP) | lexicon (ELMoForManyLangs)
    max_chars: int  # character ids per word (50)
    num_chars: int  # rows of the character embedding
    char_dim: int
    filters: list[list[int]]  # [[width, count], ...]
    num_highway: int
    activation: str  # of the convolutions: relu | tanh
    projection_dim: int  # D: the token vector and every LSTM layer's output
    cells: int  # LSTM cells per layer
    num_layers: int  # LSTM layers per direction
    cell_clip: float = 0.0  # 0 = off
    proj_clip: float = 0.0
    skip_connections: bool = False  # layer k > 0 adds its input to its output
    word_vocab: int = 0  # rows of a word embedding beside the characters (ELMoForManyLangs), 0 = none
    word_dim: int = 0
    vocab_size: int = 0  # V: rows of the softmax (the words of vocab.txt), 0 = none
    softmax: str = "none"  # none | shared (one for both directions, as bilm-tf trains) | per-direction


@dataclass
class CarriedState:
    """bilm-tf's and AllenNLP's stateful mode: the LSTM state each batch row leaves, for the same row of the next
    batch (a row's first sentence starts from zeros)."""

    forward: dict[int, State] = field(default_factory=dict)
    backward: dict[int, State] = field(default_factory=dict)


class CharBiLM(FrozenBiLM):
    """A frozen character biLM (see the module docstring).

    Args:
        cfg: its shape.
        mapper: :class:`~elmokit.modules.characters.ElmoBytes` or :class:`~elmokit.modules.characters.ManyLangsLexicon`.
        sha256: names the model (the bundle's).
        words: bilm-tf's word vocabulary (id = index), when the model came with one: the softmax's rows.
    """

    supports_stateful = True
    # 3,000 positions hold 128 sentences of 20 words: the published shape's LSTM products run much faster at 128 rows
    # than at 32 (scripts/bench_elmo.py; recipes/README.md)
    batch_tokens = 3000

    def __init__(
        self,
        cfg: CharBiLMConfig,
        mapper: ElmoBytes | ManyLangsLexicon,
        sha256: str = "",
        words: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        P = cfg.projection_dim
        self.token_encoder = CharCNN(
            cfg.num_chars,
            cfg.char_dim,
            [tuple(f) for f in cfg.filters],
            cfg.num_highway,
            P,
            cfg.activation,
            cfg.word_vocab,
            cfg.word_dim,
        )

        def stack() -> RecurrentStack:
            return RecurrentStack(
                "lstm", P, cfg.cells, cfg.num_layers, P, cfg.skip_connections, 0.0, "auto", cfg.cell_clip, cfg.proj_clip
            )

        self.forward_rnn, self.backward_rnn = stack(), stack()
        if cfg.softmax != "none":  # logits = top layer @ W^T + b, W (V, D) as bilm-tf's softmax/W
            self.softmax_forward = nn.Linear(P, cfg.vocab_size)
            if cfg.softmax == "per-direction":
                self.softmax_backward = nn.Linear(P, cfg.vocab_size)
        self.words: list[str] = list(words or [])
        self._word_ids = {w: i for i, w in enumerate(self.words)}  # a repeated token: its last line, as bilm-tf's
        self.vocab = mapper
        self.sha256 = sha256
        self.dim = P
        self.num_layers = cfg.num_layers + 1
        self._start_cache: dict[str, State] = {}  # per direction: the state after its first token, from zero
        # per direction, the LM's last validation record (a pair pretrained here: what `fit` compares with)
        self.own_valid: dict[str, dict] = {}
        self.freeze()

    @property
    def has_softmax(self) -> bool:
        """Whether the model kept its softmax (and the vocabulary naming its rows)."""
        return self.cfg.softmax != "none"

    def softmax_head(self, direction: str) -> nn.Linear:
        """The softmax a direction's top layer is read by: ``(D,) -> (V,)`` logits over :attr:`words`.

        Raises:
            ValueError: an unknown direction, or a model without a softmax.
        """
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be forward or backward, got {direction!r}")
        if not self.has_softmax:
            raise ValueError("this biLM kept no softmax (model.softmax is 'none')")
        if direction == "backward" and self.cfg.softmax == "per-direction":
            return self.softmax_backward
        return self.softmax_forward

    def word_to_id(self, word: str) -> int:
        """The id of ``word`` in :attr:`words` (bilm-tf's rule: ``<UNK>``'s for a word it does not hold).

        Raises:
            ValueError: a model without a vocabulary.
        """
        if not self.words:
            raise ValueError("this biLM kept no word vocabulary")
        return self._word_ids.get(word, self._word_ids.get("<UNK>", -1))

    def pieces(self, sentences: list[list[str]]) -> list[list[str]]:
        """What :meth:`encode_words` reads of each sentence: its words (one position each)."""
        return sentences

    def sequence_lengths(self, pieces: list[list[str]]) -> list[int]:
        """Positions each sentence takes in a row: its words, ``<S>`` and ``</S>``."""
        return [len(p) + 2 for p in pieces]

    def token_vectors(self, words: list[str]) -> Tensor:
        """Layer 0 before it is doubled: ``(len(words), D)`` token vectors of distinct words."""
        m = self.vocab
        chars = torch.from_numpy(np.stack([m.chars(w) for w in words])).to(self.device)  # (U, max_chars)
        ids = torch.tensor([m.word_id(w) for w in words], device=self.device) if m.has_words else None  # (U,)
        return self.token_encoder(chars, ids, m.pad_id)  # (U, D)

    @torch.no_grad()
    def encode_words(
        self,
        rows: list[list[list[str]]],
        pooling: str = "edges",
        pieces: list | None = None,
        carry: CarriedState | None = None,
    ) -> Tensor:
        """Both directions over rows of sentences (see :meth:`FrozenBiLM.encode_rows`), every word of every row back
        to back, in order (rows, sentences, words).

        Args:
            rows: ``batch`` rows, each a list of sentences (each wrapped in ``<S>`` … ``</S>``), each a list of words.
            pooling: accepted for the interface; a word has one position, so every pooling gives the same vectors.
            pieces: unused (the words are what is read).
            carry: stateful mode: row ``r`` starts from ``carry``'s state for row ``r`` and leaves its final state
                there (each row then runs alone, for the state at its own last position).

        Returns:
            ``(layers, N, 2D)`` for the ``N`` words of all rows.
        """
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        m, D, device = self.vocab, self.dim, self.device
        table: dict[str, int] = {m.bos_token: 0, m.eos_token: 1}  # distinct tokens of the batch
        seqs: list[list[int]] = []  # per row: token rows
        where: list[tuple[int, int]] = []  # (row, position) of every word, in output order
        for r, row in enumerate(rows):
            seq: list[int] = []
            for sent in row:
                seq.append(0)
                for w in sent:
                    where.append((r, len(seq)))
                    seq.append(table.setdefault(w, len(table)))
                seq.append(1)
            seqs.append(seq)
        if not where:
            return torch.zeros(self.num_layers, 0, 2 * D, device=device)
        tok = torch.cat([self.token_vectors(list(table)), torch.zeros(1, D, device=device)])  # (U + 1, D); U = padding
        # A row starts with <S> and ends with </S>, and no word is read at either: without a carried state, each
        # direction starts from the state its first token leaves (the same for every row, computed once) and skips
        # the last (the same numbers, two steps fewer). A carried state needs every step, for the state after </S>.
        trim = 1 if carry is None else 0
        seqs = [q[trim : len(q) - trim] for q in seqs]
        fwd, bwd, n = padded_rows(seqs, len(table))  # (B, L), (B, L), (B,) positions read per row
        B, L = fwd.shape
        x_f = tok[torch.from_numpy(fwd.T).to(device)]  # (L, B, D)
        x_b = tok[torch.from_numpy(bwd.T).to(device)]
        if carry is None:
            f_state, b_state = self._start_state("forward", tok[0], B), self._start_state("backward", tok[1], B)
            f_out, b_out = self.run_stacks(self.forward_rnn, self.backward_rnn, x_f, x_b, f_state, b_state)
        else:
            f_out, b_out = self._run_carried(x_f, x_b, n, carry)
        rows_i = torch.tensor([r for r, _ in where], device=device)
        pos_f = torch.tensor([p - trim for _, p in where], device=device)  # (N,) forward step of each word
        pos_b = torch.from_numpy(n).to(device)[rows_i] - 1 - pos_f  # the same position in the reversed row
        fi, bi = pos_f * B + rows_i, pos_b * B + rows_i  # flat indices into (L * B) rows
        out = torch.empty(self.num_layers, len(where), 2 * D, device=device)  # (layers, N, 2D)
        out[0, :, :D] = x_f.reshape(L * B, D).index_select(0, fi)  # (L * B, D) -> (N, D)
        out[0, :, D:] = out[0, :, :D]
        for k, (fl, bl) in enumerate(zip(f_out, b_out), 1):  # each (L, B, D)
            out[k, :, :D] = fl.reshape(L * B, D).index_select(0, fi)
            out[k, :, D:] = bl.reshape(L * B, D).index_select(0, bi)
        return out

    def _start_state(self, direction: str, first: Tensor, batch: int) -> State:
        """The state a direction is in after reading its first token (``<S>`` forward, ``</S>`` backward, vector
        ``first`` ``(D,)``) from zero, for ``batch`` rows (computed once)."""
        if direction not in self._start_cache:
            rnn = self.forward_rnn if direction == "forward" else self.backward_rnn
            self._start_cache[direction] = rnn(first.view(1, 1, -1))[1]  # per layer (h, c), each (1, dim)
        return self.rows_of(self._start_cache[direction], batch)

    def _run_carried(
        self, x_f: Tensor, x_b: Tensor, n: np.ndarray, carry: CarriedState
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Stateful mode: each row alone from its carried state (its final state is then the one at its own last
        position, as bilm-tf's and AllenNLP's are).

        Returns:
            Per direction, per layer, ``(L, B, D)`` (zeros past each row's end).
        """
        L, B, D = x_f.shape
        f_out = [x_f.new_zeros(L, B, D) for _ in range(self.cfg.num_layers)]
        b_out = [x_f.new_zeros(L, B, D) for _ in range(self.cfg.num_layers)]
        for r in range(B):
            t = int(n[r])
            for x, rnn, outs, states in (
                (x_f, self.forward_rnn, f_out, carry.forward),
                (x_b, self.backward_rnn, b_out, carry.backward),
            ):
                layers, states[r] = rnn(x[:t, r : r + 1], states.get(r))  # per layer (t, 1, D)
                for k, o in enumerate(layers):
                    outs[k][:t, r] = o[:, 0]
        return f_out, b_out


# --- the bundle -----------------------------------------------------------------------------------------------
# least value of each integer field (a character id table needs begin, end and one character: max_chars >= 3)
CONFIG_INTS = {
    "max_chars": 3,
    "num_chars": 1,
    "char_dim": 1,
    "num_highway": 0,
    "projection_dim": 1,
    "cells": 1,
    "num_layers": 1,
    "word_vocab": 0,
    "word_dim": 0,
    "vocab_size": 0,
}
NEW_KEYS = {"vocab_size": 0, "softmax": "none"}  # written only when not these (older versions read the rest)


def check_config(cfg: CharBiLMConfig, where: str) -> None:
    """Refuse a config whose values have the wrong type or sign (a manifest's ``model``, or an importer's result),
    naming the key: what :class:`CharBiLM` would otherwise build wrong, or crash on later.

    Raises:
        CheckpointError: ``WHERE: model.KEY must be ..., got VALUE``.
    """

    def bad(key: str, want: str) -> CheckpointError:
        return CheckpointError(
            f"{where}: model.{key} must be {want}, got {getattr(cfg, key)!r:.80}; the model's description is "
            f"corrupt: import the model again"
        )

    if cfg.characters not in CHARACTERS:
        raise CheckpointError(f"{where}: characters must be one of {CHARACTERS}, got {cfg.characters!r:.80}")
    for key, least in CONFIG_INTS.items():
        v = getattr(cfg, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < least:
            raise bad(key, f"an integer >= {least}")
    for key in ("cell_clip", "proj_clip"):
        v = getattr(cfg, key)
        if (
            not isinstance(v, (int, float))
            or isinstance(v, bool)
            or (isinstance(v, float) and not math.isfinite(v))
            or v < 0
        ):
            raise bad(key, "a number >= 0 (0: no clipping)")
    if not isinstance(cfg.skip_connections, bool):
        raise bad("skip_connections", "true or false")
    if cfg.activation not in ACTIVATIONS:
        raise bad("activation", f"one of {ACTIVATIONS}")
    f = cfg.filters
    if not (
        isinstance(f, list)
        and f
        and all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in p)
            for p in f
        )
    ):
        raise bad("filters", "a list of [width, count] pairs of positive integers")
    if max(w for w, _ in f) > cfg.max_chars:
        raise bad("filters", f"no wider than max_chars ({cfg.max_chars})")
    if cfg.softmax not in SOFTMAXES:
        raise bad("softmax", f"one of {', '.join(SOFTMAXES)}")
    if (cfg.softmax == "none") != (cfg.vocab_size == 0):
        raise bad(
            "vocab_size",
            f"0 with softmax 'none' and the softmax's rows (>= 1) otherwise (softmax is {cfg.softmax!r})",
        )


def model_dict(cfg: CharBiLMConfig) -> dict:
    """The manifest's ``model``: the config's fields, without the softmax's while there is none (so a model without
    one has the manifest, and the ``sha256``, it had before they existed)."""
    d = dataclasses.asdict(cfg)
    if all(d[k] == v for k, v in NEW_KEYS.items()):
        for k in NEW_KEYS:
            del d[k]
    return d


def read_vocab_txt(path: Path, where: str) -> list[str]:
    """A bundle's ``vocab.txt`` (as :func:`write_char_bundle` wrote it: one token per line, each line ended).

    Raises:
        CheckpointError: a file that is not UTF-8, or not ended by a line end.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CheckpointError(f"{path}:{line}: not UTF-8; {where}") from None
    if text and not text.endswith("\n"):
        raise CheckpointError(f"{path}: its last line has no line end (the file is truncated); {where}")
    return text.split("\n")[:-1]


def check_vocab(words: list[str], cfg: CharBiLMConfig, where: str) -> None:
    """Refuse a vocabulary that cannot name the softmax's rows: another count than ``model.vocab_size``, a token
    with a line end (the file could not hold it), or one of ``<S>``, ``</S>``, ``<UNK>`` missing.

    Raises:
        CheckpointError: ``WHERE: ...``, naming the manifest key or the token.
    """
    if cfg.softmax != "none" and len(words) != cfg.vocab_size:
        raise CheckpointError(
            f"{where}: the vocabulary has {len(words)} words, model.vocab_size (the softmax's rows) is "
            f"{cfg.vocab_size}; are the vocabulary and the weights from the same model?"
        )
    bad = next((w for w in words if "\n" in w or "\r" in w), None)
    if bad is not None:
        raise CheckpointError(f"{where}: the token {bad!r:.60} holds a line end; a vocabulary file cannot hold it")
    missing = [s for s in VOCAB_SPECIALS if s not in set(words)]
    if missing:
        raise CheckpointError(
            f"{where}: the vocabulary has no {', '.join(missing)}; bilm-tf's vocabulary holds "
            f"{', '.join(VOCAB_SPECIALS)} (is this the model's vocab.txt?)"
        )


def config_from_dict(d: dict, where: str) -> CharBiLMConfig:
    """A :class:`CharBiLMConfig` from a manifest's ``model``, refusing unknown, missing or ill-typed keys."""
    if not isinstance(d, dict):
        raise CheckpointError(f"{where}: 'model' must be an object, got {type(d).__name__}; the bundle is corrupt")
    names = {f.name for f in dataclasses.fields(CharBiLMConfig)}
    unknown = sorted(map(str, set(d) - names))
    if unknown:
        raise CheckpointError(f"{where}: unknown model keys {', '.join(unknown)}; written by a newer elmokit?")
    try:
        cfg = CharBiLMConfig(**d)
    except TypeError as e:
        raise CheckpointError(f"{where}: {e}; the manifest is incomplete") from None
    check_config(cfg, where)
    return cfg


def write_char_bundle(
    out: Path,
    cfg: CharBiLMConfig,
    state: dict[str, Tensor],
    source: dict,
    where: str,
    chars: dict[str, int] | None = None,
    words: dict[str, int] | None = None,
    vocab: list[str] | None = None,
) -> Path:
    """Write a bundle directory (temporary name, renamed once complete), after checking that the weights fit
    ``cfg`` by loading them into a :class:`CharBiLM`.

    Args:
        out: the bundle directory.
        cfg: the model's shape; state: its state dict (with ``softmax_*`` when ``cfg.softmax`` says so).
        source: what it was imported from (``kind`` and ``files``: name → sha256), recorded in the manifest.
        where: the imported weights' path, for errors.
        chars, words: the lexicons (``characters="lexicon"``).
        vocab: bilm-tf's word vocabulary (id = index), written as ``vocab.txt``; needed with a softmax (its rows).

    Raises:
        CheckpointError: weights that do not fit the shape (the message names the tensor), a softmax without its
            vocabulary or with one of another size.
    """
    check_config(cfg, where)
    if cfg.softmax != "none" and vocab is None:
        raise CheckpointError(f"{where}: a softmax without the vocabulary naming its rows; pass the model's vocab.txt")
    if vocab is not None:
        check_vocab(vocab, cfg, where)
    mapper = (
        ElmoBytes(cfg.max_chars) if cfg.characters == "elmo-bytes" else ManyLangsLexicon(chars, words, cfg.max_chars)
    )
    with torch.device("meta"):  # shapes only: no second copy of the weights in memory
        model = CharBiLM(cfg, mapper)
    check_state(model, state, where)
    tmp = atomic_dir(out)
    with removed_on_disk_error(tmp, out, "", "free some space and run the import again"):
        save_tensors(state, tmp / "weights.pt")  # straight to the file: no second copy of the weights in memory
        names = ["weights.pt"]
        if chars is not None:
            write_dic(tmp / "char.dic", chars)
            names.append("char.dic")
        if words is not None:
            write_dic(tmp / "word.dic", words)
            names.append("word.dic")
        if vocab is not None:
            (tmp / "vocab.txt").write_bytes("".join(f"{w}\n" for w in vocab).encode("utf-8"))
            names.append("vocab.txt")
        files = {n: sha256_file(tmp / n) for n in names}
        sha = hashlib.sha256(json.dumps([model_dict(cfg), files], sort_keys=True).encode()).hexdigest()
        write_json(
            tmp / "manifest.json",
            {
                "format": CHAR_BUNDLE_FORMAT,
                "sha256": sha,
                "model": model_dict(cfg),
                "files": files,
                "source": source,
                "layers": model.num_layers,
                "dim": 2 * model.dim,
                "vocab_sha256": mapper.sha256,
                "versions": versions(),
            },
        )
    commit_dir(tmp, out)
    return out


def check_state(model: CharBiLM, state: dict[str, Tensor], where: str) -> None:
    """Refuse a state dict that does not fit ``model``, naming the first tensor that does not."""
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        raise CheckpointError(
            f"{where}: weights do not fit the options (missing {missing[:3]}, unexpected "
            f"{extra[:3]}); are the options and weights from the same model?"
        )
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{where}: {k} has shape {tuple(state[k].shape)}, the options make it "
                f"{tuple(v.shape)}; are the options and weights from the same model?"
            )


def load_char_bilm(path: Path, manifest: dict, device: str = "cpu") -> CharBiLM:
    """Load a bundle whose manifest has been read (``elmokit.bilm.bundle.load_bilm`` dispatches here).

    Raises:
        CheckpointError: a missing or changed file, or a manifest this version cannot read.
    """
    where = str(path / "manifest.json")
    cfg = config_from_dict(manifest.get("model", {}), where)
    sha = manifest.get("sha256")
    if not (isinstance(sha, str) and sha):
        raise CheckpointError(f"{where}: no 'sha256' naming the model (got {sha!r:.80}); the bundle is corrupt")
    lexicons = ("char.dic", "word.dic") if cfg.word_vocab else ("char.dic",)
    required = ("weights.pt", *(lexicons if cfg.characters == "lexicon" else ()))
    verify_files(path, manifest, "; import it again", required + (("vocab.txt",) if cfg.softmax != "none" else ()))
    vocab = None
    if "vocab.txt" in manifest["files"]:
        vocab = read_vocab_txt(path / "vocab.txt", "import the model again")
        check_vocab(vocab, cfg, str(path / "vocab.txt"))
    if cfg.characters == "elmo-bytes":
        mapper: ElmoBytes | ManyLangsLexicon = ElmoBytes(cfg.max_chars)
    else:
        words = read_dic(path / "word.dic", WORD_SPECIALS) if cfg.word_vocab else None
        mapper = ManyLangsLexicon(read_dic(path / "char.dic", LEXICON_SPECIALS), words, cfg.max_chars)
    with torch.device("meta"):  # built without weights; the loaded tensors become its parameters
        model = CharBiLM(cfg, mapper, sha, vocab)
        model.own_valid = dict((manifest.get("source") or {}).get("final_valid") or {})
    state = safe_load(path / "weights.pt", "weights")
    check_state(model, state, str(path / "weights.pt"))
    model.load_state_dict(state, assign=True)
    model.freeze()
    return model.to(device)
