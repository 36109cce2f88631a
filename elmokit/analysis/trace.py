"""An LM's units over a text, as ``elmokit cells`` reads them: every unit of every layer (the hidden state and, for
an LSTM, the cell state) at every piece of one stream (``</s>`` between lines, the state carried through), in the
text's order for a backward LM too."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from elmokit.core.errors import ElmokitError
from elmokit.core.textfile import iter_lines
from elmokit.lm.vocab import EOS_ID


@dataclass
class Trace:
    """One LM's units over a text, in the text's order (for a backward LM too)."""

    surfaces: list[str]  # per step: the text of the piece read ("\n" for a line's </s>)
    line: np.ndarray  # (steps,) index of the line each step belongs to
    units: dict[str, np.ndarray]  # "h1", "c1", "h2", ...: (steps, width) float32
    direction: str

    @property
    def steps(self) -> int:
        return len(self.surfaces)

    def selection(self) -> np.ndarray:
        """``(steps,)`` True on the first half of the lines, where units are chosen; False on the held-out rest (a
        one-line text is split at its middle step)."""
        last = int(self.line[-1])
        return self.line < last // 2 + 1 if last > 0 else np.arange(self.steps) < self.steps // 2

    def unit(self, name: str) -> np.ndarray:
        """``(steps,)`` values of a unit named ``h2:17`` (layer 2's hidden state, unit 17) or ``c1:5``."""
        m = re.fullmatch(r"([hc])(\d+):(\d+)", name)
        if not m or f"{m[1]}{m[2]}" not in self.units or int(m[3]) >= self.units[f"{m[1]}{m[2]}"].shape[1]:
            shapes = ", ".join(f"{k} (0..{v.shape[1] - 1})" for k, v in self.units.items())
            raise ElmokitError(f"--unit {name}: no such unit; units are named STATE:INDEX, with {shapes}")
        return self.units[f"{m[1]}{m[2]}"][:, int(m[3])]


def read_lines(files: list[str], vocab, max_pieces: int, max_line_chars: int = 20000) -> list[list[int]]:
    """The files' lines encoded, until ``max_pieces`` pieces (whole lines; at least one)."""
    out: list[list[int]] = []
    total = 0
    for f in files:
        for _, line in iter_lines(f, max_line_chars):
            ids = vocab.encode(line)
            if out and total + len(ids) + 1 > max_pieces:
                return out
            out.append(ids)
            total += len(ids) + 1
    if not out:
        raise ElmokitError(f"{files[0]}: no lines to read")
    return out


@torch.no_grad()
def trace_text(model, vocab, lines: list[list[int]], direction: str, chunk: int = 1000) -> Trace:
    """Run ``model`` over ``lines`` (encoded) as one stream and record every unit at every piece.

    The stream is ``</s> line1 </s> line2 ... </s>`` (reversed for a backward LM); step ``t`` is the state after
    reading piece ``t``. The first ``</s>`` is only read, never recorded.
    """
    ids: list[int] = []
    surfaces: list[str] = []
    line_of: list[int] = []
    for k, line_ids in enumerate(lines):
        ids += [*line_ids, EOS_ID]
        surfaces += [*vocab.surfaces(line_ids), "\n"]
        line_of += [k] * (len(line_ids) + 1)
    stream = [EOS_ID, *ids] if direction == "forward" else [EOS_ID, *ids[::-1]]
    model.eval()
    state = model.init_state(1)
    parts: dict[str, list[np.ndarray]] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one stream, one step at a time: more threads only add overhead
    try:
        _trace_chunks(model, stream, chunk, state, parts)
    finally:
        torch.set_num_threads(threads)
    units = {}
    for name in sorted(parts, key=lambda n: (int(n[1:]), n[0])):
        a = np.concatenate(parts[name])[1:]  # drop the leading </s>: (steps, width), in reading order
        units[name] = np.ascontiguousarray(a if direction == "forward" else a[::-1])
    return Trace(surfaces, np.asarray(line_of), units, direction)


def _trace_chunks(model, stream: list[int], chunk: int, state, parts: dict[str, list[np.ndarray]]) -> None:
    for start in range(0, len(stream), chunk):
        x = torch.tensor(stream[start : start + chunk]).view(-1, 1)  # (time, 1)
        emb = model.embedding(x)  # (time, 1, embed_dim)
        per_layer, state = model.rnn.trace(emb, state)
        for k, layer in enumerate(per_layer, 1):
            for kind, v in layer.items():
                parts.setdefault(f"{kind}{k}", []).append(v[:, 0].float().numpy())  # (time, width)
