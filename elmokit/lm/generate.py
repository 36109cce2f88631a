"""``elmokit generate``: sample text from one LM (temperature, top-k), the sanity check users expect."""

from __future__ import annotations

import torch

from elmokit.lm.vocab import EOS_ID


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
) -> str:
    """Sample ``n_tokens`` pieces after ``prompt`` (before it, for a backward LM) and return the text.

    A forward LM continues the prompt; a backward LM writes what comes before it (its output is reversed back).
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    g = torch.Generator().manual_seed(seed)
    model.eval()
    prompt_ids = vocab.encode(prompt) if prompt else []
    ids = [EOS_ID, *(prompt_ids[::-1] if reverse else prompt_ids)]  # the backward LM reads right to left
    layers, state = model.encode(torch.tensor([ids]))  # layers[-1]: (time, 1, D)
    h = layers[-1][-1]  # (1, D)
    out: list[int] = []
    for _ in range(n_tokens):
        logits = model.head.full_logits(h)[0] / temperature  # (V,)
        if top_k:
            kth = torch.topk(logits, top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=g))
        out.append(nxt)
        layers, state = model.encode(torch.tensor([[nxt]]), state)
        h = layers[-1][-1]
    text_ids = (out[::-1] + vocab.encode(prompt)) if reverse else (vocab.encode(prompt) + out)
    # </s> marks a line break
    lines, cur = [], []
    for i in text_ids:
        if i == EOS_ID:
            lines.append(vocab.decode(cur))
            cur = []
        else:
            cur.append(i)
    lines.append(vocab.decode(cur))
    return "\n".join(lines)
