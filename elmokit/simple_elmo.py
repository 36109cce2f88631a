"""simple_elmo's API on current PyTorch: change ``from simple_elmo import ElmoModel`` to ``from elmokit.simple_elmo
import ElmoModel`` and keep the rest of the code.

Read from ltgoslo/simple_elmo, ``simple_elmo/elmo_helpers.py`` (the version with ``load(..., full=False)`` and
``get_elmo_substitutes``), ``simple_elmo/training.py`` and its README; bilm-tf's ``bilm/model.py`` for what the graph
returns:

- ``ElmoModel().load(directory, ...)``: a zip of the NLPL repository (``model.hdf5``, ``options.json``,
  ``vocab.txt``), or a directory holding ``options.json`` and ``model.hdf5`` (else its only ``.hdf5``), with
  ``vocab.txt.gz`` or ``vocab.txt`` when there is one; here also an ELMoForManyLangs directory or zip and an elmokit
  bundle. Imported on first use (:func:`elmokit.bilm.import_elmo.import_path`) and cached by sha256 as
  :mod:`elmokit.allennlp` caches (``$XDG_CACHE_HOME/elmokit/allennlp``; ``cache_dir=`` to choose).
  ``options_file=`` + ``weight_file=`` without a directory work too. ``limit`` (how many vocabulary words
  simple_elmo pre-computes character ids for, a speed matter) and ``full`` (simple_elmo then loads the TensorFlow
  checkpoint for the language model's softmax) are accepted and ignored: a model imported with its softmax has it
  here either way. ``top=True`` (simple_elmo up to 0.5 took it in ``load``) makes ``"top"`` the default layers.
- ``get_elmo_vectors(texts, warmup=True, layers="average", session=None)``: a float64 numpy array ``(sentences,
  longest, 2D)`` (``layers="all"``: ``(sentences, layers, longest, 2D)``); ``"average"`` is the mean of the layers
  (bilm-tf's ``weight_layers`` with its weights as initialised: softmax of zeros, ``gamma`` 1), ``"top"`` the last.
- ``get_elmo_vector_average(texts, warmup=True, layers="average", session=None)``: ``(sentences, 2D)``
  (``"all"``: ``(sentences, layers, 2D)``), each the mean of its words' vectors scaled to unit length.
- ``get_elmo_substitutes(raw_sentences, topn=3, nodelimiters=True)``: per sentence, per word, ``{"word": w,
  "forward": {"candidates": [ids], "candidate_words": [words], "logp": [values]}, "backward": {...}}``: the forward
  LM's ``topn`` likeliest words at the word's place given the words before it, the backward LM's given those after it
  (:mod:`elmokit.bilm.substitutes`); needs a model imported with its softmax and vocabulary.

The state, as simple_elmo has it: bilm-tf's graph keeps the LSTM state in variables of ``max_batch_size`` rows;
each batch (``max_batch_size`` sentences, in order) starts row ``r`` where row ``r`` of the previous batch ended,
and every call starts from zeros (simple_elmo opens a new TensorFlow session, which initialises them).
``warmup=True`` runs each batch once and discards the result before the run that is kept, so every sentence is read
from the state its own first reading left (``get_elmo_vectors``); ``get_elmo_vector_average`` warms up by running all
batches once before running them again. ``load(..., stateful=False)`` gives elmokit's batch-independent vectors
instead (every sentence from a zero state; ``warmup`` then changes nothing).

Differences:

- ``session`` (an external TensorFlow session) is accepted and ignored: there is no TensorFlow here, and the state
  always starts from zeros at a call (with a session passed, simple_elmo would go on from its variables).
- Positions past a sentence's end are zeros. In simple_elmo they are zeros past the batch's longest sentence; inside
  a batch bilm-tf leaves its token layer there unmasked (the vectors of an empty word), so ``"average"`` and
  ``"all"`` hold non-zero values that no caller should read. For the same reason ``get_elmo_vector_average`` here is
  the mean over the sentence's own words only (simple_elmo's sums the batch's padding too: the same for ``"top"``,
  where it is zeros); an empty sentence gets zeros (simple_elmo's a division by zero). With ``"all"``, simple_elmo
  ``reshape``s ``(batch, layers, words, 2D)`` to ``(batch, words, layers, 2D)``, mixing layers and positions; here
  row ``k`` is layer ``k``'s mean, the ``(layers, 2D)`` matrix divided by its norm as simple_elmo divides.
- Substitutes: every sentence is read from a zero state (simple_elmo packs sentences into rows of its batch with
  the training data loader); the candidates come most probable first (``np.argpartition`` leaves them unordered);
  ``"logp"`` are log-probabilities, rounded to 4 decimals as simple_elmo rounds (its version read here puts the
  softmax's raw scores ``h·Wᵀ + b`` there, training.py's ``output_scores``: the same order, shifted by each
  position's log-normaliser); ``nodelimiters`` drops ``<S>`` and ``</S>`` from the candidates (simple_elmo sets
  their scores to 0); ``"word"`` is the word itself (simple_elmo's is the vocabulary's, ``<UNK>`` for a word it
  lacks); no batch-size minimum.
- Bad arguments are one-line :class:`~elmokit.core.errors.ElmokitError`\\ s, not ``SystemExit``.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch

from elmokit.allennlp import _dir_files, _import_once, cache_root, cached_bilm
from elmokit.bilm.bundle import load_bilm
from elmokit.bilm.charbilm import CarriedState, CharBiLM
from elmokit.bilm.import_elmo import import_path
from elmokit.core.errors import CheckpointError, ConfigError
from elmokit.core.textfile import sha256_file

LAYERS = ("average", "top", "all")


def cached_model(path: str | Path, cache_dir: str | Path | None = None) -> CharBiLM:
    """The character biLM of a model as published (an NLPL or ELMoForManyLangs zip or directory) or of an elmokit
    bundle, imported on first use into ``cache_dir/<sha256>`` (default :func:`elmokit.allennlp.cache_root`) and
    loaded from there afterwards. ELMoForManyLangs directories and bundles go through
    :func:`elmokit.allennlp.cached_bilm` (the same cache entry as :mod:`elmokit.allennlp`'s).

    Raises:
        CheckpointError: one line: a missing path, a file that is no model archive, a model lacking a file, or a
            sentencepiece biLM.
    """
    p = Path(path)
    if p.is_dir() and ((p / "manifest.json").is_file() or (p / "config.json").is_file()):
        return cached_bilm(None, p, cache_dir)
    if p.is_dir():
        h = hashlib.sha256(b"import-path:directory")
        for f in _dir_files(p):
            h.update(f"{f.name}:{sha256_file(f)}\n".encode())
    elif p.is_file():
        h = hashlib.sha256(f"import-path:file:{sha256_file(p)}".encode())
    else:
        raise CheckpointError(
            f"{p}: no such file or directory; pass the model's zip archive (NLPL or ELMoForManyLangs), its unpacked "
            f"directory or an elmokit bundle"
        )
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    bilm = load_bilm(_import_once(root / h.hexdigest(), lambda out: import_path(p, out)))
    if not isinstance(bilm, CharBiLM):
        raise CheckpointError(f"{p}: a sentencepiece biLM, not ELMo's character biLM; use elmokit.embed.Embedder")
    return bilm


def _sentences(texts, what: str = "texts") -> list[list[str]]:
    """``texts`` as lists of words (a tuple counts as a list); a bare string is refused, as simple_elmo would read
    its characters as words."""
    if isinstance(texts, str) or not hasattr(texts, "__iter__"):
        raise ConfigError(f"{what} must be a list of sentences, each a list of words (e.g. [s.split() for s in lines])")
    out = []
    for i, s in enumerate(texts):
        if isinstance(s, str) or not all(isinstance(w, str) for w in s):
            raise ConfigError(
                f"{what}[{i}] is {type(s).__name__} {str(s)[:40]!r}, not a list of words; pass tokenized sentences "
                f"(e.g. line.split())"
            )
        out.append(list(s))
    return out


class ElmoModel:
    """simple_elmo's ``ElmoModel`` on elmokit's character biLM (see the module docstring).

    Attributes (simple_elmo's): ``batch_size`` (``max_batch_size``), ``max_chars``, ``vector_size`` (``2D``),
    ``n_layers`` (LSTM layers + 1), ``vocab`` (the model's word list when it kept one, else ``None``); elmokit's:
    ``bilm``.
    """

    def __init__(self) -> None:
        self.bilm: CharBiLM | None = None
        self.batch_size: int | None = None
        self.max_chars: int | None = None
        self.vector_size: int | None = None
        self.n_layers: int | None = None
        self.vocab: list[str] | None = None
        self.top = False
        self.stateful = True

    def load(
        self,
        directory: str | Path | None = None,
        vocab_file: str | Path | None = None,
        options_file: str | Path | None = None,
        weight_file: str | Path | None = None,
        max_batch_size: int = 32,
        limit: int = 100,
        full: bool = False,
        *,
        top: bool = False,
        stateful: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        """Load a model (see the module docstring for what ``directory`` may be).

        Args:
            directory: a zip archive or a model directory (or an elmokit bundle).
            vocab_file: accepted for simple_elmo's signature; the importer reads a directory's own vocabulary.
            options_file, weight_file: bilm-tf's ``options.json`` and weights, when no ``directory`` is given.
            max_batch_size: sentences per batch (and rows of the carried state).
            limit: accepted and ignored (simple_elmo's vocabulary pre-caching).
            full: accepted and ignored (the softmax is there when the model was imported with it).
            top: simple_elmo up to 0.5: make ``"top"`` the default ``layers``.
            stateful: ``True`` carries the state row by row as bilm-tf does (simple_elmo's numbers); ``False``
                reads every sentence from a zero state.
            cache_dir: where imported models are kept.

        Raises:
            ElmokitError: one line: no model given, a missing or malformed model, ``max_batch_size`` under 1.
        """
        if not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be a positive integer, got {max_batch_size!r}")
        if directory is not None:
            bilm = cached_model(directory, cache_dir)
        elif options_file is not None:
            if weight_file is None:
                raise ConfigError(f"{options_file}: options_file needs weight_file (the model's .hdf5) beside it")
            bilm = cached_bilm(options_file, weight_file, cache_dir)
        else:
            raise ConfigError(
                "give the model: load(PATH) with an NLPL zip archive or model directory, or options_file= and "
                "weight_file="
            )
        self.bilm = bilm
        self.batch_size = max_batch_size
        self.max_chars = bilm.cfg.max_chars
        self.vector_size = 2 * bilm.dim
        self.n_layers = bilm.num_layers
        self.vocab = list(bilm.words) if bilm.words else None
        self.top, self.stateful = top, stateful

    # --- vectors ----------------------------------------------------------------------------------------------
    def _check(self, layers: str | None) -> str:
        if self.bilm is None:
            raise ConfigError("no model loaded: call load(PATH) first")
        layers = layers if layers is not None else ("top" if self.top else "average")
        if layers not in LAYERS:
            raise ConfigError(f"layers must be one of {', '.join(LAYERS)}, got {layers!r}")
        return layers

    def _chunks(self, texts: list[list[str]]) -> list[list[list[str]]]:
        return [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]

    def _run(self, chunk: list[list[str]], carry: CarriedState | None) -> list[torch.Tensor]:
        """One batch through the biLM: per sentence ``(layers, words, 2D)`` float32."""
        vectors = self.bilm.encode_words([[s] for s in chunk], carry=carry)  # (layers, N, 2D)
        out, k = [], 0
        for s in chunk:
            out.append(vectors[:, k : k + len(s)])
            k += len(s)
        return out

    @staticmethod
    def _select(v: torch.Tensor, layers: str) -> torch.Tensor:
        """``(layers, words, 2D)`` → what ``layers`` asks for: ``(words, 2D)``, or all of it."""
        if layers == "average":
            return v.mean(0)
        if layers == "top":
            return v[-1]
        return v

    def _batches(self, texts: list[list[str]], warmup: bool, whole_warmup: bool) -> list[torch.Tensor]:
        """Every sentence's ``(layers, words, 2D)`` by simple_elmo's procedure (see the module docstring)."""
        carry = CarriedState() if self.stateful else None
        chunks = self._chunks(texts)
        if warmup and whole_warmup and carry is not None:
            for chunk in chunks:
                self._run(chunk, carry)
        out: list[torch.Tensor] = []
        for chunk in chunks:
            if warmup and not whole_warmup and carry is not None:
                self._run(chunk, carry)
            out.extend(self._run(chunk, carry))
        return out

    def get_elmo_vectors(self, texts, warmup: bool = True, layers: str | None = None, session=None) -> np.ndarray:
        """Contextual word vectors of tokenized sentences.

        Args:
            texts: sentences, each a list of words.
            warmup: run each batch once first (see the module docstring).
            layers: ``"average"`` (default; ``"top"`` after ``load(top=True)``), ``"top"`` or ``"all"``.
            session: accepted and ignored (TensorFlow's).

        Returns:
            float64 ``(len(texts), longest, 2D)``, or ``(len(texts), layers, longest, 2D)`` for ``"all"``; zeros
            past each sentence's end.
        """
        layers = self._check(layers)
        texts = _sentences(texts)
        longest = max((len(t) for t in texts), default=0)
        shape = (len(texts), self.n_layers, longest, self.vector_size) if layers == "all" else None
        final = np.zeros(shape or (len(texts), longest, self.vector_size))
        for i, v in enumerate(self._batches(texts, warmup, whole_warmup=False)):
            n = v.shape[1]
            picked = self._select(v, layers).cpu().numpy()
            if layers == "all":
                final[i, :, :n] = picked
            else:
                final[i, :n] = picked
        return final

    def get_elmo_vector_average(
        self, texts, warmup: bool = True, layers: str | None = None, session=None
    ) -> np.ndarray:
        """One unit-length vector per sentence: the mean of its words' vectors, divided by its norm.

        Args: as :meth:`get_elmo_vectors` (``warmup`` runs all batches once first).

        Returns:
            float64 ``(len(texts), 2D)``, or ``(len(texts), layers, 2D)`` for ``"all"`` (each sentence's matrix
            divided by its norm).
        """
        layers = self._check(layers)
        texts = _sentences(texts)
        shape = (len(texts), self.n_layers, self.vector_size) if layers == "all" else (len(texts), self.vector_size)
        out = np.zeros(shape)
        for i, v in enumerate(self._batches(texts, warmup, whole_warmup=True)):
            if not v.shape[1]:
                continue  # an empty sentence: zeros
            mean = self._select(v, layers).double().mean(-2).cpu().numpy()  # (2D,) or (layers, 2D)
            norm = np.linalg.norm(mean)
            out[i] = mean / norm if norm else mean
        return out

    # --- substitutes ------------------------------------------------------------------------------------------
    def get_elmo_substitutes(self, raw_sentences, topn: int = 3, nodelimiters: bool = True) -> list[list[dict]]:
        """Each word's likeliest substitutes by the forward and the backward language model.

        Args:
            raw_sentences: sentences as strings (split on whitespace) or lists of words.
            topn: candidates per direction.
            nodelimiters: leave ``<S>`` and ``</S>`` out of the candidates.

        Returns:
            Per sentence, per word, ``{"word", "forward": {"candidates", "candidate_words", "logp"}, "backward":
            {...}}`` (see the module docstring).

        Raises:
            ElmokitError: no model loaded, a model without a softmax, ``topn`` under 1.
        """
        from elmokit.bilm.substitutes import substitutes

        self._check(None)
        if isinstance(raw_sentences, str):
            raise ConfigError("raw_sentences must be a list of sentences (strings or lists of words), not one string")
        sentences = [s.split() if isinstance(s, str) else list(s) for s in raw_sentences]
        out = []
        for words in sentences:
            rows = []
            for position in range(len(words)):
                s = substitutes(self.bilm, words, position, top=topn, delimiters=not nodelimiters, name="the model")
                word = {"word": words[position], "forward": _direction(s.forward), "backward": _direction(s.backward)}
                rows.append(word)
            out.append(rows)
        return out


def _direction(cands) -> dict:
    """simple_elmo's per-direction dict of :class:`~elmokit.bilm.substitutes.Candidate`\\ s."""
    return {
        "candidates": [c.id for c in cands],
        "candidate_words": [c.token for c in cands],
        "logp": [round(math.log(c.probability), 4) if c.probability > 0 else -math.inf for c in cands],
    }
