"""ELMoForManyLangs' API on current PyTorch: change ``from elmoformanylangs import Embedder`` to ``from
elmokit.manylangs import Embedder`` and keep the rest of the code.

Read from HIT-SCIR/ELMoForManyLangs, ``elmoformanylangs/frontend.py`` (``Embedder``, ``read_list``,
``create_batches``, ``create_one_batch``, ``recover``) and ``elmoformanylangs/modules/elmo.py`` (``ElmobiLm``, an
AllenNLP ``_EncoderBase`` with ``stateful=True``), as stored in its forks:

- ``Embedder(model_dir, batch_size=64)``: an ELMoForManyLangs model directory (``config.json``, its model JSON,
  ``char.dic``, ``word.dic``, ``token_embedder.pkl``, ``encoder.pkl``) or its zip; here also an NLPL zip or
  directory and an elmokit bundle. Imported on first use (:func:`elmokit.bilm.import_elmo.import_path`; the
  ``.pkl`` files read with ``torch.load(weights_only=True)``, nothing unpickled) and cached by sha256 as
  :mod:`elmokit.allennlp` caches (``cache_dir=`` to choose). The device: CPU (``.bilm.to("cuda")`` moves it).
- ``sents2elmo(sents, output_layer=-1)``: a list with one float32 numpy array per sentence, in the input order:
  ``output_layer=-1`` the average of the layers ``(words, 2D)``; ``-2`` all layers ``(layers, words, 2D)``; any
  other index one layer ``(words, 2D)`` (``0`` the token layer, ``1``, ``2`` the LSTM layers; numpy's negative
  indices otherwise, so ``-3`` is layer 0).

Its procedure, reproduced: each sentence becomes ``<bos> words <eos>``, each word cut to ``max_characters_per_token
- 2`` characters; the sentences are sorted longest first (a stable sort) and cut into batches of ``batch_size``; the
batches are run in an order drawn with Python's ``random.shuffle`` (the global ``random`` state, as ELMoForManyLangs
draws it: seed ``random`` to repeat a run); the vectors go back to the input order. The biLM is stateful: row ``r``
of a batch (the ``r``-th longest sentence in it) starts where row ``r`` of the previous batch ended, across calls too,
as long as the ``Embedder`` lives; so a call of at most ``batch_size`` sentences on a fresh ``Embedder`` gives every
sentence its zero-state vectors, and later calls differ. ``Embedder(..., stateful=False)`` gives elmokit's
batch-independent vectors instead (every sentence from a zero state; the batch order is then not drawn), and
``reset_states()`` forgets the carried state.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from elmokit.bilm.charbilm import CarriedState
from elmokit.core.errors import ConfigError
from elmokit.simple_elmo import cached_model


class Embedder:
    """ELMoForManyLangs' ``Embedder`` (see the module docstring).

    Args:
        model_dir: the model directory or zip (or an elmokit bundle).
        batch_size: sentences per batch.
        stateful: keyword-only (elmokit's): ``True`` carries the state as ELMoForManyLangs does (its numbers),
            ``False`` reads every sentence from a zero state.
        cache_dir: keyword-only (elmokit's): where imported models are kept.
    """

    def __init__(
        self,
        model_dir: str | Path,
        batch_size: int = 64,
        *,
        stateful: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.bilm = cached_model(model_dir, cache_dir)
        self.stateful = stateful
        self.carry = CarriedState() if stateful else None

    def reset_states(self) -> None:
        """Forget the carried state (the next batch starts from zeros)."""
        if self.stateful:
            self.carry = CarriedState()

    def sents2elmo(self, sents, output_layer: int = -1) -> list[np.ndarray]:
        """Every layer's vectors of tokenized sentences, by ELMoForManyLangs' procedure (see the module docstring).

        Args:
            sents: sentences, each a list of words.
            output_layer: ``-1`` the layers' average, ``-2`` all layers, else that layer.

        Returns:
            One float32 array per sentence: ``(words, 2D)``, or ``(layers, words, 2D)`` for ``-2``.

        Raises:
            ConfigError: sentences that are not lists of words, or a layer the model does not have.
        """
        n_layers = self.bilm.num_layers
        if not isinstance(output_layer, int) or not (output_layer in (-1, -2) or -n_layers <= output_layer < n_layers):
            raise ConfigError(
                f"output_layer {output_layer!r}: -1 (average), -2 (all layers) or a layer 0 to {n_layers - 1}"
            )
        if isinstance(sents, str):
            raise ConfigError("sents must be a list of sentences, each a list of words, not one string")
        sents = list(sents)
        for i, s in enumerate(sents):
            if isinstance(s, str) or not all(isinstance(w, str) for w in s):
                raise ConfigError(f"sents[{i}] is not a list of words; pass tokenized sentences (e.g. line.split())")
        order = sorted(range(len(sents)), key=lambda i: -len(sents[i]))  # create_batches: longest first, stable
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.carry is not None:  # create_batches draws the batch order; only the carried state depends on it
            perm = list(range(len(batches)))
            random.shuffle(perm)
            batches = [batches[i] for i in perm]
        out: list[np.ndarray | None] = [None] * len(sents)
        for batch in batches:
            words = [list(sents[i]) for i in batch]
            vectors = self.bilm.encode_words([[s] for s in words], carry=self.carry)  # (layers, N, 2D)
            k = 0
            for i, s in zip(batch, words):
                data = vectors[:, k : k + len(s)].cpu().numpy()  # (layers, words, 2D)
                k += len(s)
                if output_layer == -1:
                    out[i] = np.average(data, axis=0)
                elif output_layer == -2:
                    out[i] = data
                else:
                    out[i] = data[output_layer]
        return out
