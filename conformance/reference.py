"""The float64 NumPy oracle.

Everything here is plain NumPy in float64 and imports no framework.  Weights are in the
Keras layout:

* ``dense``: ``kernel`` (in, units), ``bias`` (units,)
* ``embedding``: ``embeddings`` (input_dim, output_dim)
* ``simple_rnn``: ``kernel`` (F, u), ``recurrent_kernel`` (u, u), ``bias`` (u,)
* ``lstm``: ``kernel`` (F, 4u), ``recurrent_kernel`` (u, 4u), ``bias`` (4u,), gate blocks
  in the order i, f, c, o
* ``gru``: ``kernel`` (F, 3u), ``recurrent_kernel`` (u, 3u), gate blocks in the order
  z, r, h; ``bias`` (2, 3u) with ``reset_after=True`` (row 0 is added to the input
  projection, row 1 to the recurrent one) and (3u,) with ``reset_after=False``

Each ``*_vjp`` function is a vector-Jacobian product: given the upstream gradient of the
outputs it returns the gradients with respect to the inputs, the initial state and every
weight.  The step functions use the Keras names (``h_tm1``, ``c_tm1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "CELLS",
    "InvalidIds",
    "RNNResult",
    "cosine_similarity",
    "dense",
    "dense_vjp",
    "embedding",
    "embedding_vjp",
    "one_hot",
    "rnn",
    "rnn_vjp",
    "state_names",
    "weight_shapes",
]

CELLS = ("simple_rnn", "lstm", "gru")


class InvalidIds(ValueError):
    """An embedding was asked for an id outside ``[0, input_dim)``."""


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    # Written with exp(-|x|) so that large |x| neither overflows nor loses precision.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# --------------------------------------------------------------------------- one-hot, dense


def one_hot(ids, depth: int) -> np.ndarray:
    """``ids`` of shape S -> S + (depth,); ids outside ``[0, depth)`` give all zeros."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"one_hot needs integer ids, got dtype {ids.dtype}")
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    return (ids[..., None] == np.arange(depth)).astype(np.float64)


def dense(x, kernel, bias=None) -> np.ndarray:
    out = _f64(x) @ _f64(kernel)
    if bias is not None:
        out = out + _f64(bias)
    return out


def dense_vjp(x, kernel, bias, upstream) -> dict:
    """Gradients of ``sum(upstream * dense(x, kernel, bias))``."""
    x, kernel, g = _f64(x), _f64(kernel), _f64(upstream)
    x2 = x.reshape(-1, x.shape[-1])
    g2 = g.reshape(-1, g.shape[-1])
    grads = {"x": g @ kernel.T, "kernel": x2.T @ g2}
    if bias is not None:
        grads["bias"] = g2.sum(axis=0)
    return grads


# --------------------------------------------------------------------------- embedding


def _check_ids(ids: np.ndarray, input_dim: int) -> np.ndarray:
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"embedding needs integer ids, got dtype {ids.dtype}")
    bad = (ids < 0) | (ids >= input_dim)
    if bad.any():
        raise InvalidIds(
            f"ids must lie in [0, {input_dim}); got {np.unique(ids[bad]).tolist()}"
        )
    return ids


def embedding(ids, embeddings) -> np.ndarray:
    """Row lookup: ``embeddings[ids]``; any id outside the table raises :class:`InvalidIds`."""
    table = _f64(embeddings)
    ids = _check_ids(ids, table.shape[0])
    return table[ids]


def embedding_vjp(ids, embeddings, upstream) -> dict:
    """The gradient with respect to the table: the upstream rows added onto the looked-up
    rows (``np.add.at``), zero for rows never looked up.  Ids get no gradient (``None``)."""
    table = _f64(embeddings)
    ids = _check_ids(ids, table.shape[0])
    g = _f64(upstream).reshape(-1, table.shape[1])
    grad = np.zeros_like(table)
    np.add.at(grad, ids.reshape(-1), g)
    return {"embeddings": grad, "ids": None}


def cosine_similarity(a, b) -> np.ndarray:
    """Cosine similarity along the last axis (float64)."""
    a, b = _f64(a), _f64(b)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return num / den


# --------------------------------------------------------------------------- recurrent cells


def state_names(cell: str) -> tuple[str, ...]:
    return ("h", "c") if cell == "lstm" else ("h",)


def _gates(cell: str) -> int:
    return {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]


def weight_shapes(cell: str, features: int, units: int, *, use_bias: bool = True,
                  reset_after: bool = True) -> dict[str, tuple[int, ...]]:
    """The Keras weight shapes of one recurrent layer, in the Keras order."""
    n = _gates(cell) * units
    shapes = {"kernel": (features, n), "recurrent_kernel": (units, n)}
    if use_bias:
        shapes["bias"] = (2, n) if (cell == "gru" and reset_after) else (n,)
    return shapes


# Each step function returns (new_states, cache); each backward step takes the gradients of
# the new states and returns (d_x_t, d_old_states, d_weights).


def simple_rnn_step(x_t, states, w):
    (h_tm1,) = states
    pre = x_t @ w["kernel"] + h_tm1 @ w["recurrent_kernel"]
    if "bias" in w:
        pre = pre + w["bias"]
    h = np.tanh(pre)
    return (h,), (x_t, h_tm1, h)


def simple_rnn_step_back(d_states, cache, w):
    (dh,) = d_states
    x_t, h_tm1, h = cache
    dpre = dh * (1.0 - h * h)
    dw = {"kernel": x_t.T @ dpre, "recurrent_kernel": h_tm1.T @ dpre}
    if "bias" in w:
        dw["bias"] = dpre.sum(0)
    return dpre @ w["kernel"].T, (dpre @ w["recurrent_kernel"].T,), dw


def lstm_step(x_t, states, w):
    h_tm1, c_tm1 = states
    z = x_t @ w["kernel"] + h_tm1 @ w["recurrent_kernel"]
    if "bias" in w:
        z = z + w["bias"]
    z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
    i, f, g, o = sigmoid(z_i), sigmoid(z_f), np.tanh(z_c), sigmoid(z_o)
    c = f * c_tm1 + i * g
    tc = np.tanh(c)
    h = o * tc
    return (h, c), (x_t, h_tm1, c_tm1, i, f, g, o, tc)


def lstm_step_back(d_states, cache, w):
    dh, dc = d_states
    x_t, h_tm1, c_tm1, i, f, g, o, tc = cache
    do = dh * tc
    dc = dc + dh * o * (1.0 - tc * tc)
    di, df, dg = dc * g, dc * c_tm1, dc * i
    dz = np.concatenate(
        [di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], axis=-1
    )
    dw = {"kernel": x_t.T @ dz, "recurrent_kernel": h_tm1.T @ dz}
    if "bias" in w:
        dw["bias"] = dz.sum(0)
    return dz @ w["kernel"].T, (dz @ w["recurrent_kernel"].T, dc * f), dw


def _gru_biases(w, units: int, reset_after: bool):
    b = w.get("bias")
    if b is None:
        zero = np.zeros(3 * units)
        return zero, zero
    if reset_after:
        return b[0], b[1]
    return b, np.zeros(3 * units)


def gru_step(x_t, states, w, reset_after: bool):
    (h_tm1,) = states
    u = h_tm1.shape[-1]
    b_in, b_rec = _gru_biases(w, u, reset_after)
    k, rk = w["kernel"], w["recurrent_kernel"]
    x_proj = x_t @ k + b_in
    x_z, x_r, x_h = np.split(x_proj, 3, axis=-1)
    if reset_after:
        rec = h_tm1 @ rk + b_rec
        r_z, r_r, r_h = np.split(rec, 3, axis=-1)
    else:
        r_z = h_tm1 @ rk[:, :u]
        r_r = h_tm1 @ rk[:, u:2 * u]
    z = sigmoid(x_z + r_z)
    r = sigmoid(x_r + r_r)
    if reset_after:
        hh = np.tanh(x_h + r * r_h)
    else:
        r_h = (r * h_tm1) @ rk[:, 2 * u:]
        hh = np.tanh(x_h + r_h)
    h = z * h_tm1 + (1.0 - z) * hh
    return (h,), (x_t, h_tm1, z, r, hh, r_h)


def gru_step_back(d_states, cache, w, reset_after: bool):
    (dh,) = d_states
    x_t, h_tm1, z, r, hh, r_h = cache
    u = h_tm1.shape[-1]
    k, rk = w["kernel"], w["recurrent_kernel"]
    dz = dh * (h_tm1 - hh)
    dhh = dh * (1.0 - z)
    dh_tm1 = dh * z
    da_h = dhh * (1.0 - hh * hh)  # gradient of the candidate's pre-activation
    da_z = dz * z * (1.0 - z)
    if reset_after:
        dr = da_h * r_h
        da_r = dr * r * (1.0 - r)
        dx_proj = np.concatenate([da_z, da_r, da_h], axis=-1)
        drec = np.concatenate([da_z, da_r, da_h * r], axis=-1)
        dh_tm1 = dh_tm1 + drec @ rk.T
        dw = {"kernel": x_t.T @ dx_proj, "recurrent_kernel": h_tm1.T @ drec}
        if "bias" in w:
            dw["bias"] = np.stack([dx_proj.sum(0), drec.sum(0)])
    else:
        rk_h = rk[:, 2 * u:]
        d_rh = da_h @ rk_h.T  # gradient of (r * h_tm1)
        dr = d_rh * h_tm1
        da_r = dr * r * (1.0 - r)
        dx_proj = np.concatenate([da_z, da_r, da_h], axis=-1)
        dh_tm1 = dh_tm1 + d_rh * r + da_z @ rk[:, :u].T + da_r @ rk[:, u:2 * u].T
        d_rk = np.concatenate(
            [h_tm1.T @ da_z, h_tm1.T @ da_r, (r * h_tm1).T @ da_h], axis=-1
        )
        dw = {"kernel": x_t.T @ dx_proj, "recurrent_kernel": d_rk}
        if "bias" in w:
            dw["bias"] = dx_proj.sum(0)
    return dx_proj @ k.T, (dh_tm1,), dw


@dataclass(frozen=True)
class RNNResult:
    """``sequence`` is (B, T, u) in processing order; ``states`` holds the final states
    (h, and c for an LSTM), each (B, u).  ``output`` is what the layer returns first."""

    sequence: np.ndarray
    states: tuple[np.ndarray, ...]
    return_sequences: bool

    @property
    def output(self) -> np.ndarray:
        if self.return_sequences:
            return self.sequence
        if self.sequence.shape[1] == 0:
            return self.states[0]
        return self.sequence[:, -1]  # with a mask: the last output, zero if none unmasked


def _prepare(cell, x, weights, initial_state, mask, go_backwards):
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; expected one of {CELLS}")
    x = _f64(x)
    if x.ndim != 3:
        raise ValueError(f"recurrent input must be (batch, time, features), got {x.shape}")
    w = {k: _f64(v) for k, v in weights.items() if v is not None}
    units = w["recurrent_kernel"].shape[0]
    b = x.shape[0]
    if initial_state is None:
        states = tuple(np.zeros((b, units)) for _ in state_names(cell))
    else:
        states = tuple(_f64(s) for s in initial_state)
        if len(states) != len(state_names(cell)):
            raise ValueError(f"{cell} takes {len(state_names(cell))} initial state(s)")
    m = None if mask is None else np.asarray(mask, dtype=bool)
    if go_backwards:
        x = x[:, ::-1]
        m = None if m is None else m[:, ::-1]
    return x, w, states, m


def _step_fns(cell, reset_after):
    if cell == "simple_rnn":
        return simple_rnn_step, simple_rnn_step_back
    if cell == "lstm":
        return lstm_step, lstm_step_back
    return (lambda x_t, s, w: gru_step(x_t, s, w, reset_after),
            lambda d, c, w: gru_step_back(d, c, w, reset_after))


def rnn(cell: str, x, weights: Mapping[str, np.ndarray], *, initial_state=None, mask=None,
        return_sequences: bool = False, go_backwards: bool = False,
        reset_after: bool = True) -> RNNResult:
    """Run one recurrent layer over ``x`` (B, T, F).

    A step whose mask is False leaves every state as it was, and the output of that step
    repeats the previous output; before the first unmasked step of a row there is no
    previous output and the output is zero, even when an initial state was given (Keras on
    TensorFlow: its masked loop starts from a zero output).  With ``go_backwards`` the input
    (and mask) are read from the last step to the first and the sequence is returned in
    that processing order."""
    x, w, states, m = _prepare(cell, x, weights, initial_state, mask, go_backwards)
    step, _ = _step_fns(cell, reset_after)
    outputs = []
    seen = np.zeros((x.shape[0], 1), dtype=bool)  # an unmasked step has happened
    for t in range(x.shape[1]):
        new, _ = step(x[:, t], states, w)
        if m is not None:
            keep = m[:, t, None]
            new = tuple(np.where(keep, n, s) for n, s in zip(new, states))
            seen = seen | keep
        states = new
        outputs.append(states[0] if m is None else np.where(seen, states[0], 0.0))
    units = w["recurrent_kernel"].shape[0]
    seq = np.stack(outputs, 1) if outputs else np.zeros((x.shape[0], 0, units))
    return RNNResult(seq, states, return_sequences)


def rnn_vjp(cell: str, x, weights: Mapping[str, np.ndarray], *, d_sequence=None,
            d_states: Sequence | None = None, initial_state=None, mask=None,
            go_backwards: bool = False, reset_after: bool = True) -> dict:
    """Gradients of ``sum(d_sequence * sequence) + sum_k sum(d_states[k] * states[k])``.

    ``d_sequence`` is the upstream gradient of the full (B, T, u) sequence in processing
    order (None for zero).  Returns ``x`` (in the caller's time order), ``initial_state``
    (a tuple) and one entry per weight."""
    x_orig = _f64(x)
    x, w, states, m = _prepare(cell, x_orig, weights, initial_state, mask, go_backwards)
    step, step_back = _step_fns(cell, reset_after)
    caches = []
    for t in range(x.shape[1]):
        new, cache = step(x[:, t], states, w)
        caches.append(cache)
        if m is not None:
            keep = m[:, t, None]
            new = tuple(np.where(keep, n, s) for n, s in zip(new, states))
        states = new
    dstates = [np.zeros_like(s) for s in states]
    if d_states is not None:
        for k, d in enumerate(d_states):
            if d is not None:
                dstates[k] = dstates[k] + _f64(d)
    dseq = None if d_sequence is None else _f64(d_sequence)
    dx = np.zeros_like(x)
    dw = {k: np.zeros_like(v) for k, v in w.items()}
    # the output of step t is h_t once an unmasked step has happened, zero before
    seen = np.ones((x.shape[0], x.shape[1]), dtype=bool) if m is None else \
        np.cumsum(m, axis=1) > 0
    for t in reversed(range(x.shape[1])):
        if dseq is not None:
            dstates[0] = dstates[0] + np.where(seen[:, t, None], dseq[:, t], 0.0)
        if m is not None:
            keep = m[:, t, None]
            d_new = [np.where(keep, d, 0.0) for d in dstates]
            carried = [np.where(keep, 0.0, d) for d in dstates]
        else:
            d_new, carried = dstates, [0.0 for _ in dstates]
        dx_t, d_old, dw_t = step_back(tuple(d_new), caches[t], w)
        dx[:, t] = dx_t
        for k in dw_t:
            dw[k] += dw_t[k]
        dstates = [c + d for c, d in zip(carried, d_old)]
    if go_backwards:
        dx = dx[:, ::-1]
    grads = {"x": dx, "initial_state": tuple(dstates)}
    grads.update(dw)
    return grads
