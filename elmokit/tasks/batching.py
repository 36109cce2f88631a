"""Length-bucketed batches of downstream examples, and their tensors (:class:`~elmokit.tasks.models.Batch`)."""

from __future__ import annotations

import random

import torch

from elmokit.tasks.items import Item
from elmokit.tasks.lexicon import Lexicon
from elmokit.tasks.models import Batch

POOL = 50  # batches per sorting pool when shuffling


def make_batches(lengths: list[int], batch_size: int, shuffle: bool, seed: int = 0) -> list[list[int]]:
    """Indices grouped into batches of similar lengths (little padding).

    With ``shuffle`` the order is random (from ``seed``) but lengths are sorted inside pools of
    ``POOL * batch_size`` examples, and the batches are shuffled; without, batches follow length order.
    """
    idx = list(range(len(lengths)))
    if not shuffle:
        idx.sort(key=lambda i: lengths[i])
        return [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    rng = random.Random(seed)
    rng.shuffle(idx)
    batches = []
    span = POOL * batch_size
    for p in range(0, len(idx), span):
        pool = sorted(idx[p : p + span], key=lambda i: lengths[i])
        batches += [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(
    indices: list[int],
    items: list[Item],
    lexicon: Lexicon,
    features=None,
    use_words: bool = True,
    use_chars: bool = False,
    with_targets: bool = True,
    path: str = "",
) -> Batch:
    """Tensors for ``items[indices]``.

    Args:
        features: a :class:`~elmokit.tasks.features.LiveFeatures` or ``CachedFeatures`` (None without ELMo).
        use_words, use_chars: build word ids / character ids.
        with_targets: look up the targets (errors name ``path`` and the line for an unknown label).

    Returns:
        A batch padded to its longest sentence (at least one word wide, so empty sentences work).
    """
    sents = [items[i].words for i in indices]
    B, W = len(sents), max(1, max((len(s) for s in sents), default=0))
    mask = torch.zeros(B, W, dtype=torch.bool)  # (batch, words)
    for b, s in enumerate(sents):
        mask[b, : len(s)] = True
    word_ids = char_ids = targets = layers = None
    if use_words:
        word_ids = torch.zeros(B, W, dtype=torch.long)  # (batch, words)
        for b, s in enumerate(sents):
            word_ids[b, : len(s)] = torch.tensor([lexicon.word_id(w) for w in s], dtype=torch.long)
    if use_chars:
        C = max((len(w) for s in sents for w in s), default=1)
        char_ids = torch.zeros(B, W, max(C, 1), dtype=torch.long)  # (batch, words, chars)
        for b, s in enumerate(sents):
            for j, w in enumerate(s):
                char_ids[b, j, : len(w)] = torch.tensor(lexicon.char_ids(w), dtype=torch.long)
    if with_targets:
        ids = [lexicon.label_ids(items[i], path) for i in indices]
        if isinstance(items[indices[0]].target, list):
            targets = torch.zeros(B, W, dtype=torch.long)  # (batch, words)
            for b, t in enumerate(ids):
                targets[b, : len(t)] = torch.tensor(t, dtype=torch.long)
        else:
            targets = torch.tensor(ids, dtype=torch.long)  # (batch,)
    if features is not None:
        layers = features.layers(indices, sents, W)  # (batch, layers, words, 2D)
    return Batch(mask, layers, word_ids, char_ids, targets)
