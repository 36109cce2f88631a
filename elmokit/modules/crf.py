"""A linear-chain CRF: log-likelihood by the forward algorithm, Viterbi decoding, and transition constraints that
forbid invalid BIO/BIOES sequences (e.g. ``O → I-X``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def allowed_transitions(tags: list[str], scheme: str = "bio") -> tuple[Tensor, Tensor, Tensor]:
    """Masks of allowed moves for a tag set.

    Returns:
        ``(trans (T, T), start (T,), end (T,))`` bool tensors: ``trans[i, j]`` allows tag ``i`` → tag ``j``.
    """
    n = len(tags)

    def parts(t: str) -> tuple[str, str]:
        return (t, "") if "-" not in t else tuple(t.split("-", 1))  # type: ignore[return-value]

    trans = torch.ones(n, n, dtype=torch.bool)
    start = torch.ones(n, dtype=torch.bool)
    end = torch.ones(n, dtype=torch.bool)
    for j, b in enumerate(tags):
        bp, bt = parts(b)
        if bp in ("I", "E"):
            start[j] = False
        for i, a in enumerate(tags):
            ap, at = parts(a)
            if scheme == "bio" and bp == "I":
                trans[i, j] = ap in ("B", "I") and at == bt
            elif scheme == "bioes":
                if ap in ("B", "I"):  # inside a chunk: only I or E of the same type may follow
                    trans[i, j] = bp in ("I", "E") and bt == at
                else:  # after O, E or S: a chunk may start (B, S) or O follows
                    trans[i, j] = bp in ("B", "S", "O")
        if scheme == "bioes" and bp in ("B", "I"):
            end[j] = False
    return trans, start, end


class CRF(nn.Module):
    """Transition scores between ``num_tags`` tags, plus start and end scores; constrained moves get -1e4.

    Args:
        num_tags: number of tags.
        constraints: optional ``(trans, start, end)`` bool masks from :func:`allowed_transitions`.
    """

    def __init__(self, num_tags: int, constraints: tuple[Tensor, Tensor, Tensor] | None = None) -> None:
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # (from, to)
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        if constraints is None:
            constraints = (
                torch.ones(num_tags, num_tags, dtype=torch.bool),
                torch.ones(num_tags, dtype=torch.bool),
                torch.ones(num_tags, dtype=torch.bool),
            )
        for name, m in zip(("mask_trans", "mask_start", "mask_end"), constraints):
            self.register_buffer(name, (~m).float() * -1e4)

    def _scores(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.transitions + self.mask_trans, self.start + self.mask_start, self.end + self.mask_end

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Forward algorithm.

        Args:
            emissions: ``(batch, time, tags)``; mask: bool ``(batch, time)``, each row a prefix of True.

        Returns:
            ``(batch,)`` log Z.
        """
        trans, start, end = self._scores()
        alpha = start + emissions[:, 0]  # (batch, tags)
        for t in range(1, emissions.size(1)):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), 1) + emissions[:, t]  # (batch, tags)
            alpha = torch.where(mask[:, t : t + 1], nxt, alpha)
        return torch.logsumexp(alpha + end, 1)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Score of given tag sequences ``(batch, time)``; returns ``(batch,)``."""
        trans, start, end = self._scores()
        B, T, _ = emissions.shape
        m = mask.float()
        s = start[tags[:, 0]] + emissions[:, 0].gather(1, tags[:, :1]).squeeze(1)
        if T > 1:
            em = emissions[:, 1:].gather(2, tags[:, 1:].unsqueeze(2)).squeeze(2)  # (batch, time-1)
            tr = trans[tags[:, :-1], tags[:, 1:]]  # (batch, time-1)
            s = s + ((em + tr) * m[:, 1:]).sum(1)
        last = tags.gather(1, (mask.sum(1) - 1).clamp_min(0).unsqueeze(1)).squeeze(1)
        return s + end[last]

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Mean negative log-likelihood over the batch.

        Args:
            emissions: ``(batch, time, tags)``; tags: ``(batch, time)``; mask: bool ``(batch, time)``.
        """
        return (self.log_partition(emissions, mask) - self.score(emissions, tags, mask)).mean()

    @torch.no_grad()
    def viterbi(self, emissions: Tensor, mask: Tensor) -> list[list[int]]:
        """Best tag sequence per row (of each row's length)."""
        trans, start, end = self._scores()
        B, T, _ = emissions.shape
        score = start + emissions[:, 0]  # (batch, tags)
        back = []
        for t in range(1, T):
            cand = score.unsqueeze(2) + trans.unsqueeze(0)  # (batch, from, to)
            best, idx = cand.max(1)  # (batch, to)
            nxt = best + emissions[:, t]
            keep = mask[:, t : t + 1]
            score = torch.where(keep, nxt, score)
            back.append(torch.where(keep, idx, torch.arange(score.size(1)).expand_as(idx)))
        score = score + end
        out = []
        lengths = mask.sum(1).tolist()
        for b in range(B):
            tag = int(score[b].argmax())
            path = [tag]
            for t in range(int(lengths[b]) - 1, 0, -1):
                tag = int(back[t - 1][b, tag])
                path.append(tag)
            out.append(path[::-1])
        return out
