"""Keras layers as an implementation under test: Keras 3 on any backend, and Keras 2
(``tf_keras``, or ``tf.keras`` on TensorFlow up to 2.15) as ``tf-keras``.

Keras 3 picks its backend once per process (``KERAS_BACKEND``); this adapter reports itself
as ``keras-<backend>``.  Built layers are cached per configuration and only their weights are
reloaded for each example, because building a Keras layer costs far more than calling it.
Gradients are taken with the backend's own machinery (``tf.GradientTape`` on TensorFlow,
``jax.grad`` over ``stateless_call`` on JAX, ``torch.autograd`` on PyTorch); the NumPy
backend has none.
"""

from __future__ import annotations

import platform
from typing import Mapping

import numpy as np

from ..cases import CELL_NAMES, DenseLayer, EmbeddingLayer, RNNLayer
from . import Implementation, Unsupported



class KerasImplementation(Implementation):
    def __init__(self, keras_module=None, *, name: str | None = None):
        if keras_module is None:
            import keras as keras_module
        self.keras = keras_module
        self.backend = keras_module.backend.backend()
        self.name = name or f"keras-{self.backend}"
        self._layers: dict = {}
        self.dtype = np.float32

    # ------------------------------------------------------------------ helpers

    def versions(self) -> Mapping[str, str]:
        v = {"keras": getattr(self.keras, "__version__", "?"), "backend": self.backend,
             "python": platform.python_version()}
        if self.backend == "tensorflow":
            import tensorflow as tf

            v["tensorflow"] = tf.__version__
        return v

    def _np(self, t) -> np.ndarray:
        if hasattr(self.keras, "ops"):
            return np.asarray(self.keras.ops.convert_to_numpy(t))
        return np.asarray(t)  # Keras 2: eager TensorFlow tensors and variables

    @staticmethod
    def _wname(v) -> str:
        """A weight's Keras name ('kernel', 'recurrent_kernel', 'bias', 'embeddings')."""
        if hasattr(v, "path"):
            return v.path.split("/")[-1]
        return v.name.split("/")[-1].split(":")[0]  # Keras 2: 'lstm/lstm_cell/kernel:0'

    def _float(self, a):
        return np.asarray(a, dtype=self.dtype)

    def _make(self, layer, **extra):
        layers = self.keras.layers
        if isinstance(layer, DenseLayer):
            return layers.Dense(layer.units, use_bias=layer.use_bias, **extra)
        if isinstance(layer, EmbeddingLayer):
            return layers.Embedding(layer.input_dim, layer.output_dim,
                                    mask_zero=layer.mask_zero, **extra)
        if isinstance(layer, RNNLayer):
            kwargs = dict(units=layer.units, use_bias=layer.use_bias,
                          return_sequences=layer.return_sequences,
                          return_state=layer.return_state, go_backwards=layer.go_backwards,
                          unroll=layer.unroll, dropout=layer.dropout,
                          recurrent_dropout=layer.recurrent_dropout, **extra)
            if layer.cell == "gru":
                kwargs["reset_after"] = layer.reset_after
            return getattr(layers, CELL_NAMES[layer.cell])(**kwargs)
        raise TypeError(f"unknown layer description {layer!r}")

    def _build(self, klayer, layer, input_dim: int):
        if isinstance(layer, DenseLayer):
            klayer.build((None, input_dim))
        elif isinstance(layer, EmbeddingLayer):
            klayer.build((None, None))
        else:
            klayer.build((None, None, input_dim))
        return klayer

    def _layer(self, layer, input_dim: int, weights: Mapping):
        key = (layer, input_dim)
        klayer = self._layers.get(key)
        if klayer is None:
            klayer = self._build(self._make(layer), layer, input_dim)
            self._layers[key] = klayer
        names = [self._wname(w) for w in klayer.weights]
        values = []
        for n in names:
            if n not in weights:
                raise KeyError(f"weights lack {n!r}; the layer owns {names}")
            values.append(self._float(weights[n]))
        klayer.set_weights(values)
        return klayer

    def _grad(self, klayer, primals, call, upstream, what: str):
        """Gradients of sum_k sum(upstream[k] * outputs[k]) with respect to ``primals``
        (float arrays) and the layer's trainable weights, with the backend's own autodiff.

        ``call(apply, primals)`` returns the outputs, calling the layer through ``apply``.
        Returns (list of primal gradients, {weight name: gradient}); a primal with no
        gradient path gets None."""
        names = [self._wname(v) for v in klayer.trainable_weights]
        primals = [self._float(p) for p in primals]
        upstream = [self._float(u) for u in upstream]
        if self.backend == "tensorflow":
            import tensorflow as tf

            ps = [tf.constant(p) for p in primals]
            with tf.GradientTape() as tape:
                for p in ps:
                    tape.watch(p)
                outs = call(klayer, ps)
                loss = tf.add_n([tf.reduce_sum(o * u) for o, u in zip(outs, upstream)])
            grads = tape.gradient(loss, ps + list(klayer.trainable_weights))
            grads = [None if g is None else tf.convert_to_tensor(g) for g in grads]
        elif self.backend == "jax":
            import jax
            import jax.numpy as jnp

            tv = [v.value for v in klayer.trainable_variables]
            ntv = [v.value for v in klayer.non_trainable_variables]

            def loss_fn(ps, tv):
                def apply(*args, **kwargs):
                    return klayer.stateless_call(tv, ntv, *args, **kwargs)[0]

                outs = call(apply, ps)
                outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
                return sum(jnp.sum(o * u) for o, u in zip(outs, upstream))

            g_p, g_w = jax.grad(loss_fn, argnums=(0, 1))([jnp.asarray(p) for p in primals],
                                                         tv)
            grads = list(g_p) + list(g_w)
        elif self.backend == "torch":
            import torch

            ps = [torch.tensor(p, requires_grad=True) for p in primals]
            outs = call(klayer, ps)
            loss = sum((o * torch.as_tensor(u, device=o.device)).sum()
                       for o, u in zip(outs, upstream))
            params = [v.value for v in klayer.trainable_weights]
            grads = list(torch.autograd.grad(loss, ps + params, allow_unused=True))
            grads = [None if g is None else g.detach().cpu() for g in grads]
        else:
            raise Unsupported(f"{what}: Keras on the {self.backend} backend computes no "
                              f"gradients")
        as_np = [None if g is None else self._np(g) for g in grads]
        return as_np[:len(primals)], dict(zip(names, as_np[len(primals):]))

    # ------------------------------------------------------------------ one-hot, dense

    def one_hot(self, ids, depth):
        if not hasattr(self.keras, "ops"):  # Keras 2 has no ops module: tf.one_hot
            import tensorflow as tf

            return self._np(tf.one_hot(np.asarray(ids), depth))
        return self._np(self.keras.ops.one_hot(np.asarray(ids), depth))

    def cosine_similarity(self, a, b):
        dot = self._layers.get("cosine")
        if dot is None:
            dot = self._layers["cosine"] = self.keras.layers.Dot(axes=-1, normalize=True)
        out = dot([self._float(a), self._float(b)])
        return self._np(out).reshape(-1)

    def dense(self, layer, weights, x):
        x = self._float(x)
        return self._np(self._layer(layer, x.shape[-1], weights)(x))

    def dense_vjp(self, layer, weights, x, upstream):
        klayer = self._layer(layer, np.shape(x)[-1], weights)
        (g_x,), g_w = self._grad(klayer, [x], lambda f, p: [f(p[0])], [upstream],
                                 "dense gradients")
        return {"x": g_x, **g_w}

    # ------------------------------------------------------------------ embedding

    def embedding(self, layer, weights, ids):
        return self._np(self._layer(layer, 0, weights)(np.asarray(ids)))

    def embedding_mask(self, layer, ids):
        key = (layer, 0)
        klayer = self._layers.get(key) or self._layer(
            layer, 0, {"embeddings": np.zeros((layer.input_dim, layer.output_dim))})
        mask = klayer.compute_mask(np.asarray(ids))
        return None if mask is None else self._np(mask)

    def embedding_vjp(self, layer, weights, ids, upstream):
        klayer = self._layer(layer, 0, weights)
        # the ids go in as a float tensor, so that a gradient path would show if one existed
        (g_ids,), g_w = self._grad(klayer, [np.asarray(ids, dtype=np.float32)],
                                   lambda f, p: [f(p[0])], [upstream], "embedding gradients")
        return {"embeddings": g_w["embeddings"], "ids": g_ids}

    # ------------------------------------------------------------------ recurrent

    def _rnn_call(self, klayer, x, initial_state, mask):
        if not hasattr(self.keras, "ops"):  # Keras 2 wants tensors for states and masks
            import tensorflow as tf

            x = tf.convert_to_tensor(x)
            if initial_state is not None:
                initial_state = [tf.convert_to_tensor(s) for s in initial_state]
            if mask is not None:
                mask = tf.convert_to_tensor(mask)
        kwargs = {}
        if initial_state is not None:
            kwargs["initial_state"] = list(initial_state)
        if mask is not None:
            kwargs["mask"] = mask
        out = klayer(x, **kwargs)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        x = self._float(x)
        klayer = self._layer(layer, x.shape[-1], weights)
        init = None if initial_state is None else [self._float(s) for s in initial_state]
        m = None if mask is None else np.asarray(mask, dtype=bool)
        return [self._np(o) for o in self._rnn_call(klayer, x, init, m)]

    def rnn_vjp(self, layer, weights, x, upstream, *, initial_state=None, mask=None):
        klayer = self._layer(layer, np.shape(x)[-1], weights)
        n_init = 0 if initial_state is None else len(initial_state)
        m = None if mask is None else np.asarray(mask, dtype=bool)

        def call(apply, ps):
            return self._rnn_call(apply, ps[0], ps[1:] if n_init else None, m)

        primals = [x] + list(initial_state or [])
        grads, g_w = self._grad(klayer, primals, call, upstream, f"{layer.cell} gradients")
        out = {"x": grads[0], **g_w}
        if n_init:
            out["initial_state"] = tuple(grads[1:])
        return out

    # ------------------------------------------------------------------ initialisation

    def initial_weights(self, layer, input_dim, seed):
        self.keras.utils.set_random_seed(seed)
        klayer = self._build(self._make(layer), layer, input_dim)
        return {self._wname(w): self._np(w) for w in klayer.weights}


def _for_backend(backend: str):
    def factory():
        import keras

        actual = keras.backend.backend()
        if actual != backend:
            raise RuntimeError(f"Keras runs on {actual} in this process, not {backend}")
        return KerasImplementation(keras)

    factory.__name__ = f"for_backend_{backend}"
    return factory


for_backend_tensorflow = _for_backend("tensorflow")
for_backend_jax = _for_backend("jax")
for_backend_torch = _for_backend("torch")
for_backend_numpy = _for_backend("numpy")


def for_tf_keras():
    """Keras 2: ``tf.keras`` on TensorFlow up to 2.15, the ``tf_keras`` package after."""
    import tensorflow as tf

    major, minor = (int(p) for p in tf.__version__.split(".")[:2])
    if (major, minor) <= (2, 15):
        keras2 = tf.keras
    else:
        import tf_keras as keras2
    impl = KerasImplementation(keras2, name="tf-keras")
    return impl
