"""The recurrent stack: LSTM (optionally with projection, ELMo's LSTMP), GRU or vanilla RNN layers, residual
connections between layers, dropout, and every layer's states returned (the biLM needs them)."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from elmokit.core.choices import CELLS, IMPLS
from elmokit.modules.lstmp import frozen_weights_key, lstmp_forward, transposed_weights

State = list[tuple[Tensor, ...]]  # per layer: (h, c) for LSTM, (h,) for GRU/RNN; h: (B, P or H), c: (B, H)


def stack_problem(cell: str, proj_size: int, impl: str, cell_clip: float, proj_clip: float) -> str | None:
    """What is wrong with these :class:`RecurrentStack` settings (named as the config keys), or None; the one list
    of these rules, which the pretraining config check reports as a config error."""
    if cell not in CELLS:
        return f"model.cell must be one of {', '.join(CELLS)}, got {cell!r}"
    if proj_size and cell != "lstm":
        return "model.proj_size needs model.cell=lstm (only an LSTM has a projection)"
    if impl not in IMPLS:
        return f"model.impl must be one of {', '.join(IMPLS)}, got {impl!r}"
    if cell_clip < 0 or proj_clip < 0:
        return f"model.cell_clip and model.proj_clip must be >= 0 (0 = off), got {cell_clip}, {proj_clip}"
    if (cell_clip or proj_clip) and not (cell == "lstm" and proj_size and impl != "torch"):
        return (
            "model.cell_clip/proj_clip need an LSTMP stack (model.cell=lstm, model.proj_size > 0, model.impl auto "
            "or fused: nn.LSTM cannot clip)"
        )
    return None


class RecurrentStack(nn.Module):
    """``num_layers`` single-layer recurrent modules, one after the other, time-major.

    Each layer is a one-layer ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (so checkpoints load in any of the kernels).
    An LSTM with ``proj_size > 0`` on CPU runs through elmokit's fused LSTMP kernel (``impl="auto"`` or
    ``"fused"``); on GPU, or with ``impl="torch"``, through ``nn.LSTM`` (cuDNN). From the second layer on, with
    ``residual=True``, a layer's input is added to its output (ELMo adds the first layer's output to the second's).
    ``cell_clip``/``proj_clip`` (LSTMP only, 0 = off) clip the cell state and the projected output at every step,
    as bilm-tf's ELMo does (3 and 3); cuDNN cannot, so a clipped stack always runs the fused kernel.
    """

    def __init__(
        self,
        cell: str,
        input_dim: int,
        hidden_size: int,
        num_layers: int,
        proj_size: int = 0,
        residual: bool = True,
        dropout: float = 0.0,
        impl: str = "auto",
        cell_clip: float = 0.0,
        proj_clip: float = 0.0,
    ) -> None:
        super().__init__()
        problem = stack_problem(cell, proj_size, impl, cell_clip, proj_clip)
        if problem:
            raise ValueError(problem)
        self.cell = cell
        self.num_layers = num_layers
        self.proj_size = proj_size
        self.hidden_size = hidden_size
        self.output_dim = proj_size or hidden_size
        self.residual = residual
        self.impl = impl
        self.cell_clip = cell_clip
        self.proj_clip = proj_clip
        cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        layers = []
        for i in range(num_layers):
            d_in = input_dim if i == 0 else self.output_dim
            kw = {"proj_size": proj_size} if cell == "lstm" and proj_size else {}
            layers.append(cls(d_in, hidden_size, num_layers=1, **kw))
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        # per frozen layer: (weights' key, their transposed copies); see _transposed
        self._transposed_cache: dict[int, tuple[tuple, tuple[Tensor, Tensor, Tensor]]] = {}

    def init_state(self, batch: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> State:
        """Zero state for ``batch`` streams."""
        st: State = []
        for _ in range(self.num_layers):
            h = torch.zeros(batch, self.output_dim, device=device, dtype=dtype)
            if self.cell == "lstm":
                st.append((h, torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)))
            else:
                st.append((h,))
        return st

    def _use_fused(self, x: Tensor) -> bool:
        if self.cell != "lstm" or not self.proj_size:
            return False
        if self.cell_clip or self.proj_clip:  # only the fused kernel clips
            if self.impl == "torch":
                raise ValueError("model.cell_clip/proj_clip need the fused kernel (nn.LSTM cannot clip)")
            return True
        # auto: the fused kernel on CPU (also without gradients: nn.LSTM's projection path is much slower there)
        return self.impl == "fused" or (
            self.impl == "auto" and x.device.type == "cpu" and not torch.is_autocast_enabled("cpu")
        )

    def _transposed(self, k: int, layer: nn.LSTM) -> tuple[Tensor, Tensor, Tensor] | None:
        """Layer ``k``'s weights as the fused kernel wants them. A frozen layer (no weight requires grad, as in the
        biLM) keeps its copies until a weight is replaced or changed in place (a load bumps the tensor's version);
        a trainable one gets ``None`` (fresh copies each call: fused optimizers update weights without bumping
        their version, so a cache could go stale unseen)."""
        ws = (layer.weight_ih_l0, layer.weight_hh_l0, layer.weight_hr_l0)
        if any(w.requires_grad for w in ws):
            return None
        key = frozen_weights_key(ws)
        cache = self._transposed_cache
        if k not in cache or cache[k][0] != key:
            with torch.no_grad():
                cache[k] = (key, transposed_weights(*ws))
        return cache[k][1]

    def forward(self, x: Tensor, state: State | None = None) -> tuple[list[Tensor], State]:
        """Run all layers.

        Args:
            x: ``(time, batch, input_dim)`` inputs (already dropped out by the caller if wanted).
            state: per layer ``(h (batch, out_dim), c (batch, hidden))``; ``None`` = zeros.

        Returns:
            ``(outputs, new_state)``: ``outputs[k]`` is layer ``k``'s output ``(time, batch, out_dim)`` after the
            residual connection and before dropout; ``new_state`` has the same structure as ``state``.
        """
        T, B, _ = x.shape
        if state is None:
            state = self.init_state(B, x.device, x.dtype)
        fused = self._use_fused(x)
        outputs: list[Tensor] = []
        new_state: State = []
        inp = x
        for k, layer in enumerate(self.layers):
            st = state[k]
            if fused:
                out, h, c = lstmp_forward(
                    inp,
                    st[0],
                    st[1],
                    layer.weight_ih_l0,
                    layer.weight_hh_l0,
                    layer.bias_ih_l0,
                    layer.bias_hh_l0,
                    layer.weight_hr_l0,
                    self._transposed(k, layer),
                    self.cell_clip,
                    self.proj_clip,
                )  # out: (T, B, P)
                new = (h, c)
            elif self.cell == "lstm":
                with warnings.catch_warnings():  # nn.LSTM(proj_size) on CPU warns that oneDNN lacks it (lstmp.py)
                    warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")
                    out, (h, c) = layer(inp, (st[0].unsqueeze(0), st[1].unsqueeze(0)))  # out: (T, B, out_dim)
                new = (h.squeeze(0), c.squeeze(0))
            else:
                out, h = layer(inp, st[0].unsqueeze(0))
                new = (h.squeeze(0),)
            if self.residual and k > 0:
                out = out + inp
            outputs.append(out)
            new_state.append(new)
            inp = self.dropout(out)
        return outputs, new_state

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One time step, differentiable, in plain tensor operations (no fused kernel): for looking inside the
        model. Each layer's new ``h`` is the very tensor the next layer reads and the next step reads, so its
        gradient is the whole gradient reaching that state (``elmokit gradients``).

        Args:
            x: ``(batch, input_dim)`` one step's inputs; state: as in :meth:`forward` (not ``None``).

        Returns:
            ``(output, new_state)``: the top layer's output ``(batch, out_dim)`` after the residual connection,
            and the new state (per layer ``(h, c)`` or ``(h,)``; ``h`` before the residual connection).
        """
        new_state: State = []
        inp = x
        for k, layer in enumerate(self.layers):
            if self.cell == "lstm":
                h, c = state[k]
                gates = torch.nn.functional.linear(inp, layer.weight_ih_l0, layer.bias_ih_l0 + layer.bias_hh_l0)
                i, f, g, o = (gates + h @ layer.weight_hh_l0.t()).chunk(4, 1)  # (batch, hidden) each
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                if self.cell_clip:
                    c = c.clamp(-self.cell_clip, self.cell_clip)
                h = torch.sigmoid(o) * torch.tanh(c)
                if self.proj_size:
                    h = h @ layer.weight_hr_l0.t()  # (batch, proj)
                    if self.proj_clip:
                        h = h.clamp(-self.proj_clip, self.proj_clip)
                new_state.append((h, c))
            else:
                out, _ = layer(inp.unsqueeze(0), state[k][0].unsqueeze(0))  # out: (1, batch, hidden)
                h = out[0]
                new_state.append((h,))
            inp = h + inp if self.residual and k > 0 else h  # eval mode: no dropout between layers
        return inp, new_state

    @torch.no_grad()
    def trace(self, x: Tensor, state: State | None = None) -> tuple[list[dict[str, Tensor]], State]:
        """Every unit's value at every step, for looking inside the model (``elmokit cells``): what :meth:`forward`
        computes, with the LSTM's cell state kept per step too (the kernels return only the last one).

        Args:
            x: ``(time, batch, input_dim)`` inputs; state: as in :meth:`forward`.

        Returns:
            ``(per_layer, new_state)``: ``per_layer[k]["h"]`` is layer ``k``'s hidden state (its output before the
            residual connection) ``(time, batch, out_dim)``; for an LSTM ``per_layer[k]["c"]`` is its cell state
            ``(time, batch, hidden)``.
        """
        if state is None:
            state = self.init_state(x.shape[1], x.device, x.dtype)
        steps: list[State] = []
        for t in range(x.shape[0]):
            _, state = self.step(x[t], state)
            steps.append(state)
        kinds = ("h", "c") if self.cell == "lstm" else ("h",)
        per_layer = [
            {kind: torch.stack([st[k][j] for st in steps]) for j, kind in enumerate(kinds)}
            for k in range(self.num_layers)
        ]  # each (time, batch, width)
        return per_layer, state


def detach_state(state: State) -> State:
    """Cut the graph between truncated-BPTT windows."""
    return [tuple(t.detach() for t in layer) for layer in state]


def restart_rows(state: State, restart: Tensor) -> State:
    """Zero the state of the streams where ``restart`` (``(batch,)`` bool) is set: they start again from the zero
    state an unseen sentence starts from; the other rows carry on."""
    rows = restart.unsqueeze(1)  # (batch, 1)
    return [tuple(t.masked_fill(rows, 0.0) for t in layer) for layer in state]
