"""The frozen biLM: a forward and a backward LM paired, words pooled from their sentencepiece pieces.

Each sentence (a list of whitespace words) becomes ``</s> pieces(w1) ... pieces(wn) </s>`` exactly as a line of
the training stream. The forward LM reads it left to right, the backward LM right to left, each from a zero state
(per-sentence state: a sentence gets the same vectors alone or in any batch, padded or not). For each word:

- ``pooling="edges"`` (default): the forward LM's state at the word's **last** piece and the backward LM's state at
  its **first** piece, so each direction has read the whole word;
- ``"first"``, ``"last"``, ``"mean"``: that piece (or the mean over the word's pieces) for both directions.

Layer 0 is ``[forward embedding; backward embedding]`` pooled the same way; layer ``k`` is ``[forward layer k;
backward layer k]``. Every layer has width ``2 * D``, so the output of a sentence is ``(num_layers + 1, words, 2D)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from elmokit.checkpoint import (
    _file_sha, atomic_dir, commit_dir, load_model, resolve_model_dir, versions, write_json,
)
from elmokit.errors import CheckpointError
from elmokit.vocab import EOS_ID, PAD_ID, Vocab

BUNDLE_FORMAT = "elmokit-bilm/1"
POOLINGS = ("edges", "first", "last", "mean")


class BiLM(nn.Module):
    """A frozen, eval-mode pair of LMs that share one vocabulary.

    Args:
        forward_lm, backward_lm: :class:`~elmokit.lm.LanguageModel` in the two directions.
        vocab: the shared vocabulary.
        sha256: a hash naming this pair (the bundle's, or both manifests' combined).
    """

    def __init__(self, forward_lm: nn.Module, backward_lm: nn.Module, vocab: Vocab, sha256: str = "") -> None:
        super().__init__()
        self.forward_lm = forward_lm
        self.backward_lm = backward_lm
        self.vocab = vocab
        self.sha256 = sha256
        self.dim = forward_lm.output_dim  # D; every output layer is 2D wide
        self.num_layers = forward_lm.cfg.num_layers + 1
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> BiLM:  # the biLM stays in eval mode (no dropout) whatever its parent does
        return super().train(False)

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

    @torch.no_grad()
    def forward(self, sentences: list[list[str]], pooling: str = "edges") -> tuple[Tensor, Tensor]:
        """Layer-wise word vectors for a batch of tokenized sentences.

        Args:
            sentences: ``batch`` lists of words (empty lists allowed).
            pooling: ``edges`` | ``first`` | ``last`` | ``mean`` (see the module docstring).

        Returns:
            ``(vectors, mask)``: ``vectors`` of shape ``(batch, layers, words, 2D)`` (zeros past each sentence's
            end), ``mask`` bool ``(batch, words)``.
        """
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        device = self.forward_lm.embedding.weight.device
        B = len(sentences)
        W = max((len(s) for s in sentences), default=0)
        out = torch.zeros(B, self.num_layers, W, 2 * self.dim, device=device)
        mask = torch.zeros(B, W, dtype=torch.bool, device=device)
        if B == 0 or W == 0:
            return out, mask
        pieces = self.pieces(sentences)
        seqs = [[EOS_ID, *[i for w in ws for i in w], EOS_ID] for ws in pieces]
        lengths = [len(s) for s in seqs]
        L = max(lengths)
        fwd_ids = torch.full((B, L), PAD_ID, dtype=torch.long)
        bwd_ids = torch.full((B, L), PAD_ID, dtype=torch.long)
        for b, s in enumerate(seqs):
            fwd_ids[b, : len(s)] = torch.tensor(s)
            bwd_ids[b, : len(s)] = torch.tensor(s[::-1])  # padding stays at the end, after the reversed sentence
        fwd_layers, _ = self.forward_lm.encode(fwd_ids.to(device))  # each (L, B, D)
        bwd_layers, _ = self.backward_lm.encode(bwd_ids.to(device))
        # piece index ranges per word, in forward positions (position 0 is the leading </s>)
        b_idx, w_idx, f_pos, b_pos, spans = [], [], [], [], []
        for b, ws in enumerate(pieces):
            pos = 1
            n = lengths[b]
            for w, ids in enumerate(ws):
                first, last = pos, pos + len(ids) - 1
                fp = {"edges": last, "first": first, "last": last, "mean": first}[pooling]
                bp = {"edges": first, "first": first, "last": last, "mean": first}[pooling]
                b_idx.append(b)
                w_idx.append(w)
                f_pos.append(fp)
                b_pos.append(n - 1 - bp)  # forward position p is backward position n-1-p
                spans.append((first, last))
                pos = last + 1
            mask[b, : len(ws)] = True
        bi = torch.tensor(b_idx, device=device)
        wi = torch.tensor(w_idx, device=device)
        for k in range(self.num_layers):
            f = fwd_layers[k].transpose(0, 1)  # (B, L, D)
            r = bwd_layers[k].transpose(0, 1)  # (B, L, D)
            if pooling == "mean":
                fv = torch.stack([f[b, s : e + 1].mean(0) for b, (s, e) in zip(b_idx, spans)])  # (N, D)
                rv = torch.stack([r[b, lengths[b] - 1 - e : lengths[b] - s].mean(0) for b, (s, e) in zip(b_idx, spans)])
            else:
                fv = f[bi, torch.tensor(f_pos, device=device)]  # (N, D)
                rv = r[bi, torch.tensor(b_pos, device=device)]  # (N, D)
            out[bi, k, wi] = torch.cat([fv, rv], -1)  # (N, 2D)
        return out, mask


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
    if (f.num_layers, f.embed_dim, f.proj_size or f.hidden_size) != (b.num_layers, b.embed_dim, b.proj_size or b.hidden_size):
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


def load_bilm(path: str | Path, backward: str | Path | None = None, device: str = "cpu") -> BiLM:
    """Load a biLM from a bundle directory (``elmokit bundle``), or from a forward and a backward model directory.

    Raises:
        CheckpointError: a pair whose directions, vocabularies or shapes do not fit; missing or corrupt files.
    """
    p = Path(path)
    if backward is None:
        manifest_path = p / "manifest.json"
        if not manifest_path.is_file():
            raise CheckpointError(f"{path}: not a biLM bundle (no manifest.json); make one with `elmokit bundle "
                                  f"FORWARD_RUN BACKWARD_RUN --out DIR`")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise CheckpointError(f"{manifest_path}: unreadable ({e}); the bundle is corrupt") from None
        if manifest.get("format") != BUNDLE_FORMAT:
            raise CheckpointError(f"{path}: format {manifest.get('format')!r} is not a biLM bundle ({BUNDLE_FORMAT}); "
                                  f"pass a bundle, or a forward and a backward model")
        fwd_dir, bwd_dir = p / "forward", p / "backward"
        for d, key in ((fwd_dir, "forward_manifest_sha256"), (bwd_dir, "backward_manifest_sha256")):
            if not (d / "manifest.json").is_file() or _file_sha(d / "manifest.json") != manifest[key]:
                raise CheckpointError(f"{d}: missing or does not match the bundle manifest; the bundle is corrupt")
        sha = manifest["sha256"]
    else:
        fwd_dir, bwd_dir = resolve_model_dir(path), resolve_model_dir(backward)
        sha = _pair_sha(fwd_dir, bwd_dir)
    fwd, fcfg, vocab, fman = load_model(fwd_dir, device)
    bwd, bcfg, _, bman = load_model(bwd_dir, device)
    _check_pair(fman, bman, fcfg, bcfg, str(path), str(backward or bwd_dir))
    return BiLM(fwd, bwd, vocab, sha)


def _pair_sha(fwd_dir: Path, bwd_dir: Path) -> str:
    import hashlib

    return hashlib.sha256((_file_sha(fwd_dir / "manifest.json") + _file_sha(bwd_dir / "manifest.json")).encode()).hexdigest()


def write_bundle(forward: str | Path, backward: str | Path, out: str | Path) -> Path:
    """Write a self-contained biLM directory: ``forward/``, ``backward/`` (model directories) and ``manifest.json``.

    The pair is checked first (directions, vocab, shapes), so a bundle that exists always loads.
    """
    import shutil

    fwd_dir, bwd_dir = resolve_model_dir(forward), resolve_model_dir(backward)
    bilm = load_bilm(fwd_dir, bwd_dir)  # validates the pair
    out = Path(out)
    tmp = atomic_dir(out)
    shutil.copytree(fwd_dir, tmp / "forward")
    shutil.copytree(bwd_dir, tmp / "backward")
    fm, bm = _file_sha(tmp / "forward" / "manifest.json"), _file_sha(tmp / "backward" / "manifest.json")
    write_json(tmp / "manifest.json", {
        "format": BUNDLE_FORMAT,
        "sha256": _pair_sha(tmp / "forward", tmp / "backward"),
        "forward_manifest_sha256": fm,
        "backward_manifest_sha256": bm,
        "vocab_sha256": bilm.vocab.sha256,
        "layers": bilm.num_layers,
        "dim": 2 * bilm.dim,
        "sources": {"forward": str(fwd_dir), "backward": str(bwd_dir)},
        "versions": versions(),
    })
    commit_dir(tmp, out)
    return out
