"""``elmokit generate``: sample text from one LM (temperature, top-k), the sanity check users expect."""

from __future__ import annotations

import numpy as np
import torch

from elmokit.lm.vocab import EOS_ID
from elmokit.lm.words import BOS_WORD, EOS_WORD, CharInputs, word_chars


@torch.no_grad()
def sample(
    model,
    vocab,
    prompt: str = "",
    n_tokens: int = 50,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    reverse: bool = False,
    mapper=None,
) -> str:
    """Sample ``n_tokens`` tokens after ``prompt`` (before it, for a backward LM) and return the text.

    A forward LM continues the prompt; a backward LM writes what comes before it (its output is reversed back). A
    char_cnn LM (given its ``mapper``) samples whole words and reads the prompt's words by their characters, known
    or not; a sentence boundary it predicts starts a new line.
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    g = torch.Generator().manual_seed(seed)
    model.eval()
    if mapper is None:
        prompt_ids = vocab.encode(prompt) if prompt else []
        start, boundaries = [EOS_ID], {EOS_ID}

        def inputs(tokens: list) -> torch.Tensor:
            return torch.tensor([tokens])  # (1, time)

    else:
        prompt_ids = prompt.split()
        start, boundaries = [EOS_WORD if reverse else BOS_WORD], {BOS_WORD, EOS_WORD}

        def inputs(tokens: list) -> CharInputs:
            words = [vocab.words[t] if isinstance(t, int) else t for t in tokens]
            chars = torch.from_numpy(np.stack([word_chars(mapper, w) for w in words]))  # (time, max_chars)
            return CharInputs(chars, torch.arange(len(words)).unsqueeze(0))  # index (1, time)

    layers, state = model.encode(inputs(start + (prompt_ids[::-1] if reverse else prompt_ids)))
    h = layers[-1][-1]  # (1, D): the top layer at the last position
    out: list[int] = []
    for _ in range(n_tokens):
        logits = model.head.full_logits(h)[0] / temperature  # (V,)
        if top_k:
            kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=g))
        out.append(nxt)
        layers, state = model.encode(inputs([nxt]), state)
        h = layers[-1][-1]
    text = (out[::-1] + prompt_ids) if reverse else (prompt_ids + out)
    lines, cur = [], []  # a boundary token marks a line break
    for t in text:
        if isinstance(t, int) and t in boundaries:
            lines.append(cur)
            cur = []
        else:
            cur.append(t)
    lines.append(cur)
    if mapper is None:
        return "\n".join(vocab.decode(c) for c in lines)
    return "\n".join(" ".join(vocab.words[t] if isinstance(t, int) else t for t in c) for c in lines if c)
