"""The frozen biLM: a forward and a backward LM paired, words pooled from their sentencepiece pieces.

Each sentence (a list of whitespace words) becomes ``</s> pieces(w1) ... pieces(wn) </s>`` exactly as a line of
the training stream. The forward LM reads it left to right, the backward LM right to left, each from a zero state
(per-sentence state: a sentence gets the same vectors alone or in any batch, padded or not). For each word:

- ``pooling="edges"`` (default): the forward LM's state at the word's **last** piece and the backward LM's state at
  its **first** piece, so each direction has read the whole word;
- ``"first"``, ``"last"``, ``"mean"``: that piece (or the mean over the word's pieces) for both directions.

An optional document mode (:meth:`BiLM.document`, ``Embedder.embed_document``) runs a document's sentences as one
sequence ``</s> s1 </s> s2 </s> ...``, so context carries across sentences (and vectors then depend on it).

Layer 0 is ``[forward embedding; backward embedding]`` pooled the same way; layer ``k`` is ``[forward layer k;
backward layer k]``. Every layer has width ``2 * D``, so the output of a sentence is ``(num_layers + 1, words, 2D)``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from elmokit.bilm.charbilm import CHAR_BUNDLE_FORMAT, load_char_bilm
from elmokit.bilm.frozen import FrozenBiLM, padded_rows
from elmokit.core.choices import POOLINGS
from elmokit.core.errors import CheckpointError
from elmokit.core.files import atomic_dir, commit_dir, recover_dir, versions, write_json
from elmokit.core.textfile import sha256_file
from elmokit.lm.model_dir import load_model, resolve_model_dir
from elmokit.lm.vocab import EOS_ID, PAD_ID, Vocab

BUNDLE_FORMAT = "elmokit-bilm/1"


class BiLM(FrozenBiLM):
    """A frozen, eval-mode pair of LMs that share one vocabulary.

    Args:
        forward_lm, backward_lm: :class:`~elmokit.lm.model.LanguageModel` in the two directions.
        vocab: the shared vocabulary.
        sha256: a hash naming this pair (the bundle's, or both manifests' combined).
        manifests: each direction's model manifest (``{"forward": ..., "backward": ...}``), where its validation
            perplexity is kept for the domain-fit check.
    """

    has_softmax = True

    def __init__(
        self,
        forward_lm: nn.Module,
        backward_lm: nn.Module,
        vocab: Vocab,
        sha256: str = "",
        manifests: dict[str, dict] | None = None,
    ) -> None:
        super().__init__()
        self.forward_lm = forward_lm
        self.backward_lm = backward_lm
        self.vocab = vocab
        self.sha256 = sha256
        self.manifests = manifests or {}
        self.dim = forward_lm.output_dim  # D; every output layer is 2D wide
        self.num_layers = forward_lm.cfg.num_layers + 1
        self._start_cache: dict[str, list] = {}  # per direction: the state after reading </s> from zero
        self.freeze()

    # --- words → pieces -----------------------------------------------------------------------------------------
    def pieces(self, sentences: list[list[str]]) -> list[list[list[int]]]:
        """Piece ids per word per sentence (each word encoded alone; for whitespace-split text this is the same
        segmentation as encoding the line)."""
        flat = [w for s in sentences for w in s]
        enc = self.vocab.encode_batch(flat) if flat else []
        out, k = [], 0
        for s in sentences:
            words = []
            for _ in s:
                ids = enc[k] or [PAD_ID]  # a word that encodes to nothing (e.g. a lone control char) gets one slot
                words.append(ids)
                k += 1
            out.append(words)
        return out

    def sequence_lengths(self, pieces: list[list[list[int]]]) -> list[int]:
        """Positions each sentence of :meth:`pieces` takes in a row: its pieces and the two ``</s>``."""
        return [sum(len(w) for w in p) + 2 for p in pieces]

    @torch.no_grad()
    def encode_words(
        self, rows: list[list[list[str]]], pooling: str = "edges", pieces: list[list[list[list[int]]]] | None = None
    ) -> Tensor:
        """Both LMs over rows of sentences (see :meth:`FrozenBiLM.encode_rows`), pooled per word, every word of
        every row back to back, in order (rows, sentences, words).

        Args:
            rows: ``batch`` rows, each a list of sentences, each a list of words.
            pooling: ``edges`` | ``first`` | ``last`` | ``mean`` (see the module docstring).
            pieces: the rows already encoded by :meth:`pieces` (per row, per sentence, per word), if at hand.

        Returns:
            ``(layers, N, 2D)`` for the ``N`` words of all rows.
        """
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        device = self.device
        if not any(len(sent) for row in rows for sent in row):
            return torch.zeros(self.num_layers, 0, 2 * self.dim, device=device)
        seqs, spans = [], []  # spans[r][s] = [(first, last) piece positions of each word]
        for r, row in enumerate(rows):
            seq, row_spans = [EOS_ID], []
            for words in pieces[r] if pieces is not None else self.pieces(row):
                word_spans = []
                for ids in words:
                    word_spans.append((len(seq), len(seq) + len(ids) - 1))
                    seq.extend(ids)
                seq.append(EOS_ID)
                row_spans.append(word_spans)
            seqs.append(seq)
            spans.append(row_spans)
        # The leading </s> always leaves the same state (read from zero), and no word is pooled at the final </s>:
        # each LM runs over the row without them, from that cached state (the same numbers, two steps fewer).
        B = len(seqs)
        fwd, bwd, _ = padded_rows([q[1:-1] for q in seqs], PAD_ID)  # (B, L) each, without the two </s>
        fwd_ids, bwd_ids = torch.from_numpy(fwd), torch.from_numpy(bwd)
        fwd_layers, bwd_layers = self._run_lms(fwd_ids.to(device), bwd_ids.to(device), B)  # each (L, B, D) per layer
        if pooling == "mean":
            f_all = torch.stack(fwd_layers, 1)  # (L, layers, B, D)
            r_all = torch.stack(bwd_layers, 1)
            fv, rv = self._mean_pool(f_all, r_all, seqs, spans)  # (N, layers, D) each
            return torch.cat([fv, rv], -1).transpose(0, 1)  # (layers, N, 2D)
        # one forward and one backward position per word: full-row position p is forward index p-1 and, in the
        # reversed row of n tokens, backward index n-2-p; as flat indices into (L * B) rows
        f_flat, r_flat = [], []
        for b, row_spans in enumerate(spans):
            n = len(seqs[b])
            for word_spans in row_spans:
                for first, last in word_spans:
                    fp = first if pooling == "first" else last
                    bp = last if pooling == "last" else first
                    f_flat.append((fp - 1) * B + b)
                    r_flat.append((n - 2 - bp) * B + b)
        fi = torch.tensor(f_flat, device=device)
        ri = torch.tensor(r_flat, device=device)
        D = self.dim
        out = torch.empty(len(fwd_layers), len(f_flat), 2 * D, device=device)  # (layers, N, 2D)
        for k, (fl, rl) in enumerate(zip(fwd_layers, bwd_layers)):  # each (L, B, D)
            # gathered straight from each layer (no stacked copy of all positions)
            out[k, :, :D] = fl.reshape(-1, D).index_select(0, fi)  # (L * B, D) -> (N, D)
            out[k, :, D:] = rl.reshape(-1, D).index_select(0, ri)
        return out

    @torch.no_grad()
    def piece_layers(self, words: list[str]) -> tuple[Tensor, list[list[int]], list[list[tuple[int, int]]]]:
        """One sentence's layers at every piece, before :meth:`encode_words` pools them to words.

        Piece ``i``'s vector at layer ``k`` is ``[forward LM at i; backward LM at i]`` (layer 0: the two
        embeddings), each direction having read the sentence from its own end up to piece ``i``. Pieces ``a..b``
        pooled as :meth:`encode_words` pools a word: ``edges`` takes the forward half at ``b`` and the backward half
        at ``a``, ``first`` and ``last`` both halves at ``a`` or ``b``, ``mean`` both averaged over ``a..b``.

        Args:
            words: one sentence's words.

        Returns:
            ``(layers, ids, spans)``: ``layers`` ``(num_layers, P, 2D)`` for the sentence's ``P`` pieces in order;
            per word, its piece ids (:meth:`pieces`) and each piece's ``(start, end)`` characters in the word. A
            byte-fallback piece that does not end its character spans ``(c, c)`` (c: where the character starts);
            a word that encodes to nothing has one piece spanning it all. Where sentencepiece is too old to map
            offsets, the spans are those of the pieces' text, the word's unless normalisation changed its length.
        """
        ids = self.pieces([words])[0]
        spans: list[list[tuple[int, int]]] = []
        for word, word_ids in zip(words, ids):
            if word_ids == [PAD_ID]:  # encodes to nothing: the one slot :meth:`pieces` gives it
                spans.append([(0, len(word))])
                continue
            try:
                offsets = [tuple(o) for o in self.vocab.sp.encode(word, return_type="offset_mapping")["offsets"]]
            except (TypeError, ValueError):  # an older sentencepiece: the spans of the pieces' text
                surfaces = self.vocab.surfaces(word_ids)
                offsets = [(e - len(s), e) for e, s in zip(itertools.accumulate(map(len, surfaces)), surfaces)]
            spans.append(offsets)
        seq = [i for word_ids in ids for i in word_ids]
        if not seq:
            return torch.zeros(self.num_layers, 0, 2 * self.dim, device=self.device), ids, spans
        x = torch.tensor([seq], device=self.device)  # (1, P)
        fwd, bwd = self._run_lms(x, x.flip(1), 1)  # per layer (P, 1, D); the backward LM's in reversed order
        layers = torch.cat([torch.stack(fwd)[:, :, 0], torch.stack(bwd)[:, :, 0].flip(1)], -1)  # (layers, P, 2D)
        return layers, ids, spans

    def _run_lms(self, fwd_ids: Tensor, bwd_ids: Tensor, batch: int) -> tuple[list[Tensor], list[Tensor]]:
        """Both LMs over their ``(batch, L)`` ids from the cached start state.

        Returns:
            Per direction, per layer (the embedding first) ``(L, batch, D)``.
        """
        f_state, b_state = self._start_state("forward", batch), self._start_state("backward", batch)
        f_emb, b_emb = self.forward_lm.embedding(fwd_ids.t()), self.backward_lm.embedding(bwd_ids.t())  # (L, B, D)
        f_out, b_out = self.run_stacks(self.forward_lm.rnn, self.backward_lm.rnn, f_emb, b_emb, f_state, b_state)
        return [f_emb, *f_out], [b_emb, *b_out]

    def _start_state(self, direction: str, batch: int) -> list:
        """The state each LM is in after reading ``</s>`` from zero, for ``batch`` rows (computed once)."""
        if direction not in self._start_cache:
            lm = self.forward_lm if direction == "forward" else self.backward_lm
            eos = torch.tensor([[EOS_ID]], device=lm.embedding.weight.device)
            self._start_cache[direction] = lm.encode(eos)[1]  # per layer (h, c), each (1, dim)
        return self.rows_of(self._start_cache[direction], batch)

    @staticmethod
    def _mean_pool(f_all: Tensor, r_all: Tensor, seqs, spans) -> tuple[Tensor, Tensor]:
        """Mean over each word's pieces, both directions: two ``(N, layers, D)`` tensors."""
        fv, rv = [], []
        for b, row_spans in enumerate(spans):
            n = len(seqs[b])
            for word_spans in row_spans:
                for first, last in word_spans:
                    fv.append(f_all[first - 1 : last, :, b].mean(0))  # (layers, D)
                    rv.append(r_all[n - 2 - last : n - 1 - first, :, b].mean(0))
        return torch.stack(fv), torch.stack(rv)


def _check_pair(fwd_manifest: dict, bwd_manifest: dict, fwd_cfg, bwd_cfg, fwd_path: str, bwd_path: str) -> None:
    if fwd_manifest["direction"] != "forward":
        raise CheckpointError(f"{fwd_path}: is a {fwd_manifest['direction']} LM; pass the forward LM first")
    if bwd_manifest["direction"] != "backward":
        raise CheckpointError(f"{bwd_path}: is a {bwd_manifest['direction']} LM; pass the backward LM second")
    if fwd_manifest["vocab_sha256"] != bwd_manifest["vocab_sha256"]:
        raise CheckpointError(
            f"{fwd_path} and {bwd_path} were trained with different vocabularies "
            f"({fwd_manifest['vocab_sha256'][:12]}… vs {bwd_manifest['vocab_sha256'][:12]}…); pair two LMs "
            f"trained with the same vocab model"
        )
    f, b = fwd_cfg.model, bwd_cfg.model
    if (f.num_layers, f.embed_dim, f.proj_size or f.hidden_size) != (
        b.num_layers,
        b.embed_dim,
        b.proj_size or b.hidden_size,
    ):
        raise CheckpointError(
            f"{fwd_path} ({f.num_layers} layers, embed {f.embed_dim}, output {f.proj_size or f.hidden_size}) and "
            f"{bwd_path} ({b.num_layers} layers, embed {b.embed_dim}, output {b.proj_size or b.hidden_size}) do not "
            f"have the same shape; pair two LMs of the same size"
        )
    if f.embed_dim != (f.proj_size or f.hidden_size):
        raise CheckpointError(
            f"{fwd_path}: embedding width {f.embed_dim} != output width {f.proj_size or f.hidden_size}; the biLM "
            f"needs every layer the same width (use a size whose projection equals its embedding)"
        )


def load_bilm(path: str | Path, backward: str | Path | None = None, device: str = "cpu") -> FrozenBiLM:
    """Load a biLM from a bundle directory (``elmokit bundle``, or ``elmokit import-elmo``'s character biLM), or
    from a forward and a backward model directory.

    Raises:
        CheckpointError: a pair whose directions, vocabularies or shapes do not fit; missing or corrupt files.
    """
    p = Path(path)
    if backward is None:
        recover_dir(p)  # a bundle whose replacement was killed between its two renames is put back first
        manifest_path = p / "manifest.json"
        if not manifest_path.is_file():
            raise CheckpointError(
                f"{path}: not a biLM bundle (no manifest.json); make one with `elmokit bundle "
                f"FORWARD_RUN BACKWARD_RUN --out DIR`"
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise CheckpointError(f"{manifest_path}: unreadable ({e}); the bundle is corrupt") from None
        if not isinstance(manifest, dict):
            raise CheckpointError(f"{manifest_path}: not a JSON object; the bundle is corrupt (re-copy or rebuild it)")
        if manifest.get("format") == CHAR_BUNDLE_FORMAT:  # an imported ELMo (elmokit import-elmo)
            return load_char_bilm(p, manifest, device)
        if manifest.get("format") != BUNDLE_FORMAT:
            raise CheckpointError(
                f"{path}: format {manifest.get('format')!r} is not a biLM bundle ({BUNDLE_FORMAT}); "
                f"pass a bundle, or a forward and a backward model"
            )
        fwd_dir, bwd_dir = p / "forward", p / "backward"
        for d, key in ((fwd_dir, "forward_manifest_sha256"), (bwd_dir, "backward_manifest_sha256")):
            if not (d / "manifest.json").is_file() or sha256_file(d / "manifest.json") != manifest[key]:
                raise CheckpointError(f"{d}: missing or does not match the bundle manifest; the bundle is corrupt")
        sha = manifest["sha256"]
    else:
        fwd_dir, bwd_dir = resolve_model_dir(path), resolve_model_dir(backward)
        sha = _pair_sha(fwd_dir, bwd_dir)
    f, b = load_model(fwd_dir, device), load_model(bwd_dir, device)
    _check_pair(f.manifest, b.manifest, f.cfg, b.cfg, str(path), str(backward or bwd_dir))
    if "char_cnn" in (f.cfg.model.encoder, b.cfg.model.encoder):  # two character-CNN LMs: the original ELMo
        from elmokit.bilm.char_pair import load_char_pair

        return load_char_pair(f, b, sha)
    return BiLM(f.model, b.model, f.vocab, sha, {"forward": f.manifest, "backward": b.manifest})


def _pair_sha(fwd_dir: Path, bwd_dir: Path) -> str:
    import hashlib

    return hashlib.sha256(
        (sha256_file(fwd_dir / "manifest.json") + sha256_file(bwd_dir / "manifest.json")).encode()
    ).hexdigest()


def write_bundle(forward: str | Path, backward: str | Path, out: str | Path, encoder: str = "same") -> Path:
    """Write a self-contained biLM directory: ``forward/``, ``backward/`` (model directories) and ``manifest.json``;
    for two character-CNN LMs, a character biLM bundle (:mod:`elmokit.bilm.char_pair`: bilm-tf's layout, one token
    encoder, chosen by ``encoder``).

    The pair is checked first (directions, vocab, shapes), so a bundle that exists always loads.
    """
    import shutil

    fwd_dir, bwd_dir = resolve_model_dir(forward), resolve_model_dir(backward)
    out = Path(out)
    for src in (Path(forward), Path(backward)):
        a, b = out.resolve(), src.resolve()
        if a == b or b in a.parents or a in b.parents:
            raise CheckpointError(
                f"--out {out}: is, or is inside, or holds the run {src}; write the bundle elsewhere (the runs are "
                f"copied into it)"
            )
    f, b = load_model(fwd_dir), load_model(bwd_dir)
    _check_pair(f.manifest, b.manifest, f.cfg, b.cfg, str(forward), str(backward))
    if "char_cnn" in (f.cfg.model.encoder, b.cfg.model.encoder):
        from elmokit.bilm.char_pair import write_char_pair

        return write_char_pair(f, b, out, encoder)
    if encoder != "same":
        raise CheckpointError(f"--encoder {encoder}: is for a pair of character-CNN LMs (these read pieces)")
    bilm = load_bilm(fwd_dir, bwd_dir)  # validates the pair
    tmp = atomic_dir(out)
    try:
        shutil.copytree(fwd_dir, tmp / "forward")
        shutil.copytree(bwd_dir, tmp / "backward")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fm, bm = sha256_file(tmp / "forward" / "manifest.json"), sha256_file(tmp / "backward" / "manifest.json")
    write_json(
        tmp / "manifest.json",
        {
            "format": BUNDLE_FORMAT,
            "sha256": _pair_sha(tmp / "forward", tmp / "backward"),
            "forward_manifest_sha256": fm,
            "backward_manifest_sha256": bm,
            "vocab_sha256": bilm.vocab.sha256,
            "layers": bilm.num_layers,
            "dim": 2 * bilm.dim,
            "sources": {"forward": str(fwd_dir), "backward": str(bwd_dir)},
            "versions": versions(),
        },
    )
    commit_dir(tmp, out)
    return out
