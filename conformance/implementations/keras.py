"""Keras 3 layers as an implementation under test.

Keras picks its backend once per process (``KERAS_BACKEND``); this adapter reports itself as
``keras-<backend>``.  Built layers are cached per configuration and only their weights are
reloaded for each example, because building a Keras layer costs far more than calling it.
Gradients are taken with the backend's own machinery (``tf.GradientTape`` on TensorFlow).
"""

from __future__ import annotations

import platform
from typing import Mapping

import numpy as np

from ..cases import CELL_NAMES, DenseLayer, EmbeddingLayer, RNNLayer
from . import Implementation, Unsupported

_GRADIENT_BACKENDS = ("tensorflow",)


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
        v = {"keras": self.keras.__version__, "backend": self.backend,
             "python": platform.python_version()}
        if self.backend == "tensorflow":
            import tensorflow as tf

            v["tensorflow"] = tf.__version__
        return v

    def _np(self, t) -> np.ndarray:
        return np.asarray(self.keras.ops.convert_to_numpy(t))

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
                          unroll=layer.unroll, **extra)
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
        names = [w.path.split("/")[-1] if hasattr(w, "path") else w.name.split(":")[0]
                 for w in klayer.weights]
        values = []
        for n in names:
            if n not in weights:
                raise KeyError(f"weights lack {n!r}; the layer owns {names}")
            values.append(self._float(weights[n]))
        klayer.set_weights(values)
        return klayer

    def _gradient_backend(self, what: str):
        if self.backend not in _GRADIENT_BACKENDS:
            raise Unsupported(f"{what} through Keras on the {self.backend} backend is not "
                              f"wired in this adapter")
        import tensorflow as tf

        return tf

    # ------------------------------------------------------------------ one-hot, dense

    def one_hot(self, ids, depth):
        return self._np(self.keras.ops.one_hot(np.asarray(ids), depth))

    def dense(self, layer, weights, x):
        x = self._float(x)
        return self._np(self._layer(layer, x.shape[-1], weights)(x))

    def dense_vjp(self, layer, weights, x, upstream):
        tf = self._gradient_backend("dense gradients")
        x = tf.constant(self._float(x))
        klayer = self._layer(layer, x.shape[-1], weights)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(klayer(x) * self._float(upstream))
        variables = list(klayer.trainable_weights)
        grads = tape.gradient(loss, [x] + variables)
        out = {"x": self._np(grads[0])}
        for v, g in zip(variables, grads[1:]):
            out[v.path.split("/")[-1]] = self._np(g)
        return out

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
        tf = self._gradient_backend("embedding gradients")
        klayer = self._layer(layer, 0, weights)
        float_ids = tf.constant(np.asarray(ids, dtype=np.float32))
        with tf.GradientTape() as tape:
            tape.watch(float_ids)
            loss = tf.reduce_sum(klayer(float_ids) * self._float(upstream))
        g_table, g_ids = tape.gradient(loss, [klayer.embeddings, float_ids])
        if isinstance(g_table, tf.IndexedSlices):
            g_table = tf.convert_to_tensor(g_table)
        return {"embeddings": self._np(g_table),
                "ids": None if g_ids is None else self._np(g_ids)}

    # ------------------------------------------------------------------ recurrent

    def _rnn_call(self, klayer, x, initial_state, mask):
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
        tf = self._gradient_backend(f"{layer.cell} gradients")
        x = tf.constant(self._float(x))
        klayer = self._layer(layer, x.shape[-1], weights)
        init = None if initial_state is None else [tf.constant(self._float(s))
                                                   for s in initial_state]
        m = None if mask is None else tf.constant(np.asarray(mask, dtype=bool))
        with tf.GradientTape() as tape:
            tape.watch(x)
            if init is not None:
                for s in init:
                    tape.watch(s)
            outs = self._rnn_call(klayer, x, init, m)
            loss = tf.add_n([tf.reduce_sum(o * self._float(u)) for o, u in zip(outs, upstream)])
        variables = list(klayer.trainable_weights)
        sources = [x] + (init or []) + variables
        grads = tape.gradient(loss, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        out = {"x": self._np(grads[0])}
        if init is not None:
            out["initial_state"] = tuple(self._np(g) for g in grads[1:1 + len(init)])
        for v, g in zip(variables, grads[1 + len(init or []):]):
            out[v.path.split("/")[-1]] = self._np(g)
        return out

    # ------------------------------------------------------------------ initialisation

    def initial_weights(self, layer, input_dim, seed):
        self.keras.utils.set_random_seed(seed)
        klayer = self._build(self._make(layer), layer, input_dim)
        return {w.path.split("/")[-1]: self._np(w) for w in klayer.weights}


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
