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

    def _float(self, a, dtype=None):
        return np.asarray(a, dtype=_numpy_dtype(dtype) if dtype else self.dtype)

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
            if layer.dtype is not None:
                kwargs["dtype"] = layer.dtype
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
        dtype = getattr(layer, "dtype", None)
        values = []
        for n in names:
            if n not in weights:
                raise KeyError(f"weights lack {n!r}; the layer owns {names}")
            values.append(self._float(weights[n], dtype))
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

    def _rnn_inputs(self, layer, x, initial_state, mask):
        x = self._float(x, layer.dtype)
        init = None if initial_state is None else [self._float(s, layer.dtype)
                                                   for s in initial_state]
        m = None if mask is None else np.asarray(mask, dtype=bool)
        return x, init, m

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        x, init, m = self._rnn_inputs(layer, x, initial_state, mask)
        klayer = self._layer(layer, x.shape[-1], weights)
        return [self._np(o) for o in self._rnn_call(klayer, x, init, m)]

    # ------------------------------------------------------------------ stateful

    def rnn_stateful(self, layer, weights, calls):
        chunks = [c for c in calls if c is not None]
        if not chunks:
            return []
        batch, features = np.shape(chunks[0])[0], np.shape(chunks[0])[-1]
        key = ("stateful", layer, batch, features)
        klayer = self._layers.get(key)
        if klayer is None:
            klayer = self._make(layer, stateful=True)
            klayer.build((batch, None, features))  # a stateful layer needs its batch size
            self._layers[key] = klayer
        self._layer_weights(klayer, layer, weights)
        self._reset(klayer)
        results = []
        for c in calls:
            if c is None:
                self._reset(klayer)
                continue
            x, _, _ = self._rnn_inputs(layer, c, None, None)
            results.append([self._np(o) for o in self._rnn_call(klayer, x, None, None)])
        return results

    @staticmethod
    def _reset(klayer):
        # Keras 3 names it reset_state; Keras 2 reset_states
        (getattr(klayer, "reset_state", None) or klayer.reset_states)()

    def _layer_weights(self, klayer, layer, weights):
        """Load the Keras-layout weights; other variables (a stateful layer's states)
        keep their values."""
        dtype = getattr(layer, "dtype", None)
        values = []
        for w in klayer.weights:
            n = self._wname(w)
            own = n in ("kernel", "recurrent_kernel", "bias", "embeddings")
            if own and n not in weights:
                raise KeyError(f"weights lack {n!r}")
            values.append(self._float(weights[n], dtype) if own else self._np(w))
        klayer.set_weights(values)

    # ------------------------------------------------------------------ compiled calls

    def compiled_modes(self):
        if self.backend == "tensorflow":
            return ("tf.function", "xla")
        if self.backend == "jax":
            return ("jax.jit",)
        if self.backend == "torch":
            return ("torch.compile",)
        return ()

    def rnn_compiled(self, mode, layer, weights, x, *, initial_state=None, mask=None):
        if mode not in self.compiled_modes():
            raise Unsupported(f"{self.name} has no compiled mode {mode!r}")
        x, init, m = self._rnn_inputs(layer, x, initial_state, mask)
        klayer = self._layer(layer, x.shape[-1], weights)
        key = ("compiled", mode, layer, x.shape[-1], init is None, m is None)
        fn = self._layers.get(key)
        if fn is None:
            fn = self._layers[key] = self._compile(mode, klayer)
        args = [x, init, m]
        return [self._np(o) for o in fn(*args)]

    def _compile(self, mode, klayer):
        call = self._rnn_call
        if mode in ("tf.function", "xla"):
            import tensorflow as tf

            def run(x, init, m):
                return call(klayer, x, init, m)

            return tf.function(run, jit_compile=(mode == "xla"), reduce_retracing=True,
                               autograph=False)
        if mode == "jax.jit":
            import jax

            def pure(tv, ntv, x, init, m):
                def apply(*args, **kwargs):
                    return klayer.stateless_call(tv, ntv, *args, **kwargs)[0]

                return call(apply, x, init, m)

            jitted = jax.jit(pure)

            def run(x, init, m):
                tv = [v.value for v in klayer.trainable_variables]
                ntv = [v.value for v in klayer.non_trainable_variables]
                return jitted(tv, ntv, x, init, m)

            return run
        if mode == "torch.compile":
            import torch

            compiled = torch.compile(lambda x, init, m: call(klayer, x, init, m),
                                     dynamic=True)

            def run(x, init, m):
                with torch.no_grad():
                    return compiled(torch.as_tensor(x),
                                    None if init is None else [torch.as_tensor(s)
                                                               for s in init],
                                    None if m is None else torch.as_tensor(m))

            return run
        raise Unsupported(f"{self.name} has no compiled mode {mode!r}")

    # ------------------------------------------------------------------ rebuilding

    def roundtrip_modes(self):
        return ("config", "file")

    def _forward(self, klayer, layer, inputs):
        if isinstance(layer, RNNLayer):
            x, _, _ = self._rnn_inputs(layer, inputs, None, None)
            return [self._np(o) for o in self._rnn_call(klayer, x, None, None)]
        if isinstance(layer, EmbeddingLayer):
            return self._np(klayer(np.asarray(inputs)))
        return self._np(klayer(self._float(inputs)))

    def roundtrip(self, via, layer, weights, inputs):
        dim = 0 if isinstance(layer, EmbeddingLayer) else np.shape(inputs)[-1]
        original = self._build(self._make(layer), layer, dim)
        self._layer_weights(original, layer, weights)
        if via == "config":
            rebuilt = type(original).from_config(original.get_config())
            self._build(rebuilt, layer, dim)
            rebuilt.set_weights(original.get_weights())
            return self._forward(rebuilt, layer, inputs)
        if via == "file":
            return self._forward(self._through_file(original, layer, inputs), layer, inputs)
        raise Unsupported(f"{self.name} has no roundtrip mode {via!r}")

    def _through_file(self, klayer, layer, inputs):
        import os
        import tempfile

        keras = self.keras
        shape = np.shape(inputs)[1:]
        dtype = "int32" if isinstance(layer, EmbeddingLayer) else None
        inp = keras.Input(shape=shape, dtype=dtype)
        model = keras.Model(inp, klayer(inp))
        keras3 = hasattr(keras, "ops")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras" if keras3 else "model.h5")
            model.save(path)
            loaded = keras.models.load_model(path)
        return loaded.layers[-1]

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


def _numpy_dtype(name):
    """NumPy dtype for a dtype policy name.  bfloat16 comes from ml_dtypes, which Keras 3 and
    TensorFlow >= 2.14 depend on; TensorFlow 2.13 and older carry a bfloat16 NumPy type of
    their own (and 2.13 installs no ml_dtypes)."""
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            import tensorflow as tf

            return tf.bfloat16.as_numpy_dtype
        return ml_dtypes.bfloat16
    return np.dtype(name)


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
