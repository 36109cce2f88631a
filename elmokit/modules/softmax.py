"""LM heads: a sampled softmax for training and the full softmax for evaluation.

Sampled softmax (Jean et al. 2015, as in bilm-tf, but with the right proposal for sentencepiece ids):

- ``K`` negatives per step, shared by every position in the batch, drawn with replacement from
  ``Q(w) ∝ count(w) ** alpha`` (corpus unigram counts; sentencepiece ids are not frequency-sorted, so the
  log-uniform proposal of bilm-tf would be wrong);
- every logit is corrected by ``- log(K * Q(w))`` (expected count of ``w`` among the negatives);
- a negative equal to the position's target ("accidental hit") is masked out;
- negatives come from a ``torch.Generator`` of the head's own, so seeding them does not touch the global RNG that
  drives dropout, and every process draws the same negatives (a shared sample for the global batch).

With ``K >= V`` the head uses every class with no correction and equals the full softmax exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SoftmaxHead(nn.Module):
    """Output embedding ``(V, D)`` and bias ``(V,)``; full or sampled loss.

    Args:
        vocab_size: V.
        dim: D, the width of the hidden states fed to it.
        num_samples: K negatives for the sampled loss.
        counts: unigram counts ``(V,)`` for the proposal (``None`` = uniform); set later with :meth:`set_counts`.
        alpha: proposal exponent.
        seed: seed of the head's own negative-sampling generator.
    """

    def __init__(self, vocab_size: int, dim: int, num_samples: int = 1024, alpha: float = 0.75, seed: int = 0):
        super().__init__()
        self.vocab_size = vocab_size
        self.weight = nn.Parameter(torch.empty(vocab_size, dim))
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        nn.init.normal_(self.weight, std=dim**-0.5)
        self.num_samples = num_samples
        self.alpha = alpha
        self.register_buffer("log_q", torch.full((vocab_size,), -math.log(vocab_size)), persistent=False)
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)

    def set_counts(self, counts: Tensor) -> None:
        """Set the proposal from unigram counts ``(V,)`` (unseen pieces get count 1, so they can be drawn)."""
        q = counts.double().clamp_min(1.0).pow(self.alpha)
        q = q / q.sum()
        self.log_q = q.log().float().to(self.weight.device)

    def full_logits(self, hidden: Tensor) -> Tensor:
        """Logits over the whole vocabulary.

        Args:
            hidden: ``(N, D)``.

        Returns:
            ``(N, V)``.
        """
        return torch.addmm(self.bias, hidden, self.weight.t())

    def full_loss(self, hidden: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
        """Cross-entropy over the whole vocabulary. hidden ``(N, D)``, targets ``(N,)``."""
        return F.cross_entropy(self.full_logits(hidden), targets, reduction=reduction)

    def sample(self, device: torch.device) -> Tensor:
        """Draw ``K`` negative ids ``(K,)`` from the proposal with the head's own generator (CPU, then moved)."""
        probs = self.log_q.detach().double().exp().cpu()
        ids = torch.multinomial(probs, self.num_samples, replacement=True, generator=self.generator)
        return ids.to(device)

    def sampled_loss(self, hidden: Tensor, targets: Tensor, negatives: Tensor | None = None) -> Tensor:
        """Mean sampled-softmax cross-entropy.

        Args:
            hidden: ``(N, D)`` states; targets: ``(N,)`` ids; negatives: ``(K,)`` ids (drawn if ``None``).

        Returns:
            A scalar loss (an estimate of the full loss; lower than it in expectation for small K).
        """
        if self.num_samples >= self.vocab_size:
            return self.full_loss(hidden, targets)
        if negatives is None:
            negatives = self.sample(hidden.device)
        k = negatives.numel()
        log_kq = self.log_q.to(hidden.device) + math.log(k)  # (V,) log expected count among the negatives
        true_w = self.weight[targets]  # (N, D)
        true_logit = (hidden * true_w).sum(-1) + self.bias[targets] - log_kq[targets]  # (N,)
        neg_logits = torch.addmm(self.bias[negatives], hidden, self.weight[negatives].t())  # (N, K)
        neg_logits = neg_logits - log_kq[negatives]
        hits = targets.unsqueeze(1) == negatives.unsqueeze(0)  # (N, K) accidental hits
        neg_logits = neg_logits.masked_fill(hits, float("-inf"))
        logits = torch.cat([true_logit.unsqueeze(1), neg_logits], 1)  # (N, 1 + K), the target in column 0
        return -F.log_softmax(logits, dim=1)[:, 0].mean()
