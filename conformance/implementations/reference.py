"""The float64 reference as an implementation under test (the baseline column)."""

from __future__ import annotations

import platform

import numpy as np

from .. import reference as ref
from ..cases import DenseLayer, EmbeddingLayer, RNNLayer
from . import Implementation, Unsupported, carry_state


def glorot_uniform(rng: np.random.Generator, shape) -> np.ndarray:
    fan_in, fan_out = shape[0], shape[1]
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def orthogonal(rng: np.random.Generator, shape) -> np.ndarray:
    rows, cols = shape
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # make the decomposition unique
    return q if rows >= cols else q.T


class ReferenceImplementation(Implementation):
    """NumPy float64.  Default initialisation follows the Keras defaults (glorot_uniform
    kernels, orthogonal recurrent kernels, zero biases with unit_forget_bias, uniform
    +-0.05 embeddings) with NumPy's generator."""

    name = "reference"

    def versions(self):
        return {"numpy": np.__version__, "python": platform.python_version()}

    def one_hot(self, ids, depth):
        return ref.one_hot(ids, depth)

    def cosine_similarity(self, a, b):
        return ref.cosine_similarity(a, b)

    def dense(self, layer, weights, x):
        return ref.dense(x, weights["kernel"], weights.get("bias") if layer.use_bias else None)

    def dense_vjp(self, layer, weights, x, upstream):
        return ref.dense_vjp(x, weights["kernel"],
                             weights.get("bias") if layer.use_bias else None, upstream)

    def embedding(self, layer, weights, ids):
        return ref.embedding(ids, weights["embeddings"])

    def embedding_mask(self, layer, ids):
        return (np.asarray(ids) != 0) if layer.mask_zero else None

    def embedding_vjp(self, layer, weights, ids, upstream):
        return ref.embedding_vjp(ids, weights["embeddings"], upstream)

    def _weights(self, layer: RNNLayer, weights):
        names = ("kernel", "recurrent_kernel") + (("bias",) if layer.use_bias else ())
        return {k: weights[k] for k in names}

    @staticmethod
    def _check_dtype(layer):
        if layer.dtype not in (None, "float64"):
            raise Unsupported(f"the reference computes in float64 only, not {layer.dtype}")

    def rnn_stateful(self, layer, weights, calls):
        return carry_state(self, layer, weights, calls)

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        self._check_dtype(layer)
        res = ref.rnn(layer.cell, x, self._weights(layer, weights),
                      initial_state=initial_state, mask=mask,
                      return_sequences=layer.return_sequences,
                      go_backwards=layer.go_backwards, reset_after=layer.reset_after)
        out = [res.output]
        if layer.return_state:
            out += list(res.states)
        return out

    def rnn_vjp(self, layer, weights, x, upstream, *, initial_state=None, mask=None):
        self._check_dtype(layer)
        upstream = [np.asarray(u, dtype=np.float64) for u in upstream]
        x = np.asarray(x, dtype=np.float64)
        b, t = x.shape[:2]
        d_states = [None] * layer.n_states
        if layer.return_sequences:
            d_seq = upstream[0]
        else:
            d_seq = None
            if t > 0:
                d_seq = np.zeros((b, t, layer.units))
                d_seq[:, -1] = upstream[0]
            else:
                d_states[0] = upstream[0]
        if layer.return_state:
            for k, u in enumerate(upstream[1:]):
                d_states[k] = u if d_states[k] is None else d_states[k] + u
        grads = ref.rnn_vjp(layer.cell, x, self._weights(layer, weights), d_sequence=d_seq,
                            d_states=d_states, initial_state=initial_state, mask=mask,
                            go_backwards=layer.go_backwards, reset_after=layer.reset_after)
        if initial_state is None:
            grads.pop("initial_state")
        return grads

    def initial_weights(self, layer, input_dim, seed):
        rng = np.random.default_rng(seed)
        if isinstance(layer, DenseLayer):
            w = {"kernel": glorot_uniform(rng, (input_dim, layer.units))}
            if layer.use_bias:
                w["bias"] = np.zeros(layer.units)
            return w
        if isinstance(layer, EmbeddingLayer):
            return {"embeddings": rng.uniform(-0.05, 0.05,
                                              size=(layer.input_dim, layer.output_dim))}
        if isinstance(layer, RNNLayer):
            shapes = ref.weight_shapes(layer.cell, input_dim, layer.units,
                                       use_bias=layer.use_bias, reset_after=layer.reset_after)
            w = {"kernel": glorot_uniform(rng, shapes["kernel"]),
                 "recurrent_kernel": orthogonal(rng, shapes["recurrent_kernel"])}
            if layer.use_bias:
                bias = np.zeros(shapes["bias"])
                if layer.cell == "lstm":
                    bias[layer.units:2 * layer.units] = 1.0
                w["bias"] = bias
            return w
        raise TypeError(f"unknown layer description {layer!r}")
