"""Weight-layout conversions between Keras and other conventions.

Keras (the layout every case carries):

=========== =================== ====================== ===================================
cell        kernel              recurrent_kernel       bias
=========== =================== ====================== ===================================
SimpleRNN   (F, u)              (u, u)                 (u,)
LSTM        (F, 4u), i f c o    (u, 4u)                (4u,)
GRU         (F, 3u), z r h      (u, 3u)                (2, 3u) reset_after=True: row 0 is
                                                       added to x W, row 1 to h U;
                                                       (3u,) reset_after=False
=========== =================== ====================== ===================================

PyTorch (``torch.nn.RNN/LSTM/GRU``, one layer): ``weight_ih_l0`` (G u, F) and
``weight_hh_l0`` (G u, u) are transposed, gate blocks i f g o (LSTM, same order as Keras)
and r z n (GRU); two biases ``bias_ih_l0`` and ``bias_hh_l0``.  Torch's GRU applies the
reset gate after the recurrent product (Keras ``reset_after=True``); Keras's
``reset_after=False`` has no torch equivalent.

ONNX (``RNN``/``LSTM``/``GRU`` operators, one direction): ``W`` (1, G u, F), ``R`` (1, G u, u),
``B`` (1, 2 G u) = input biases then recurrent biases; gate blocks i o f c (LSTM) and z r h
(GRU); ``linear_before_reset=1`` is Keras's ``reset_after=True``, 0 is ``reset_after=False``.

Flax (``nnx.SimpleCell``, ``nnx.LSTMCell``, ``nnx.GRUCell``): ``Linear`` layers with
kernels (in, out) like Keras; names and bias placement in :func:`keras_to_flax`.

Going back to Keras, two biases that are always added together are summed: the function
computed is the same, and the round trip Keras -> X -> Keras is exact.
"""

from __future__ import annotations

import numpy as np

GATES = {
    ("keras", "lstm"): "ifco",
    ("keras", "gru"): "zrh",
    ("torch", "lstm"): "ifco",  # torch calls the candidate g
    ("torch", "gru"): "rzh",  # torch calls the candidate n
    ("onnx", "lstm"): "iofc",
    ("onnx", "gru"): "zrh",
}


def _blocks(a: np.ndarray, n: int, axis: int = -1) -> list[np.ndarray]:
    return np.split(np.asarray(a), n, axis=axis)


def reorder(a: np.ndarray, src: str, dst: str, axis: int = -1) -> np.ndarray:
    """Reorder the gate blocks of ``a`` along ``axis`` from order ``src`` to ``dst``
    (strings of gate letters, e.g. "ifco" -> "iofc")."""
    if sorted(src) != sorted(dst):
        raise ValueError(f"gate orders {src!r} and {dst!r} name different gates")
    if len(src) == 1:
        return np.asarray(a)
    parts = dict(zip(src, _blocks(a, len(src), axis)))
    return np.concatenate([parts[g] for g in dst], axis=axis)


def _order(framework: str, cell: str) -> str:
    return GATES.get((framework, cell), "h")


def _keras_biases(cell: str, weights: dict, units: int, reset_after: bool):
    """(input bias, recurrent bias) in Keras gate order; zeros where Keras has none."""
    g = len(_order("keras", cell))
    b = weights.get("bias")
    zero = np.zeros(g * units)
    if b is None:
        return zero, zero
    b = np.asarray(b)
    if cell == "gru" and reset_after:
        return b[0], b[1]
    return b, zero


# --------------------------------------------------------------------------- torch


def keras_to_torch(cell: str, weights: dict, *, reset_after: bool = True) -> dict:
    """Keras weights -> the state dict of a one-layer ``torch.nn.RNN/LSTM/GRU``
    (batch_first does not change it).  Without a Keras bias, no torch bias is returned
    (build the torch module with ``bias=False``)."""
    if cell == "gru" and not reset_after:
        raise ValueError("torch's GRU applies the reset gate after the recurrent product; "
                         "Keras reset_after=False has no torch equivalent")
    k, t = _order("keras", cell), _order("torch", cell)
    u = np.shape(weights["recurrent_kernel"])[0]
    out = {
        "weight_ih_l0": reorder(weights["kernel"], k, t).T,
        "weight_hh_l0": reorder(weights["recurrent_kernel"], k, t).T,
    }
    if weights.get("bias") is not None:
        b_in, b_rec = _keras_biases(cell, weights, u, reset_after)
        out["bias_ih_l0"] = reorder(b_in, k, t)
        out["bias_hh_l0"] = reorder(b_rec, k, t)
    return out


def torch_to_keras(cell: str, state: dict) -> dict:
    """A one-layer torch state dict -> Keras weights (GRU: reset_after=True)."""
    k, t = _order("keras", cell), _order("torch", cell)
    w = {
        "kernel": reorder(np.asarray(state["weight_ih_l0"]).T, t, k),
        "recurrent_kernel": reorder(np.asarray(state["weight_hh_l0"]).T, t, k),
    }
    if "bias_ih_l0" in state:
        b_in = reorder(state["bias_ih_l0"], t, k)
        b_rec = reorder(state["bias_hh_l0"], t, k)
        w["bias"] = np.stack([b_in, b_rec]) if cell == "gru" else b_in + b_rec
    return w


# --------------------------------------------------------------------------- ONNX


def keras_to_onnx(cell: str, weights: dict, *, reset_after: bool = True) -> dict:
    """Keras weights -> the ``W``, ``R``, ``B`` inputs of the ONNX operator (one
    direction).  ``B`` is always given (zeros without a Keras bias); for GRU use
    ``linear_before_reset = int(reset_after)``."""
    k, o = _order("keras", cell), _order("onnx", cell)
    u = np.shape(weights["recurrent_kernel"])[0]
    b_in, b_rec = _keras_biases(cell, weights, u, reset_after)
    return {
        "W": reorder(weights["kernel"], k, o).T[None],
        "R": reorder(weights["recurrent_kernel"], k, o).T[None],
        "B": np.concatenate([reorder(b_in, k, o), reorder(b_rec, k, o)])[None],
    }


def onnx_to_keras(cell: str, w: dict, *, reset_after: bool = True) -> dict:
    """ONNX ``W``, ``R``, ``B`` (one direction) -> Keras weights with a bias."""
    k, o = _order("keras", cell), _order("onnx", cell)
    b = np.asarray(w["B"])[0]
    half = b.shape[0] // 2
    b_in, b_rec = reorder(b[:half], o, k), reorder(b[half:], o, k)
    if cell == "gru" and reset_after:
        bias = np.stack([b_in, b_rec])
    elif cell == "gru":
        if np.any(b_rec[2 * (half // 3):] != 0):
            raise ValueError("reset_after=False cannot hold a recurrent bias on the candidate")
        bias = b_in + b_rec
    else:
        bias = b_in + b_rec
    return {
        "kernel": reorder(np.asarray(w["W"])[0].T, o, k),
        "recurrent_kernel": reorder(np.asarray(w["R"])[0].T, o, k),
        "bias": bias,
    }


# --------------------------------------------------------------------------- Flax


def keras_to_flax(cell: str, weights: dict, *, reset_after: bool = True) -> dict:
    """Keras weights -> the parameters of a Flax nnx cell, ``{linear: {"kernel", "bias"}}``
    (kernels are (in, out) as in Keras).

    * ``SimpleCell``: ``dense_i`` (input, with bias), ``dense_h`` (hidden, no bias).
    * ``LSTMCell``: ``ii if_ ig io`` (input, no bias), ``hi hf hg ho`` (hidden, with bias).
    * ``GRUCell``: ``dense_i`` (F, 3u) and ``dense_h`` (u, 3u) in block order r z n; only
      ``dense_i`` has a bias, and the reset gate multiplies ``dense_h``'s candidate block.
      A Keras recurrent bias on the candidate (``bias[1, 2u:]``) therefore has no place:
      it must be zero.  ``reset_after=False`` has no Flax form.

    Without a Keras bias the biases are zeros."""
    u = np.shape(weights["recurrent_kernel"])[0]
    b_in, b_rec = _keras_biases(cell, weights, u, reset_after)
    if cell == "simple_rnn":
        return {"dense_i": {"kernel": np.asarray(weights["kernel"]), "bias": b_in + b_rec},
                "dense_h": {"kernel": np.asarray(weights["recurrent_kernel"])}}
    if cell == "lstm":
        order = _order("keras", cell)
        ks = dict(zip(order, _blocks(weights["kernel"], 4)))
        rs = dict(zip(order, _blocks(weights["recurrent_kernel"], 4)))
        bs = dict(zip(order, _blocks(b_in + b_rec, 4)))
        out = {}
        for g, n in zip(order, ("i", "f", "g", "o")):
            out["if_" if n == "f" else f"i{n}"] = {"kernel": ks[g]}
            out[f"h{n}"] = {"kernel": rs[g], "bias": bs[g]}
        return out
    if not reset_after:
        raise ValueError("Flax's GRUCell resets after the recurrent product; Keras "
                         "reset_after=False has no Flax form")
    if np.any(b_rec[2 * u:] != 0):
        raise ValueError("Flax's GRUCell has no recurrent bias on the candidate "
                         "(Keras bias[1, 2u:] must be zero)")
    merged = b_in + np.concatenate([b_rec[:2 * u], np.zeros(u)])
    return {"dense_i": {"kernel": reorder(weights["kernel"], "zrh", "rzh"),
                        "bias": reorder(merged, "zrh", "rzh")},
            "dense_h": {"kernel": reorder(weights["recurrent_kernel"], "zrh", "rzh")}}


def flax_to_keras(cell: str, params: dict) -> dict:
    """Flax nnx cell parameters -> Keras weights with a bias (GRU: reset_after=True)."""
    if cell == "simple_rnn":
        return {"kernel": np.asarray(params["dense_i"]["kernel"]),
                "recurrent_kernel": np.asarray(params["dense_h"]["kernel"]),
                "bias": np.asarray(params["dense_i"]["bias"])}
    cat = np.concatenate
    if cell == "lstm":
        names = ("i", "f", "g", "o")
        return {"kernel": cat([np.asarray(params["if_" if n == "f" else f"i{n}"]["kernel"])
                               for n in names], axis=-1),
                "recurrent_kernel": cat([np.asarray(params[f"h{n}"]["kernel"])
                                         for n in names], axis=-1),
                "bias": cat([np.asarray(params[f"h{n}"]["bias"]) for n in names])}
    b = reorder(np.asarray(params["dense_i"]["bias"]), "rzh", "zrh")
    return {"kernel": reorder(np.asarray(params["dense_i"]["kernel"]), "rzh", "zrh"),
            "recurrent_kernel": reorder(np.asarray(params["dense_h"]["kernel"]), "rzh", "zrh"),
            "bias": np.stack([b, np.zeros_like(b)])}


# --------------------------------------------------------------------------- dense


def keras_dense_to_torch(kernel) -> np.ndarray:
    """Keras Dense kernel (in, units) -> torch Linear weight (units, in)."""
    return np.asarray(kernel).T
