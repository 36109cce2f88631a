"""AllenNLP's ELMo API on current PyTorch: change ``from allennlp.modules.elmo import Elmo, batch_to_ids`` (or
``from allennlp.commands.elmo import ElmoEmbedder``) to ``from elmokit.allennlp import ...`` and get the same numbers.

- :func:`batch_to_ids`: AllenNLP's character ids (``ELMoCharacterMapper``): each word's UTF-8 bytes cut to 48,
  wrapped in 258 … 259, padded with 260, every id + 1; the words missing from shorter sentences are all zeros.
- :class:`Elmo`: the torch module (scalar mixes of the biLM's layers, dropout, ``<S>``/``</S>`` removed or kept).
- :class:`ElmoEmbedder`: AllenNLP 0.9's ``ElmoEmbedder`` (numpy ``(3, words, 2D)`` per sentence, ``embed_file``
  writing its HDF5 layout).

``options_file`` + ``weight_file`` (bilm-tf's ``options.json`` and ``weights.hdf5``) are imported into an elmokit
bundle on first use (:func:`elmokit.bilm.import_elmo.import_bilm_tf`), cached under
``$XDG_CACHE_HOME/elmokit/allennlp/<sha256 of both files>`` (``~/.cache`` by default; ``cache_dir=`` to choose), so
a second construction only loads the bundle. Where a weight file is expected, a directory is also accepted: an
elmokit bundle (``manifest.json``; loaded as is, ``options_file`` ignored) or an ELMoForManyLangs model directory
(``config.json``; imported and cached the same way, ``options_file`` ignored).

Stateful like AllenNLP: the biLM's LSTM state is carried from one batch to the next, row by row (row ``r`` of a batch
starts where row ``r`` of the previous batch ended), which is how AllenNLP's and bilm-tf's numbers come out; the
same sentence therefore gets different vectors in different batches. ``stateful=False`` gives elmokit's
batch-independent mode instead (every sentence from a zero state, as ``elmokit embed`` does by default).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import torch
from torch import Tensor, nn

from elmokit.bilm.bundle import load_bilm
from elmokit.bilm.charbilm import CarriedState, CharBiLM
from elmokit.bilm.import_elmo import import_bilm_tf, import_manylangs
from elmokit.core.errors import CheckpointError, ConfigError, CorpusError
from elmokit.core.textfile import sha256_file
from elmokit.modules.characters import ElmoBytes
from elmokit.modules.scalar_mix import ScalarMix

MAX_CHARS = 50  # AllenNLP's ELMoCharacterMapper.max_word_length
DEFAULT_BATCH_SIZE = 64
_MAPPER = ElmoBytes(MAX_CHARS)


def batch_to_ids(batch: list[list[str]]) -> Tensor:
    """AllenNLP's character ids of tokenized sentences: ``(len(batch), longest, 50)`` int64, a missing word all
    zeros (a batch of empty sentences gives ``(len(batch), 0, 50)``)."""
    width = max((len(s) for s in batch), default=0)
    out = np.zeros((len(batch), width, MAX_CHARS), dtype=np.int64)
    for b, sentence in enumerate(batch):
        for j, word in enumerate(sentence):
            out[b, j] = _MAPPER.chars(word)
    return torch.from_numpy(out)


# --- the biLM: import, cache, load ------------------------------------------------------------------------------
def cache_root() -> Path:
    """Where imported models are kept: ``$XDG_CACHE_HOME/elmokit/allennlp`` (``~/.cache/elmokit/allennlp``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "elmokit" / "allennlp"


def _dir_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file())


def cached_bilm(options_file, weight_file, cache_dir: str | Path | None = None) -> CharBiLM:
    """The character biLM of ``options_file`` + ``weight_file`` (or of a directory in ``weight_file``: see the
    module docstring), imported on first use into ``cache_dir/<sha256>`` and loaded from there afterwards.

    Raises:
        CheckpointError: a missing or malformed file, or a directory that is neither kind.
    """
    weights = Path(weight_file)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    if weights.is_dir():
        if (weights / "manifest.json").is_file():
            bilm = load_bilm(weights)
        elif (weights / "config.json").is_file():
            h = hashlib.sha256(b"elmoformanylangs")
            for p in _dir_files(weights):
                h.update(f"{p.name}:{sha256_file(p)}\n".encode())
            bilm = load_bilm(_import_once(root / h.hexdigest(), lambda out: import_manylangs(weights, out)))
        else:
            raise CheckpointError(
                f"{weights}: a directory with neither manifest.json (an elmokit bundle) nor config.json (an "
                f"ELMoForManyLangs model); pass bilm-tf's weights.hdf5, a bundle or an ELMoForManyLangs directory"
            )
    else:
        options = Path(options_file)
        for p, what in ((options, "options_file (bilm-tf's options.json)"), (weights, "weight_file (weights.hdf5)")):
            if not p.is_file():
                raise CheckpointError(f"{p}: no such file; pass {what}")
        key = hashlib.sha256(f"bilm-tf:{sha256_file(options)}:{sha256_file(weights)}".encode()).hexdigest()
        bilm = load_bilm(_import_once(root / key, lambda out: import_bilm_tf(options, weights, out)))
    if not isinstance(bilm, CharBiLM):
        raise CheckpointError(
            f"{weights}: a sentencepiece biLM, not a character biLM; elmokit.allennlp runs ELMo's character models "
            f"(use elmokit.embed.Embedder for this one)"
        )
    return bilm


def _import_once(out: Path, make) -> Path:
    """``out`` if a finished import is there, else ``make(out)`` (a concurrent import that finished first wins)."""
    if (out / "manifest.json").is_file():
        return out
    try:
        return make(out)
    except CheckpointError:
        if (out / "manifest.json").is_file():  # another process imported it meanwhile
            return out
        raise


# --- AllenNLP's _ElmoBiLm ---------------------------------------------------------------------------------------
class _ElmoBiLm(nn.Module):
    """AllenNLP's ``_ElmoBiLm`` on an elmokit :class:`CharBiLM`: ``forward(char_ids)`` → ``{"activations": [layers
    × (batch, timesteps + 2, 2D)], "mask": (batch, timesteps + 2) bool}``, ``<S>``/``</S>`` included."""

    def __init__(
        self,
        options_file,
        weight_file,
        requires_grad: bool = False,
        vocab_to_cache: list[str] | None = None,
        stateful: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.bilm = cached_bilm(options_file, weight_file, cache_dir)
        self.requires_grad = requires_grad
        if requires_grad:  # the CharBiLM freezes itself; fine-tuning undoes that
            for p in self.bilm.parameters():
                p.requires_grad_(True)
        self.stateful = stateful
        self.carry = CarriedState() if stateful else None
        self.num_layers = self.bilm.num_layers
        self.word_embedding: nn.Parameter | None = None
        if vocab_to_cache is not None:
            self.create_cached_cnn_embeddings(vocab_to_cache)

    def get_output_dim(self) -> int:
        return 2 * self.bilm.dim

    def reset_states(self) -> None:
        """Forget the carried state (the next batch starts from zeros, as the first one did)."""
        if self.stateful:
            self.carry = CarriedState()

    def _token_vectors(self, words: list[str]) -> Tensor:
        """``(len(words), D)`` token vectors of words (through the model's own character mapper)."""
        m = self.bilm.vocab
        chars = torch.from_numpy(np.stack([m.chars(w) for w in words])).to(self.bilm.device)
        ids = torch.tensor([m.word_id(w) for w in words], device=self.bilm.device) if m.has_words else None
        return self._encode(chars, ids)

    def _encode(self, chars: Tensor, ids: Tensor | None) -> Tensor:
        """The token encoder over ``(N, max_chars)`` model character ids → ``(N, D)``: elmokit's CharCNN, which
        takes its differentiable path by itself when fine-tuning (grad mode on and its parameters trainable)."""
        return self.bilm.token_encoder(chars, ids, self.bilm.vocab.pad_id)  # (N, D)

    def create_cached_cnn_embeddings(self, tokens: list[str]) -> None:
        """AllenNLP's cached vocabulary: row ``i`` of the word embedding is ``tokens[i]``'s token vector."""
        with torch.set_grad_enabled(self.requires_grad):
            emb = self._token_vectors(list(tokens)) if tokens else torch.zeros(0, self.bilm.dim)
        self.word_embedding = nn.Parameter(emb.detach().clone(), requires_grad=self.requires_grad)

    def _char_vectors(self, inputs: Tensor, mask: Tensor) -> Tensor:
        """``(B, T, D)`` token vectors of AllenNLP character ids ``(B, T, C)`` (zeros where ``mask`` is False)."""
        B, T, C = inputs.shape
        m, D = self.bilm.vocab, self.bilm.dim
        out = torch.zeros(B, T, D, device=inputs.device)
        flat = inputs.reshape(B * T, C)[mask.reshape(-1)]  # (N, C) the real words
        if not len(flat):
            return out
        uniq, inverse = torch.unique(flat, dim=0, return_inverse=True)  # each distinct word once
        if isinstance(m, ElmoBytes):
            if C != m.max_chars:
                raise ConfigError(
                    f"inputs have {C} character ids per word, the model reads {m.max_chars}; make them with "
                    f"elmokit.allennlp.batch_to_ids"
                )
            vec = self._encode(uniq, None)
        else:  # an ELMoForManyLangs lexicon: the words back from their bytes (longer than 48 bytes: cut there)
            words = []
            for row in uniq.tolist():
                data = bytes(c - 1 for c in row[1:] if 0 < c - 1 < 256)
                words.append(data.decode("utf-8", "ignore"))
            vec = self._token_vectors(words)
        out[mask] = vec[inverse.to(vec.device)].to(out.dtype)
        return out

    def forward(self, inputs: Tensor, word_inputs: Tensor | None = None) -> dict:
        if inputs.dim() != 3:
            raise ConfigError(
                f"inputs must be (batch, timesteps, {MAX_CHARS}) character ids, got shape {tuple(inputs.shape)}; "
                f"make them with elmokit.allennlp.batch_to_ids"
            )
        device = self.bilm.device
        inputs = inputs.to(device)
        if self.word_embedding is not None and word_inputs is not None:
            word_inputs = word_inputs.to(device)
            mask = word_inputs > 0
            tokens = self.word_embedding[word_inputs] * mask.unsqueeze(-1)  # (B, T, D)
        else:
            mask = (inputs > 0).sum(-1) > 0  # (B, T)
            tokens = self._char_vectors(inputs, mask)
        B, T, D = tokens.shape
        lengths = mask.sum(1)  # (B,) words per sentence
        bos, eos = self._token_vectors([self.bilm.vocab.bos_token, self.bilm.vocab.eos_token])  # (D,) each
        x = torch.zeros(B, T + 2, D, device=device, dtype=tokens.dtype)
        x[:, 1:-1] = tokens
        rows = torch.arange(B, device=device)
        x[:, 0] = bos
        x[rows, lengths + 1] = eos
        n = lengths + 2  # positions per row
        mask2 = torch.arange(T + 2, device=device) < n[:, None]  # (B, T + 2)
        x = x * mask2.unsqueeze(-1)
        layers = self._lstm(x, n)  # per LSTM layer (B, T + 2, 2D)
        acts = [torch.cat([x, x], -1) * mask2.unsqueeze(-1), *layers]
        return {"activations": acts, "mask": mask2}

    def _lstm(self, x: Tensor, n: Tensor) -> list[Tensor]:
        """Both directions over ``x`` ``(B, L, D)`` (row ``b``'s first ``n[b]`` positions real)."""
        B, L, D = x.shape
        pos = torch.arange(L, device=x.device)
        real = pos < n[:, None]  # (B, L)
        back = torch.where(real, n[:, None] - 1 - pos, pos)  # (B, L) each row reversed within its length
        x_f = x.transpose(0, 1)  # (L, B, D)
        x_b = x.gather(1, back.unsqueeze(-1).expand(B, L, D)).transpose(0, 1)
        fwd, bwd = self.bilm.forward_rnn, self.bilm.backward_rnn
        if self.carry is not None:
            f_out, b_out = self._carried(x_f, x_b, n.tolist())
        elif torch.is_grad_enabled() and self.requires_grad:
            f_out, b_out = fwd(x_f)[0], bwd(x_b)[0]
        else:
            f_out, b_out = self.bilm.run_stacks(fwd, bwd, x_f, x_b, None, None)
        out = []
        for f, b in zip(f_out, b_out):  # each (L, B, D)
            f, b = f.transpose(0, 1), b.transpose(0, 1)  # (B, L, D)
            b = b.gather(1, back.unsqueeze(-1).expand(B, L, b.shape[-1]))  # back to the sentence's order
            out.append(torch.cat([f, b], -1) * real.unsqueeze(-1))
        return out

    def _carried(self, x_f: Tensor, x_b: Tensor, n: list[int]) -> tuple[list[Tensor], list[Tensor]]:
        """AllenNLP's stateful mode: row ``r`` starts from the state row ``r`` of the previous batch left (detached)
        and leaves its state at its own last position."""
        L, B, D = x_f.shape
        f_out: list[list[Tensor]] = [[] for _ in range(self.bilm.cfg.num_layers)]
        b_out: list[list[Tensor]] = [[] for _ in range(self.bilm.cfg.num_layers)]
        for r in range(B):
            t = n[r]
            for x, rnn, outs, states in (
                (x_f, self.bilm.forward_rnn, f_out, self.carry.forward),
                (x_b, self.bilm.backward_rnn, b_out, self.carry.backward),
            ):
                layers, state = rnn(x[:t, r : r + 1], states.get(r))  # per layer (t, 1, D)
                states[r] = [tuple(s.detach() for s in layer) for layer in state]
                for k, o in enumerate(layers):
                    outs[k].append(torch.cat([o[:, 0], o.new_zeros(L - t, o.shape[-1])]))  # (L, D)
        return [torch.stack(o, 1) for o in f_out], [torch.stack(o, 1) for o in b_out]


def remove_sentence_boundaries(tensor: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """AllenNLP's ``remove_sentence_boundaries``: drop each row's first and last real position."""
    lengths = mask.sum(1).tolist()
    out = tensor.new_zeros(tensor.shape[0], tensor.shape[1] - 2, *tensor.shape[2:])
    new_mask = torch.zeros(tensor.shape[0], tensor.shape[1] - 2, dtype=torch.bool, device=tensor.device)
    for i, j in enumerate(lengths):
        if j > 2:
            out[i, : j - 2] = tensor[i, 1 : j - 1]
            new_mask[i, : j - 2] = True
    return out, new_mask


# --- Elmo -------------------------------------------------------------------------------------------------------
class Elmo(nn.Module):
    """AllenNLP's ``Elmo``: ``num_output_representations`` scalar mixes of the biLM's layers, each with dropout.

    Args (AllenNLP's):
        options_file, weight_file: bilm-tf's ``options.json`` and ``weights.hdf5`` (``weight_file`` may also be an
            elmokit bundle or an ELMoForManyLangs directory; see the module docstring).
        num_output_representations: how many mixes (e.g. one for a model's input, one for its output).
        requires_grad: fine-tune the biLM (its parameters become trainable).
        do_layer_norm: normalise each layer over the batch's words before mixing.
        dropout: applied to each representation.
        vocab_to_cache: words whose token vectors are computed once; ``forward``'s ``word_inputs`` then index them.
        keep_sentence_boundaries: keep the ``<S>``/``</S>`` positions in the output and the mask.
        scalar_mix_parameters: fixed (non-trainable) raw mix weights, one per layer, instead of learned ones.

    Keyword-only (elmokit's):
        stateful: ``True`` (default) carries the LSTM state from batch to batch row by row, as AllenNLP does (its
            numbers); ``False`` runs every sentence from a zero state (the same vectors whatever the batch).
        cache_dir: where imported models are kept (default ``~/.cache/elmokit/allennlp``).
    """

    def __init__(
        self,
        options_file,
        weight_file,
        num_output_representations: int,
        requires_grad: bool = False,
        do_layer_norm: bool = False,
        dropout: float = 0.5,
        vocab_to_cache: list[str] | None = None,
        keep_sentence_boundaries: bool = False,
        scalar_mix_parameters: list[float] | None = None,
        *,
        stateful: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self._elmo_lstm = _ElmoBiLm(options_file, weight_file, requires_grad, vocab_to_cache, stateful, cache_dir)
        self._has_cached_vocab = vocab_to_cache is not None
        self._keep_sentence_boundaries = keep_sentence_boundaries
        self._dropout = nn.Dropout(p=dropout)
        n = self._elmo_lstm.num_layers
        if scalar_mix_parameters is not None and len(scalar_mix_parameters) != n:
            raise ConfigError(
                f"scalar_mix_parameters has {len(scalar_mix_parameters)} weights, the biLM has {n} layers; pass "
                f"one per layer"
            )
        self._scalar_mixes = nn.ModuleList()
        for _ in range(num_output_representations):
            mix = ScalarMix(n, layer_norm=do_layer_norm, initial_weights=scalar_mix_parameters)
            if scalar_mix_parameters is not None:  # AllenNLP: trainable=False
                for p in mix.parameters():
                    p.requires_grad_(False)
            self._scalar_mixes.append(mix)

    def get_output_dim(self) -> int:
        return self._elmo_lstm.get_output_dim()

    def reset_states(self) -> None:
        """Forget the carried LSTM state."""
        self._elmo_lstm.reset_states()

    def forward(self, inputs: Tensor, word_inputs: Tensor | None = None) -> dict:
        """``inputs`` ``(batch, timesteps, 50)`` character ids (:func:`batch_to_ids`; more leading dimensions are
        flattened and restored), ``word_inputs`` ``(batch, timesteps)`` ids into ``vocab_to_cache``.

        Returns:
            ``{"elmo_representations": [num_output_representations × (batch, timesteps, dim)], "mask": (batch,
            timesteps) bool}``.
        """
        shape = inputs.shape
        reshaped = inputs.reshape(-1, *shape[-2:]) if inputs.dim() > 3 else inputs
        words = None
        if word_inputs is not None and self._has_cached_vocab:
            words = word_inputs.reshape(-1, word_inputs.shape[-1]) if word_inputs.dim() > 2 else word_inputs
        out = self._elmo_lstm(reshaped, words)
        layers, mask = out["activations"], out["mask"]
        stacked = torch.stack(layers, 1)  # (B, layers, T + 2, 2D)
        reps = []
        for mix in self._scalar_mixes:
            rep = mix(stacked, mask)
            if self._keep_sentence_boundaries:
                rep_mask = mask
            else:
                rep, rep_mask = remove_sentence_boundaries(rep, mask)
            reps.append(self._dropout(rep))
        if not self._scalar_mixes:
            rep_mask = mask if self._keep_sentence_boundaries else remove_sentence_boundaries(stacked[:, 0], mask)[1]
        if inputs.dim() > 3:
            lead = shape[:-2]
            reps = [r.reshape(*lead, r.shape[-2], r.shape[-1]) for r in reps]
            rep_mask = rep_mask.reshape(*lead, rep_mask.shape[-1])
        return {"elmo_representations": reps, "mask": rep_mask}


# --- ElmoEmbedder -----------------------------------------------------------------------------------------------
class ElmoEmbedder:
    """AllenNLP 0.9's ``ElmoEmbedder``: every layer of the biLM, ``(3, words, 2D)`` per sentence (numpy).

    Stateful like AllenNLP (the state carried from batch to batch, row by row): pass ``stateful=False`` for
    batch-independent vectors. ``cache_dir``: where imported models are kept (see the module docstring).
    """

    def __init__(
        self,
        options_file,
        weight_file,
        cuda_device: int = -1,
        *,
        stateful: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.elmo_bilm = _ElmoBiLm(options_file, weight_file, stateful=stateful, cache_dir=cache_dir)
        if cuda_device >= 0:
            self.elmo_bilm = self.elmo_bilm.to(f"cuda:{cuda_device}")
        self.cuda_device = cuda_device

    def empty_embedding(self) -> np.ndarray:
        return np.zeros((self.elmo_bilm.num_layers, 0, self.elmo_bilm.get_output_dim()), dtype=np.float32)

    @torch.no_grad()
    def batch_to_embeddings(self, batch: list[list[str]]) -> tuple[Tensor, Tensor]:
        """``(activations (batch, 3, timesteps, 2D), mask (batch, timesteps))`` without ``<S>``/``</S>``."""
        out = self.elmo_bilm(batch_to_ids(batch))
        pairs = [remove_sentence_boundaries(layer, out["mask"]) for layer in out["activations"]]
        return torch.stack([a for a, _ in pairs], 1), pairs[0][1]

    def embed_sentence(self, sentence: list[str]) -> np.ndarray:
        return self.embed_batch([sentence])[0]

    def embed_batch(self, batch: list[list[str]]) -> list[np.ndarray]:
        if batch == [[]]:  # as AllenNLP: nothing run, the state untouched
            return [self.empty_embedding()]
        embeddings, mask = self.batch_to_embeddings(batch)
        out = []
        for i in range(len(batch)):
            length = int(mask[i].sum())
            out.append(embeddings[i, :, :length].cpu().numpy() if length else self.empty_embedding())
        return out

    def embed_sentences(self, sentences: Iterable[list[str]], batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator:
        batch: list[list[str]] = []
        for s in sentences:
            batch.append(s)
            if len(batch) == batch_size:
                yield from self.embed_batch(batch)
                batch = []
        if batch:
            yield from self.embed_batch(batch)

    def embed_file(
        self,
        input_file: IO | str | Path,
        output_file_path: str | Path,
        output_format: str = "all",
        batch_size: int = DEFAULT_BATCH_SIZE,
        forget_sentences: bool = False,
        use_sentence_keys: bool = False,
    ) -> None:
        """AllenNLP's HDF5: one dataset per line (key: the line's index, or the sentence with ``use_sentence_keys``)
        holding all layers (``"all"``), the top one (``"top"``) or their mean (``"average"``), and
        ``sentence_to_index`` (the sentences' JSON, unless ``forget_sentences`` or ``use_sentence_keys``)."""
        import h5py

        if output_format not in ("all", "top", "average"):
            raise ConfigError(f"output_format must be all, top or average, got {output_format!r}")
        name = getattr(input_file, "name", input_file)
        if isinstance(input_file, (str, Path)):
            with open(input_file, encoding="utf-8") as f:
                sentences = [line.strip() for line in f]
        else:
            sentences = [line.strip() for line in input_file]
            input_file.close()
        blank = [i for i, s in enumerate(sentences) if s == ""]
        if blank:
            raise CorpusError(f"{name}: empty lines at indexes {blank[:10]}; remove them (AllenNLP refuses them too)")
        if use_sentence_keys and len(set(sentences)) != len(sentences):
            dup = next(s for i, s in enumerate(sentences) if s in sentences[:i])
            raise CorpusError(
                f"{name}: the sentence {dup[:60]!r} occurs twice; use_sentence_keys needs distinct lines (drop it to "
                f"key by line index)"
            )
        vectors = self.embed_sentences([s.split() for s in sentences], batch_size)
        sentence_to_index = {}
        with h5py.File(output_file_path, "w") as fout:
            for i, emb in enumerate(vectors):
                key = sentences[i] if use_sentence_keys else str(i)
                if not forget_sentences and not use_sentence_keys:
                    sentence_to_index[sentences[i]] = key
                out = {"all": emb, "top": emb[-1], "average": np.average(emb, axis=0)}[output_format]
                fout.create_dataset(key, out.shape, dtype="float32", data=out)
            if not forget_sentences and not use_sentence_keys:
                ds = fout.create_dataset("sentence_to_index", (1,), dtype=h5py.special_dtype(vlen=str))
                ds[0] = json.dumps(sentence_to_index)
