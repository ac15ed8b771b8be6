"""Flax (nnx) as an implementation under test: ``nnx.Embed``, ``nnx.Linear``,
``nnx.SimpleCell`` / ``nnx.LSTMCell`` / ``nnx.GRUCell`` stepped over time, and
``nnx.one_hot``.

Modules are built once per configuration and split into a graph definition and a parameter
state; each example merges Keras-layout weights (converted by
:func:`conformance.layouts.keras_to_flax`) into that state, and gradients come from
``jax.grad`` over the pure parameter dict.  float32, on the CPU.
"""

from __future__ import annotations

import platform

import numpy as np

from .. import layouts
from ..cases import DenseLayer, EmbeddingLayer, RNNLayer
from . import Implementation, Unsupported

_CELLS = {"simple_rnn": "SimpleCell", "lstm": "LSTMCell", "gru": "GRUCell"}


class FlaxImplementation(Implementation):
    name = "flax"

    def __init__(self):
        import flax
        import jax
        import jax.numpy as jnp
        from flax import nnx

        self.flax, self.jax, self.jnp, self.nnx = flax, jax, jnp, nnx
        self._modules: dict = {}

    def versions(self):
        return {"flax": self.flax.__version__, "jax": self.jax.__version__,
                "python": platform.python_version()}

    # ------------------------------------------------------------------ helpers

    def _split(self, key, make):
        """(graphdef, param state) of a cached module."""
        if key not in self._modules:
            self._modules[key] = self.nnx.split(make(self.nnx.Rngs(0)), self.nnx.Param)
        return self._modules[key]

    def _merge(self, key, make, pure: dict):
        graphdef, state = self._split(key, make)
        state = self.jax.tree_util.tree_map(lambda a: a, state)  # a copy to fill
        self.nnx.replace_by_pure_dict(state, pure)
        return self.nnx.merge(graphdef, state)

    def _pure(self, tree) -> dict:
        return self.jax.tree_util.tree_map(lambda a: self.jnp.asarray(a, self.jnp.float32), tree)

    @staticmethod
    def _np(a):
        return None if a is None else np.asarray(a)

    def _to_np(self, tree):
        if isinstance(tree, dict):
            return {k: self._to_np(v) for k, v in tree.items()}
        return np.asarray(tree)

    # ------------------------------------------------------------------ one-hot, dense

    def one_hot(self, ids, depth):
        return np.asarray(self.nnx.one_hot(self.jnp.asarray(np.asarray(ids)), depth))

    def cosine_similarity(self, a, b):
        raise Unsupported("Flax (nnx) has no cosine similarity function")

    def _dense_parts(self, layer: DenseLayer, weights, n_in):
        key = ("dense", layer, n_in)

        def make(rngs):
            return self.nnx.Linear(n_in, layer.units, use_bias=layer.use_bias, rngs=rngs)

        pure = {"kernel": weights["kernel"]}
        if layer.use_bias:
            pure["bias"] = weights["bias"]
        return key, make, self._pure(pure)

    def dense(self, layer, weights, x):
        x = np.asarray(x, dtype=np.float32)
        key, make, pure = self._dense_parts(layer, weights, x.shape[-1])
        return np.asarray(self._merge(key, make, pure)(self.jnp.asarray(x)))

    def dense_vjp(self, layer, weights, x, upstream):
        x = self.jnp.asarray(np.asarray(x, dtype=np.float32))
        key, make, pure = self._dense_parts(layer, weights, x.shape[-1])
        up = self.jnp.asarray(np.asarray(upstream, dtype=np.float32))

        def loss(p, x):
            return self.jnp.sum(self._merge(key, make, p)(x) * up)

        g_p, g_x = self.jax.grad(loss, argnums=(0, 1))(pure, x)
        return {"x": np.asarray(g_x), **self._to_np(g_p)}

    # ------------------------------------------------------------------ embedding

    def _embed_parts(self, layer: EmbeddingLayer, weights):
        key = ("embed", layer)

        def make(rngs):
            return self.nnx.Embed(layer.input_dim, layer.output_dim, rngs=rngs)

        return key, make, self._pure({"embedding": weights["embeddings"]})

    def embedding(self, layer, weights, ids):
        key, make, pure = self._embed_parts(layer, weights)
        return np.asarray(self._merge(key, make, pure)(self.jnp.asarray(np.asarray(ids))))

    def embedding_mask(self, layer, ids):
        if layer.mask_zero:
            raise Unsupported("nnx.Embed hands on no mask")
        return None

    def embedding_vjp(self, layer, weights, ids, upstream):
        key, make, pure = self._embed_parts(layer, weights)
        ids = self.jnp.asarray(np.asarray(ids))
        up = self.jnp.asarray(np.asarray(upstream, dtype=np.float32))

        def loss(p):
            return self.jnp.sum(self._merge(key, make, p)(ids) * up)

        g = self.jax.grad(loss)(pure)
        # nnx.Embed only accepts integer ids, which cannot carry a gradient
        return {"embeddings": np.asarray(g["embedding"]), "ids": None}

    # ------------------------------------------------------------------ recurrent

    def _rnn_parts(self, layer: RNNLayer, weights, n_in):
        if layer.cell == "gru" and not layer.reset_after:
            raise Unsupported("nnx.GRUCell only resets after the recurrent product "
                              "(Keras reset_after=True)")
        if layer.cell == "gru" and layer.use_bias:
            raise Unsupported("nnx.GRUCell has no recurrent bias on the candidate, which "
                              "Keras's reset_after=True GRU always has")
        if layer.go_backwards:
            raise Unsupported("this adapter steps the nnx cells itself, so reading backwards "
                              "would test the adapter, not Flax")
        if layer.unroll:
            raise Unsupported("nnx cells have no unroll option")
        if layer.dropout or layer.recurrent_dropout:
            raise Unsupported("nnx cells have no dropout options")
        # SimpleCell and LSTMCell always own biases: use_bias=False is held as zero biases
        key = ("rnn", layer.cell, layer.units, n_in)
        cls = getattr(self.nnx, _CELLS[layer.cell])

        def make(rngs):
            return cls(n_in, layer.units, rngs=rngs)

        w = dict(weights)
        if not layer.use_bias:
            w.pop("bias", None)
        pure = self._pure(layouts.keras_to_flax(layer.cell, w, reset_after=layer.reset_after))
        return key, make, pure

    def _run(self, layer, cell, x, init):
        """Step the nnx cell over time in Python.  (``nnx.RNN`` compiles a scan for every
        new shape, which the many shapes Hypothesis draws would pay for again and again;
        the cell's equations, which are what the claims are about, are the same.)"""
        b = x.shape[0]
        if init is not None:
            carry = (init[1], init[0]) if layer.cell == "lstm" else init[0]
        else:
            zero = self.jnp.zeros((b, layer.units), self.jnp.float32)
            carry = (zero, zero) if layer.cell == "lstm" else zero
        steps = range(x.shape[1])
        outputs = []
        for t in (reversed(steps) if layer.go_backwards else steps):
            carry, y = cell(carry, x[:, t])
            outputs.append(y)
        seq = self.jnp.stack(outputs, axis=1) if outputs else \
            self.jnp.zeros((b, 0, layer.units), self.jnp.float32)
        states = [carry[1], carry[0]] if layer.cell == "lstm" else [carry]
        first = seq if layer.return_sequences else states[0]
        return [first] + (states if layer.return_state else [])

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        if mask is not None:
            raise Unsupported("nnx.RNN takes seq_lengths, not a mask")
        x = self.jnp.asarray(np.asarray(x, dtype=np.float32))
        key, make, pure = self._rnn_parts(layer, weights, x.shape[-1])
        init = None if initial_state is None else [
            self.jnp.asarray(np.asarray(s, dtype=np.float32)) for s in initial_state]
        return [np.asarray(o) for o in self._run(layer, self._merge(key, make, pure), x, init)]

    def rnn_vjp(self, layer, weights, x, upstream, *, initial_state=None, mask=None):
        if mask is not None:
            raise Unsupported("nnx.RNN takes seq_lengths, not a mask")
        x = self.jnp.asarray(np.asarray(x, dtype=np.float32))
        key, make, pure = self._rnn_parts(layer, weights, x.shape[-1])
        init = [] if initial_state is None else [
            self.jnp.asarray(np.asarray(s, dtype=np.float32)) for s in initial_state]
        ups = [self.jnp.asarray(np.asarray(u, dtype=np.float32)) for u in upstream]

        def loss(p, x, init):
            outs = self._run(layer, self._merge(key, make, p), x, init or None)
            return sum(self.jnp.sum(o * u) for o, u in zip(outs, ups))

        g_p, g_x, g_init = self.jax.grad(loss, argnums=(0, 1, 2))(pure, x, init)
        out = {"x": np.asarray(g_x)}
        if initial_state is not None:
            out["initial_state"] = tuple(np.asarray(g) for g in g_init)
        keras_g = layouts.flax_to_keras(layer.cell, self._to_np(g_p))
        if not layer.use_bias:
            keras_g.pop("bias", None)
        out.update(keras_g)
        return out

    # ------------------------------------------------------------------ initialisation

    def initial_weights(self, layer, input_dim, seed):
        nnx = self.nnx
        rngs = nnx.Rngs(seed)
        if isinstance(layer, DenseLayer):
            mod = nnx.Linear(input_dim, layer.units, use_bias=layer.use_bias, rngs=rngs)
            return self._to_np(nnx.to_pure_dict(nnx.state(mod, nnx.Param)))
        if isinstance(layer, EmbeddingLayer):
            mod = nnx.Embed(layer.input_dim, layer.output_dim, rngs=rngs)
            return {"embeddings": np.asarray(nnx.to_pure_dict(nnx.state(mod, nnx.Param))
                                             ["embedding"])}
        if layer.cell == "gru":
            raise Unsupported("nnx.GRUCell owns one (3u,) bias on the input side only; "
                              "neither Keras GRU bias layout describes it")
        if not layer.use_bias:
            raise Unsupported(f"nnx.{_CELLS[layer.cell]} has no use_bias option: it always "
                              f"owns a bias")
        cell = getattr(nnx, _CELLS[layer.cell])(input_dim, layer.units, rngs=rngs)
        return layouts.flax_to_keras(layer.cell,
                                     self._to_np(nnx.to_pure_dict(nnx.state(cell, nnx.Param))))
