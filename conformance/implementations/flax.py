"""Flax (nnx) as an implementation under test: ``nnx.Embed``, ``nnx.Linear``,
``nnx.SimpleCell`` / ``nnx.LSTMCell`` / ``nnx.GRUCell`` stepped over time, and
``nnx.one_hot``.

Modules are built once per configuration and split into a graph definition and a parameter
state; each example merges Keras-layout weights (converted by
:func:`conformance.layouts.keras_to_flax`) into that state, and gradients come from
``jax.grad`` over the pure parameter dict.  float32 by default (float16 and bfloat16
layers through the cells' ``dtype`` and ``param_dtype``), on the CPU.

Plain calls step the cell over time in Python; masked and backward runs go through
``nnx.RNN`` (``seq_lengths``, ``reverse``), since those options belong to Flax, not to the
cells.  A stateful layer is the carry handed on by hand; ``jax.jit`` is the compiled path; a
saved layer is its parameters written with ``flax.serialization`` and read into a new module.
"""

from __future__ import annotations

import platform

import numpy as np

from .. import layouts
from ..cases import DenseLayer, EmbeddingLayer, RNNLayer
from . import Implementation, Unsupported, carry_state, right_padded_lengths

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

    def _pure(self, tree, dtype=None) -> dict:
        dtype = dtype or self.jnp.float32
        return self.jax.tree_util.tree_map(lambda a: self.jnp.asarray(a, dtype), tree)

    def _dtype(self, layer: RNNLayer):
        """The jnp dtype of a layer's dtype policy (None: float32)."""
        if layer.dtype is None:
            return self.jnp.float32
        if layer.dtype == "float64" and not self.jax.config.jax_enable_x64:
            raise Unsupported("JAX computes in float64 only with jax_enable_x64, a "
                              "process-wide switch this run leaves off")
        return getattr(self.jnp, layer.dtype)

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
        if layer.unroll:
            raise Unsupported("nnx cells have no unroll option")
        if layer.dropout or layer.recurrent_dropout:
            raise Unsupported("nnx cells have no dropout options")
        dtype = self._dtype(layer)
        # SimpleCell and LSTMCell always own biases: use_bias=False is held as zero biases
        key = ("rnn", layer.cell, layer.units, n_in, layer.dtype)
        cls = getattr(self.nnx, _CELLS[layer.cell])

        def make(rngs):
            return cls(n_in, layer.units, dtype=dtype, param_dtype=dtype, rngs=rngs)

        w = dict(weights)
        if not layer.use_bias:
            w.pop("bias", None)
        pure = self._pure(layouts.keras_to_flax(layer.cell, w, reset_after=layer.reset_after),
                          dtype)
        return key, make, pure

    def _run(self, layer, cell, x, init, lengths=None):
        """Plain runs step the nnx cell over time in Python (``nnx.RNN`` compiles a scan
        for every new shape, which the many shapes Hypothesis draws would pay for again and
        again; the cell's equations, which are what most claims are about, are the same).
        Masked (``seq_lengths``) and backward (``reverse``) runs use ``nnx.RNN`` itself."""
        b = x.shape[0]
        if init is not None:
            carry = (init[1], init[0]) if layer.cell == "lstm" else init[0]
        else:
            zero = self.jnp.zeros((b, layer.units), x.dtype)
            carry = (zero, zero) if layer.cell == "lstm" else zero
        if lengths is not None or layer.go_backwards:
            if x.shape[1] == 0:
                raise Unsupported("nnx.RNN scans over time and has no zero-step form")
            # keep_order=False: a reversed run returns its outputs in processing order, as
            # Keras's go_backwards does
            rnn = self.nnx.RNN(cell, return_carry=True, reverse=layer.go_backwards,
                               keep_order=False)
            carry, seq = rnn(x, initial_carry=carry, seq_lengths=lengths)
        else:
            outputs = []
            for t in range(x.shape[1]):
                carry, y = cell(carry, x[:, t])
                outputs.append(y)
            seq = self.jnp.stack(outputs, axis=1) if outputs else \
                self.jnp.zeros((b, 0, layer.units), x.dtype)
        states = [carry[1], carry[0]] if layer.cell == "lstm" else [carry]
        first = seq if layer.return_sequences else states[0]
        return [first] + (states if layer.return_state else [])

    def _rnn_args(self, layer, weights, x, initial_state, mask):
        lengths = right_padded_lengths(mask, "nnx.RNN's seq_lengths")
        dtype = self._dtype(layer)
        x = self.jnp.asarray(np.asarray(x, dtype=np.float64), dtype)
        key, make, pure = self._rnn_parts(layer, weights, x.shape[-1])
        init = None if initial_state is None else [
            self.jnp.asarray(np.asarray(s, dtype=np.float64), dtype) for s in initial_state]
        lengths = None if lengths is None else self.jnp.asarray(lengths)
        return key, make, pure, x, init, lengths

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        key, make, pure, x, init, lengths = self._rnn_args(layer, weights, x,
                                                           initial_state, mask)
        return [np.asarray(o) for o in self._run(layer, self._merge(key, make, pure), x, init,
                                                 lengths)]

    def rnn_stateful(self, layer, weights, calls):
        return carry_state(self, layer, weights, calls)

    def compiled_modes(self):
        return ("jax.jit",)

    def rnn_compiled(self, mode, layer, weights, x, *, initial_state=None, mask=None):
        if mode != "jax.jit":
            raise Unsupported(f"flax has no compiled mode {mode!r}")
        key, make, pure, x, init, lengths = self._rnn_args(layer, weights, x,
                                                           initial_state, mask)
        jit_key = ("jit", key, layer)
        if jit_key not in self._modules:
            def forward(p, x, init, lengths):
                return self._run(layer, self._merge(key, make, p), x, init, lengths)

            self._modules[jit_key] = self.jax.jit(forward)
        return [np.asarray(o) for o in self._modules[jit_key](pure, x, init, lengths)]

    def roundtrip_modes(self):
        return ("flax.serialization bytes",)

    def roundtrip(self, via, layer, weights, inputs):
        """The parameters of the configured module written with
        ``flax.serialization.to_bytes`` and restored into a new module built with another
        seed, which then runs on ``inputs``."""
        from flax import serialization

        if via != "flax.serialization bytes":
            raise Unsupported(f"flax has no roundtrip mode {via!r}")
        if isinstance(layer, RNNLayer):
            key, make, pure, x, _, _ = self._rnn_args(layer, weights, inputs, None, None)
        elif isinstance(layer, EmbeddingLayer):
            key, make, pure = self._embed_parts(layer, weights)
            x = self.jnp.asarray(np.asarray(inputs))
        else:
            x = self.jnp.asarray(np.asarray(inputs, dtype=np.float32))
            key, make, pure = self._dense_parts(layer, weights, x.shape[-1])
        original = self._merge(key, make, pure)
        blob = serialization.to_bytes(self.nnx.to_pure_dict(self.nnx.state(original,
                                                                             self.nnx.Param)))
        fresh = make(self.nnx.Rngs(1))
        state = self.nnx.state(fresh, self.nnx.Param)
        self.nnx.replace_by_pure_dict(state, serialization.msgpack_restore(blob))
        self.nnx.update(fresh, state)
        if isinstance(layer, RNNLayer):
            return [np.asarray(o) for o in self._run(layer, fresh, x, None)]
        return np.asarray(fresh(x))

    def rnn_vjp(self, layer, weights, x, upstream, *, initial_state=None, mask=None):
        key, make, pure, x, init, lengths = self._rnn_args(layer, weights, x,
                                                           initial_state, mask)
        init = init or []
        ups = [self.jnp.asarray(np.asarray(u, dtype=np.float64), x.dtype) for u in upstream]

        def loss(p, x, init):
            outs = self._run(layer, self._merge(key, make, p), x, init or None, lengths)
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
