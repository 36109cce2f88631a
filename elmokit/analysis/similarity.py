"""``elmokit similarity``: the same word in several sentences, and how alike the biLM's vectors of it are, layer by
layer. The lectures' example of why ELMo exists: "연패" in "삼성, 사상 첫 통합우승 4연패" (four titles in a row) and in
"'18연패' 한화 이글스 무한 추락" (eighteen losses in a row) is one string with two meanings. A static embedding
(layer 0, the token layer) gives it one vector whatever the sentence; the LSTM layers have read the context, so
their vectors of it can differ.

A word is found as a whole whitespace word or, with ``substring``, inside a word (``연패`` in ``4연패``). Its vector:

- for a pieces biLM (:class:`~elmokit.bilm.bundle.BiLM`): the pieces that overlap the match's characters, pooled
  as the biLM pools a word's pieces (:meth:`~elmokit.bilm.bundle.BiLM.piece_layers`); at layer 0 the same pieces
  give the same vector, so cosine 1 wherever the match is cut into the same pieces (the pieces are reported);
- for a character biLM (:class:`~elmokit.bilm.charbilm.CharBiLM`, one position per word): the whole word's, even
  for a substring (the biLM has no position inside a word).

For every pair of sentences, the cosine of those vectors at each layer and at the average of the layers
(:class:`SimilarityResult`; :func:`summary_lines` is the printed table, :func:`write_outputs` the JSON and a heatmap
per layer).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from elmokit.core.choices import POOLINGS
from elmokit.core.errors import ElmokitError

LABEL_CHARS = 40  # characters of a sentence shown as a heatmap label


@dataclass
class Match:
    """Where the word was found in one sentence, and what gave its vector.

    Attributes:
        sentence: the sentence as given.
        word_index: the whitespace word it is in (0-based).
        word: that whitespace word.
        start, end: the match's characters in ``word`` (the whole word without ``substring``).
        occurrence: which of the sentence's matches this is (1-based, left to right).
        occurrences: how many matches the sentence has.
        pieces: the pieces pooled (a pieces biLM), else empty.
        covered: the characters of ``word`` those pieces cover (the whole word for a character biLM).
    """

    sentence: str
    word_index: int
    word: str
    start: int
    end: int
    occurrence: int = 1
    occurrences: int = 1
    pieces: list[str] = field(default_factory=list)
    covered: str = ""


@dataclass
class SimilarityResult:
    """The cosine of the word's vectors between every pair of sentences, per layer.

    Attributes:
        word: the word looked for.
        substring: whether it was found inside words.
        pooling: how a run of pieces gives one vector (``edges`` | ``first`` | ``last`` | ``mean``).
        encoder: ``pieces`` (sentencepiece pieces pooled) or ``characters`` (one position per word).
        layers: a name per matrix: ``layer 0`` (the token layer), ``layer 1`` ... (the LSTM layers), ``average``
            (the mean of the layers' vectors).
        cosine: ``(len(layers), S, S)`` for the ``S`` sentences.
        matches: per sentence, where the word was found.
        bilm: the biLM's path (or what the caller names it).
        note: how the vectors were taken, in a sentence (printed under the table).
    """

    word: str
    substring: bool
    pooling: str
    encoder: str
    layers: list[str]
    cosine: np.ndarray
    matches: list[Match]
    bilm: str = ""
    note: str = ""

    def to_json(self) -> dict:
        """The result as JSON-ready values: the matrices per layer name, and every pair's cosines."""
        S = len(self.matches)
        return {
            "bilm": self.bilm,
            "word": self.word,
            "substring": self.substring,
            "pooling": self.pooling,
            "encoder": self.encoder,
            "note": self.note,
            "sentences": [asdict(m) for m in self.matches],
            "layers": self.layers,
            "cosine": {name: np.round(m, 6).tolist() for name, m in zip(self.layers, self.cosine)},
            "pairs": [
                {
                    "a": i,
                    "b": j,
                    "cosine": {n: round(float(self.cosine[k, i, j]), 6) for k, n in enumerate(self.layers)},
                }
                for i in range(S)
                for j in range(i + 1, S)
            ],
        }


def parse_occurrences(options: list[str] | tuple[str, ...], sentences: int) -> tuple[int | None, dict[int, int]]:
    """``--occurrence`` values: ``N`` (every sentence where the word occurs more than once) or ``S:N`` (sentence
    ``S``, counting from 1).

    Returns:
        ``(default, per_sentence)``: the ``N`` for all (or None) and ``{sentence index (0-based): N}``.

    Raises:
        ElmokitError: a value of another form, or a number out of range.
    """
    default: int | None = None
    per: dict[int, int] = {}
    for opt in options:
        m = re.fullmatch(r"\s*(?:(\d+)\s*:)?\s*(\d+)\s*", opt)
        if not m or int(m.group(2)) < 1:
            raise ElmokitError(
                f"--occurrence {opt}: takes N (the N-th match in every sentence that has several) or S:N (in "
                f"sentence S), counting from 1"
            )
        if m.group(1) is None:
            default = int(m.group(2))
            continue
        s = int(m.group(1))
        if not 1 <= s <= sentences:
            raise ElmokitError(
                f"--occurrence {opt}: there is no sentence {s} (sentences are numbered 1 to {sentences})"
            )
        per[s - 1] = int(m.group(2))
    return default, per


def _show(sentence: str, limit: int = 60) -> str:
    return repr(sentence if len(sentence) <= limit else sentence[: limit - 1] + "…")


def find_word(
    sentences: list[str], word: str, substring: bool = False, occurrences: list[str] | tuple[str, ...] = ()
) -> list[Match]:
    """Find ``word`` in every sentence: one :class:`Match` each (without the pieces, which need the biLM).

    Args:
        sentences: two or more sentences (split at whitespace into words).
        word: one word (no whitespace).
        substring: find it inside words too (``연패`` in ``4연패``), else only as a whole word.
        occurrences: ``--occurrence`` values (see :func:`parse_occurrences`): which match of a sentence that has
            several.

    Raises:
        ElmokitError: fewer than two sentences, an empty or spaced word, a sentence without the word, a sentence with
            several matches and no ``--occurrence`` saying which: one line naming the sentence and what to do.
    """
    if len(sentences) < 2:
        raise ElmokitError(
            f"{len(sentences)} sentence{'' if len(sentences) == 1 else 's'} given: the word's vectors are compared "
            f'between sentences, give two or more (elmokit similarity BILM --word WORD "SENTENCE" "SENTENCE" ...)'
        )
    if not word or word.split() != [word]:
        raise ElmokitError(
            f"--word {word!r}: give one word, without spaces (the sentences are split into words at whitespace)"
        )
    default, per = parse_occurrences(occurrences, len(sentences))
    out = []
    for s, sentence in enumerate(sentences):
        words = sentence.split()
        found = []  # (word index, start, end)
        for w, token in enumerate(words):
            if substring:
                at = token.find(word)
                while at >= 0:
                    found.append((w, at, at + len(word)))
                    at = token.find(word, at + len(word))
            elif token == word:
                found.append((w, 0, len(token)))
        where = f"sentence {s + 1} ({_show(sentence)})"
        if not found:
            inside = [t for t in words if word in t]
            if substring:
                todo = "check the spelling, or leave the sentence out"
            elif inside:
                todo = f"it is inside {inside[0]!r}: add --substring to find it inside a word"
            else:
                todo = "check the spelling, add --substring to find it inside a word, or leave the sentence out"
            kind = "inside any word" if substring else "as a whole word"
            raise ElmokitError(f"{where}: has no {word!r} {kind}; {todo}")
        n = per.get(s, default if len(found) > 1 else None)
        if n is None and len(found) > 1:
            at_words = ", ".join(str(w + 1) for w, _, _ in found)
            raise ElmokitError(
                f"{where}: has {word!r} {len(found)} times (words {at_words}); say which with --occurrence N "
                f"(every such sentence) or --occurrence {s + 1}:N (this one), N from 1 to {len(found)}"
            )
        n = n or 1
        if n > len(found):
            raise ElmokitError(
                f"{where}: has {word!r} {len(found)} time{'' if len(found) == 1 else 's'}, not {n}; give "
                f"--occurrence {s + 1}:N with N from 1 to {len(found)}"
            )
        w, start, end = found[n - 1]
        out.append(Match(sentence, w, words[w], start, end, n, len(found)))
    return out


def pool_pieces(layers: torch.Tensor, first: int, last: int, pooling: str) -> torch.Tensor:
    """Pieces ``first..last`` of :meth:`~elmokit.bilm.bundle.BiLM.piece_layers`' ``(layers, P, 2D)`` pooled into
    ``(layers, 2D)`` as :meth:`~elmokit.bilm.bundle.BiLM.encode_words` pools a word's pieces."""
    D = layers.shape[-1] // 2
    f, b = layers[..., :D], layers[..., D:]
    if pooling == "mean":
        return torch.cat([f[:, first : last + 1].mean(1), b[:, first : last + 1].mean(1)], -1)
    fp = first if pooling == "first" else last  # edges: the forward LM at the last piece
    bp = last if pooling == "last" else first  # edges: the backward LM at the first piece
    return torch.cat([f[:, fp], b[:, bp]], -1)


def _piece_vector(bilm, match: Match, pooling: str) -> np.ndarray:
    """A pieces biLM's ``(layers, 2D)`` vector of a match, filling in its pieces (see the module docstring)."""
    words = match.sentence.split()
    layers, ids, spans = bilm.piece_layers(words)
    base = sum(len(i) for i in ids[: match.word_index])  # the word's first piece in the sentence
    word_spans = spans[match.word_index]
    chosen = list(range(len(word_spans)))  # the whole word: all its pieces, the biLM's own vector of the word
    if (match.start, match.end) != (0, len(match.word)):
        # a piece overlaps the match if its characters do; a byte piece spanning nothing (c, c) is character c's
        overlap = [k for k, (a, e) in enumerate(word_spans) if a < match.end and max(e, a + 1) > match.start]
        chosen = overlap or chosen
    first, last = chosen[0], chosen[-1]
    match.pieces = [bilm.vocab.sp.id_to_piece(i) for i in ids[match.word_index][first : last + 1]]
    match.covered = match.word[word_spans[first][0] : max(word_spans[last][1], word_spans[first][0])]
    return pool_pieces(layers, base + first, base + last, pooling).double().cpu().numpy()


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """``(S, S)`` cosines between the rows of ``(S, dim)`` vectors (0 where a vector is zero)."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1)
    unit = v / np.where(norms > 0, norms, 1.0)[:, None]
    return np.clip(unit @ unit.T, -1.0, 1.0)


def word_similarity(
    bilm,
    sentences: list[str],
    word: str,
    substring: bool = False,
    occurrences: list[str] | tuple[str, ...] = (),
    pooling: str = "edges",
    name: str = "",
) -> SimilarityResult:
    """The cosine of ``word``'s vectors between every pair of ``sentences``, per layer of ``bilm``.

    Args:
        bilm: a loaded :class:`~elmokit.bilm.frozen.FrozenBiLM` (:func:`elmokit.bilm.bundle.load_bilm`).
        sentences, word, substring, occurrences: see :func:`find_word`.
        pooling: how a run of pieces gives one vector (as the biLM pools a word's pieces; unused by a character
            biLM, whose words have one position).
        name: what the result calls the biLM (its path).

    Raises:
        ElmokitError: see :func:`find_word`.
    """
    from elmokit.bilm.bundle import BiLM

    if pooling not in POOLINGS:
        raise ElmokitError(f"--pooling {pooling}: must be one of {', '.join(POOLINGS)}")
    matches = find_word(sentences, word, substring, occurrences)
    n = bilm.num_layers - 1
    lstm = "layer 1 = LSTM" if n == 1 else f"layers 1-{n} = LSTM"
    if isinstance(bilm, BiLM):
        encoder = "pieces"
        vectors = np.stack([_piece_vector(bilm, m, pooling) for m in matches], 1)  # (layers, S, 2D)
        which = "the pieces overlapping the match" if substring else "the word's pieces"
        note = (
            f"layer 0 = the piece embeddings (the same pieces: cosine 1), {lstm}; {which} pooled ({pooling}) as "
            f"the biLM pools a word's"
        )
    else:
        encoder = "characters"
        rows = [[m.sentence.split()] for m in matches]
        where = np.cumsum([0] + [len(r[0]) for r in rows])[:-1] + [m.word_index for m in matches]
        vectors = bilm.encode_words(rows, pooling)[:, torch.as_tensor(where)].double().cpu().numpy()
        for m in matches:
            m.covered = m.word
        whole = " (the whole word's: the biLM has no position inside a word)" if substring else ""
        note = (
            f"layer 0 = the character CNN's word vector (the same word: cosine 1), {lstm}; a character biLM has "
            f"one vector per word{whole}"
        )
    layers = [f"layer {k}" for k in range(vectors.shape[0])] + ["average"]
    vectors = np.concatenate([vectors, vectors.mean(0, keepdims=True)])  # (layers + 1, S, 2D)
    cosine = np.stack([cosine_matrix(v) for v in vectors])
    return SimilarityResult(word, substring, pooling, encoder, layers, cosine, matches, name, note)


def _where(m: Match, substring: bool) -> str:
    text = f"word {m.word_index + 1} {m.word!r}"
    if m.occurrences > 1:
        text += f" (match {m.occurrence} of {m.occurrences})"
    if m.pieces:
        text += f", pieces {' '.join(m.pieces)}" + (f" (covering {m.covered!r})" if substring else "")
    elif substring:
        text += ", the whole word's vector"
    return text


def summary_lines(result: SimilarityResult) -> list[str]:
    """The table ``elmokit similarity`` prints: the sentences (``s1``, ``s2``, ...) and what was pooled in each,
    the cosine of every pair at every layer, and with three sentences or more a matrix per layer."""
    S = len(result.matches)
    how = "inside words" if result.substring else "as a whole word"
    lines = [f"{result.bilm or 'biLM'}: {result.word!r} found {how} ({result.encoder} biLM)"]
    for i, m in enumerate(result.matches):
        lines += [f"  s{i + 1}  {m.sentence}", f"      {_where(m, result.substring)}"]
    lines += [f"  ({result.note})", ""]
    width = max(9, *(len(n) + 2 for n in result.layers))
    lines.append(f"{'cosine':<10}" + "".join(f"{n:>{width}}" for n in result.layers))
    for i in range(S):
        for j in range(i + 1, S):
            lines.append(f"{f's{i + 1} · s{j + 1}':<10}" + "".join(f"{c[i, j]:>{width}.4f}" for c in result.cosine))
    if S > 2:
        cell = max(8, len(f"s{S}") + 2)
        for name, mat in zip(result.layers, result.cosine):
            lines += ["", f"{name}: cosine", " " * 5 + "".join(f"{f's{j + 1}':>{cell}}" for j in range(S))]
            for i in range(S):
                lines.append(f"{f's{i + 1}':<5}" + "".join(f"{mat[i, j]:>{cell}.4f}" for j in range(S)))
    return lines


def _label(i: int, m: Match) -> str:
    """A heatmap label: ``s1  …sentence with the ⟦word⟧ marked…``, cut to about ``LABEL_CHARS`` characters."""
    words = m.sentence.split()
    w = m.word
    words[m.word_index] = f"{w[: m.start]}[{w[m.start : m.end]}]{w[m.end :]}"
    text = " ".join(words)
    if len(text) > LABEL_CHARS:  # keep the match in view
        at = text.find("[", sum(len(x) + 1 for x in words[: m.word_index]))
        lo = max(0, min(at - LABEL_CHARS // 2, len(text) - LABEL_CHARS))
        text = ("…" if lo else "") + text[lo : lo + LABEL_CHARS] + ("…" if lo + LABEL_CHARS < len(text) else "")
    return f"s{i + 1}  {text}"


def plot_similarity(result: SimilarityResult, path: str | Path) -> Path:
    """A heatmap of the cosines per layer, side by side, the sentences labelled (Hangul drawn with NanumGothic);
    written atomically."""
    from elmokit.core.plots import figure_style, save_figure

    S, K = len(result.matches), len(result.layers)
    labels = [_label(i, m) for i, m in enumerate(result.matches)]
    lo = min(0.0, float(result.cosine.min()))
    with figure_style() as plt:
        size = 0.45 * S + 1.6
        fig, axes = plt.subplots(
            1,
            K + 1,
            figsize=(size * K + 0.5 + 0.09 * max(len(t) for t in labels), size + 0.9),
            gridspec_kw={"width_ratios": [1] * K + [0.05]},
        )
        for k, (ax, name, mat) in enumerate(zip(axes, result.layers, result.cosine)):
            im = ax.imshow(mat, vmin=lo, vmax=1.0, cmap="viridis")
            ax.set_title(name, fontsize=9)
            ax.set_xticks(range(S), [f"s{j + 1}" for j in range(S)], fontsize=8)
            ax.set_yticks(range(S), labels if k == 0 else [f"s{j + 1}" for j in range(S)], fontsize=8)
            if S <= 12:
                for i in range(S):
                    for j in range(S):
                        colour = "black" if mat[i, j] > lo + 0.6 * (1.0 - lo) else "white"
                        ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7, color=colour)
        fig.colorbar(im, cax=axes[-1], label="cosine")
        how = "inside words" if result.substring else "as a whole word"
        fig.suptitle(f"{result.word!r} ({how}): cosine of its vectors between sentences, per layer", fontsize=10)
        return save_figure(fig, path)


def write_outputs(result: SimilarityResult, prefix: str | Path) -> tuple[Path, Path]:
    """Write ``PREFIX.json`` (:meth:`SimilarityResult.to_json`) and ``PREFIX.png`` (:func:`plot_similarity`), each
    atomically; their paths."""
    from elmokit.core.files import write_json

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path, png_path = Path(f"{prefix}.json"), Path(f"{prefix}.png")
    write_json(json_path, result.to_json())
    plot_similarity(result, png_path)
    return json_path, png_path
