"""``elmokit substitutes``: what a biLM's two language models expect at one position of a sentence.

simple_elmo's "substitutes" (``ElmoModel.get_elmo_substitutes``, ltgoslo/simple_elmo ``simple_elmo/elmo_helpers.py``)
give, for every word of a sentence, the forward LM's most likely words at its place given the words before it, and
the backward LM's given the words after it, each direction on its own: the top-N rows of the full softmax
``top layer · W^T + b`` (bilm-tf's ``softmax/W``, ``softmax/b``), read from the forward LM's top layer at the
position before the word (``<S>`` for the first word) and the backward LM's at the position after it (``</S>`` for
the last). simple_elmo leaves ``<S>`` and ``</S>`` out of the candidates (``nodelimiters=True``: their scores set to
0), and needs the TensorFlow checkpoint of a model (``load(..., full=True)``), not its ``model.hdf5``. It does not
combine the two directions; ltgoslo's BLiMP scripts built on it do, as the mean of the two log-probabilities,
which ranks candidates as their product does. Here ``both`` is that: ``exp((log p_forward + log p_backward) / 2)``,
the geometric mean of the two probabilities.

Each sentence is read from a zero state (elmokit's default; simple_elmo carries the state from batch to batch).

Two kinds of biLM have a softmax:

- a character biLM (:class:`~elmokit.bilm.charbilm.CharBiLM`) whose model came with one (``import-elmo`` of weights
  holding ``softmax/W`` and ``softmax/b`` with their ``vocab.txt``): the candidates are words;
- elmokit's own biLM (:class:`~elmokit.bilm.bundle.BiLM`): the candidates are sentencepiece pieces. The forward LM
  predicts the word's first piece (after the sentence's ``</s>`` and the pieces before it), the backward LM its last
  piece; ``both`` multiplies the two over the same piece, which means most where the word is one piece.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from elmokit.bilm.frozen import FrozenBiLM
from elmokit.core.errors import ElmokitError

NO_SOFTMAX = (
    "keeps no softmax, so its language models' most likely words cannot be computed: an ELMo imported from "
    "model.hdf5 has none (bilm-tf's dump_weights leaves it out). Use a biLM trained with elmokit (`elmokit bundle "
    "FWD BWD`), or import weights that hold softmax/W and softmax/b together with the model's vocab.txt"
)


@dataclass
class Candidate:
    """One predicted word (or piece) and its probability."""

    token: str
    id: int
    probability: float


@dataclass
class Substitutes:
    """The two language models' most likely words at one position (see the module docstring).

    Attributes:
        words: the sentence's words.
        position: the position asked about (0-based over ``words``).
        unit: ``"word"`` (a character biLM's vocabulary) or ``"piece"`` (elmokit's sentencepiece biLM).
        forward: the forward LM's top candidates, given ``words[:position]``.
        backward: the backward LM's, given ``words[position + 1:]``.
        both: ranked by the geometric mean of the two probabilities (their product's order).
        pieces: ``unit="piece"``: the word's own pieces (the forward LM predicts the first, the backward the last).
        note: what the numbers are, in a sentence.
    """

    words: list[str]
    position: int
    unit: str
    forward: list[Candidate]
    backward: list[Candidate]
    both: list[Candidate]
    pieces: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def word(self) -> str:
        return self.words[self.position]

    def to_dict(self) -> dict:
        """A JSON-ready dict (``--json``)."""

        def rows(cands: list[Candidate]) -> list[dict]:
            return [{"token": c.token, "id": c.id, "probability": c.probability} for c in cands]

        out = {
            "words": self.words,
            "position": self.position,
            "word": self.word,
            "unit": self.unit,
            "forward": rows(self.forward),
            "backward": rows(self.backward),
            "both": rows(self.both),
            "note": self.note,
        }
        if self.pieces:
            out["pieces"] = self.pieces
        return out


def _char_states(bilm, words: list[str], position: int) -> tuple[Tensor, Tensor]:
    """A character biLM's forward top layer before word ``position`` and backward top layer after it, ``(D,)`` each."""
    m = bilm.vocab
    seq = [m.bos_token, *words, m.eos_token]
    distinct = list(dict.fromkeys(seq))
    tok = bilm.token_vectors(distinct)  # (U, D)
    x = tok[torch.tensor([distinct.index(t) for t in seq], device=tok.device)].unsqueeze(1)  # (L, 1, D)
    f_top = bilm.forward_rnn(x)[0][-1][:, 0]  # (L, D): position t has read seq[: t + 1]
    b_top = bilm.backward_rnn(x.flip(0))[0][-1][:, 0].flip(0)  # (L, D), in sentence order: read seq[t:]
    return f_top[position], b_top[position + 2]  # word `position` is seq[position + 1]


def _piece_states(bilm, words: list[str], position: int) -> tuple[Tensor, Tensor, list[int]]:
    """elmokit's biLM: the forward LM's top layer before the word's first piece, the backward LM's after its last,
    ``(D,)`` each, and the word's piece ids."""
    from elmokit.lm.vocab import EOS_ID

    ids = bilm.pieces([words])[0]
    first = 1 + sum(len(w) for w in ids[:position])  # in `</s> pieces </s>`
    last = first + len(ids[position]) - 1
    seq = torch.tensor([[EOS_ID, *(i for w in ids for i in w), EOS_ID]], device=bilm.device)  # (1, L)
    f_top = bilm.forward_lm.encode(seq)[0][-1][:, 0]  # (L, D)
    b_top = bilm.backward_lm.encode(seq.flip(1))[0][-1][:, 0].flip(0)  # (L, D), in sentence order
    return f_top[first - 1], b_top[last + 1], ids[position]


def _top(probs: Tensor, keep: Tensor, n: int, name) -> list[Candidate]:
    """The ``n`` most probable ids among ``keep`` (bool ``(V,)``)."""
    masked = torch.where(keep, probs, torch.full_like(probs, -1.0))
    k = min(n, int(keep.sum()))
    values, idx = masked.topk(k)
    return [Candidate(name(int(i)), int(i), float(v)) for v, i in zip(values, idx)]


@torch.no_grad()
def substitutes(
    bilm: FrozenBiLM, words: list[str], position: int, top: int = 10, delimiters: bool = False, name: str = "the biLM"
) -> Substitutes:
    """The forward and backward LMs' most likely words at ``words[position]`` (see the module docstring).

    Args:
        bilm: a biLM with a softmax (:attr:`~elmokit.bilm.frozen.FrozenBiLM.has_softmax`).
        words: the sentence's words.
        position: which word (0-based).
        top: candidates per list.
        delimiters: keep the sentence delimiters among the candidates (``<S>``/``</S>``; for pieces ``<s>``,
            ``</s>``, ``<pad>``); simple_elmo leaves them out. Probabilities are the full softmax's either way.
        name: how errors name the biLM (its path).

    Returns:
        :class:`Substitutes`.

    Raises:
        ElmokitError: a biLM without a softmax, an empty sentence, a position outside it, ``top`` under 1.
    """
    from elmokit.bilm.bundle import BiLM
    from elmokit.bilm.charbilm import CharBiLM

    if not bilm.has_softmax:
        raise ElmokitError(f"{name}: {NO_SOFTMAX}")
    if not words:
        raise ElmokitError("the sentence has no words: pass the sentence whose word to look at")
    if not 0 <= position < len(words):
        raise ElmokitError(
            f"position {position}: the sentence has {len(words)} word{'s' * (len(words) != 1)}, so 0 to "
            f"{len(words) - 1} (0 is the first)"
        )
    if top < 1:
        raise ElmokitError(f"top {top}: must be 1 or more")
    pieces: list[str] = []
    if isinstance(bilm, CharBiLM):
        h_f, h_b = _char_states(bilm, words, position)
        logits_f, logits_b = bilm.softmax_head("forward")(h_f), bilm.softmax_head("backward")(h_b)  # (V,) each
        vocab = bilm.words
        unit, special = "word", {i for i, w in enumerate(vocab) if w in ("<S>", "</S>")}

        def token(i: int) -> str:
            return vocab[i]

        note = "words of the model's vocabulary; each direction's probability from its full softmax"
    elif isinstance(bilm, BiLM) and getattr(bilm.forward_lm, "embedding", None) is not None:
        from elmokit.lm.vocab import BOS_ID, EOS_ID, PAD_ID

        h_f, h_b, ids = _piece_states(bilm, words, position)
        logits_f = bilm.forward_lm.head.full_logits(h_f[None])[0]  # (V,)
        logits_b = bilm.backward_lm.head.full_logits(h_b[None])[0]
        sp = bilm.vocab.sp
        unit, special = "piece", {BOS_ID, EOS_ID, PAD_ID}

        def token(i: int) -> str:
            return sp.id_to_piece(i)

        pieces = [token(i) for i in ids]
        note = (
            f"sentencepiece pieces, not words: the forward LM predicts the word's first piece ({pieces[0]}), the "
            f"backward LM its last ({pieces[-1]}); 'both' multiplies them over one piece, which means most for a "
            f"one-piece word"
        )
    else:
        raise ElmokitError(f"{name}: a {type(bilm).__name__}, whose language models `substitutes` cannot read")
    log_f = torch.log_softmax(logits_f.double(), -1)  # (V,)
    log_b = torch.log_softmax(logits_b.double(), -1)
    p_f, p_b = log_f.exp(), log_b.exp()
    p_both = torch.exp((log_f + log_b) / 2)  # the geometric mean: the product's order
    keep = torch.ones_like(p_f, dtype=torch.bool)
    if not delimiters and special:
        keep[torch.tensor(sorted(special), device=keep.device)] = False
    return Substitutes(
        words=list(words),
        position=position,
        unit=unit,
        forward=_top(p_f, keep, top, token),
        backward=_top(p_b, keep, top, token),
        both=_top(p_both, keep, top, token),
        pieces=pieces,
        note=note,
    )
