"""PyTorch (``torch.nn``) as an implementation under test.

Weights arrive in the Keras layout and are converted with :mod:`conformance.layouts`
(transposed kernels, GRU blocks r z n, two biases).  Computation is float32, on the CPU.
Modules are cached per configuration; only their parameters are overwritten per example.
"""

from __future__ import annotations

import platform

import numpy as np

from .. import layouts
from ..cases import DenseLayer, EmbeddingLayer, RNNLayer
from . import Implementation, Unsupported, carry_state, right_padded_lengths

_MODULES = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
_DTYPES = {None: "float32", "float16": "float16", "bfloat16": "bfloat16",
           "float32": "float32", "float64": "float64"}


class TorchImplementation(Implementation):
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch
        self._modules: dict = {}

    def versions(self):
        return {"torch": self.torch.__version__, "python": platform.python_version()}

    # ------------------------------------------------------------------ helpers

    def _t(self, a, dtype=None, grad=False):
        t = self.torch.as_tensor(np.asarray(a, dtype=dtype or np.float32))
        return t.requires_grad_(True) if grad else t

    @staticmethod
    def _np(t) -> np.ndarray:
        return t.detach().cpu().numpy()

    def _module(self, key, make):
        mod = self._modules.get(key)
        if mod is None:
            mod = self._modules[key] = make()
        return mod

    def _load(self, mod, state: dict):
        with self.torch.no_grad():
            for name, value in state.items():
                param = getattr(mod, name)
                if tuple(param.shape) != np.shape(value):
                    raise ValueError(f"{name}: torch expects {tuple(param.shape)}, "
                                     f"got {np.shape(value)}")
                param.copy_(self._t(value, np.float64).to(param.dtype))
        return mod

    def _tt(self, a, layer, grad=False):
        """A tensor in the layer's dtype (float32 by default)."""
        t = self._t(a, np.float64).to(getattr(self.torch, _DTYPES[layer.dtype]))
        return t.requires_grad_(True) if grad else t

    def _out(self, t) -> np.ndarray:
        if t.dtype == self.torch.bfloat16:  # NumPy has no bfloat16 of its own
            import ml_dtypes

            return self._np(t.float()).astype(ml_dtypes.bfloat16)
        return self._np(t)

    # ------------------------------------------------------------------ one-hot, dense

    def one_hot(self, ids, depth):
        return self._np(self.torch.nn.functional.one_hot(
            self.torch.as_tensor(np.asarray(ids, dtype=np.int64)), depth))

    def cosine_similarity(self, a, b):
        return self._np(self.torch.nn.functional.cosine_similarity(self._t(a), self._t(b),
                                                                    dim=-1))

    def _linear(self, layer: DenseLayer, weights, n_in: int):
        mod = self._module(("dense", layer, n_in), lambda: self.torch.nn.Linear(
            n_in, layer.units, bias=layer.use_bias))
        state = {"weight": layouts.keras_dense_to_torch(weights["kernel"])}
        if layer.use_bias:
            state["bias"] = weights["bias"]
        return self._load(mod, state)

    def dense(self, layer, weights, x):
        # torch's Linear needs a floating input; an integer one-hot is cast to float32
        x = np.asarray(x, dtype=np.float32)
        with self.torch.no_grad():
            return self._np(self._linear(layer, weights, x.shape[-1])(self._t(x)))

    def dense_vjp(self, layer, weights, x, upstream):
        x = self._t(x, grad=True)
        mod = self._linear(layer, weights, x.shape[-1])
        loss = (mod(x) * self._t(upstream)).sum()
        params = [mod.weight] + ([mod.bias] if layer.use_bias else [])
        grads = self.torch.autograd.grad(loss, [x] + params)
        out = {"x": self._np(grads[0]), "kernel": self._np(grads[1]).T}
        if layer.use_bias:
            out["bias"] = self._np(grads[2])
        return out

    # ------------------------------------------------------------------ embedding

    def _embed(self, layer: EmbeddingLayer, weights):
        mod = self._module(("embedding", layer), lambda: self.torch.nn.Embedding(
            layer.input_dim, layer.output_dim))
        return self._load(mod, {"weight": weights["embeddings"]})

    def embedding(self, layer, weights, ids):
        ids = self.torch.as_tensor(np.asarray(ids, dtype=np.int64))
        with self.torch.no_grad():
            return self._np(self._embed(layer, weights)(ids))

    def embedding_mask(self, layer, ids):
        if layer.mask_zero:
            raise Unsupported("torch.nn.Embedding hands on no mask (padding_idx only keeps "
                              "one row's gradient at zero)")
        return None

    def embedding_vjp(self, layer, weights, ids, upstream):
        mod = self._embed(layer, weights)
        out = mod(self.torch.as_tensor(np.asarray(ids, dtype=np.int64)))
        (g,) = self.torch.autograd.grad((out * self._t(upstream)).sum(), [mod.weight])
        # torch only indexes with integer tensors, which cannot carry a gradient
        return {"embeddings": self._np(g), "ids": None}

    # ------------------------------------------------------------------ recurrent

    def _rnn_module(self, layer: RNNLayer, weights, n_in: int):
        if layer.go_backwards:
            raise Unsupported("torch.nn recurrent modules have no go_backwards option")
        if layer.unroll:
            raise Unsupported("torch.nn recurrent modules have no unroll option")
        if layer.dropout or layer.recurrent_dropout:
            raise Unsupported("torch.nn recurrent dropout only acts between stacked layers")
        if layer.cell == "gru" and not layer.reset_after:
            raise Unsupported("torch.nn.GRU only applies the reset gate after the recurrent "
                              "product (Keras reset_after=True)")
        key = ("rnn", layer.cell, layer.units, layer.use_bias, n_in, layer.dtype)
        mod = self._module(key, lambda: self._new_rnn(layer, n_in))
        return self._load(mod, self.convert(layer, weights))

    def _new_rnn(self, layer, n_in):
        cls = getattr(self.torch.nn, _MODULES[layer.cell])
        kwargs = {"nonlinearity": "tanh"} if layer.cell == "simple_rnn" else {}
        return cls(n_in, layer.units, bias=layer.use_bias, batch_first=True,
                   dtype=getattr(self.torch, _DTYPES[layer.dtype]), **kwargs)

    def convert(self, layer: RNNLayer, weights) -> dict:
        """Keras-layout weights -> this module's state dict (see conformance.layouts)."""
        return layouts.keras_to_torch(layer.cell, weights, reset_after=layer.reset_after)

    @staticmethod
    def _lengths(mask):
        return right_padded_lengths(mask, "torch.nn.utils.rnn.pack_padded_sequence")

    def _forward(self, layer, mod, x, initial_state, lengths=None, call=None):
        call = mod if call is None else call
        if initial_state is None:
            hx = None
        elif layer.cell == "lstm":
            hx = tuple(s[None] for s in initial_state)
        else:
            hx = initial_state[0][None]
        steps = x.shape[1]
        if lengths is not None:
            # the usual torch idiom for a padded batch; outputs past a row's length are
            # zeros, its final state is the state at its length
            rnn_utils = self.torch.nn.utils.rnn
            x = rnn_utils.pack_padded_sequence(x, self.torch.as_tensor(lengths),
                                               batch_first=True, enforce_sorted=False)
        seq, state = call(x) if hx is None else call(x, hx)
        if lengths is not None:
            seq, _ = rnn_utils.pad_packed_sequence(seq, batch_first=True, total_length=steps)
        states = [s[0] for s in state] if layer.cell == "lstm" else [state[0]]
        first = seq if layer.return_sequences else (
            states[0] if lengths is not None else seq[:, -1])
        return [first] + (states if layer.return_state else [])

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        lengths = self._lengths(mask)
        x = self._tt(x, layer)
        mod = self._rnn_module(layer, weights, x.shape[-1])
        init = None if initial_state is None else [self._tt(s, layer) for s in initial_state]
        with self.torch.no_grad():
            return [self._out(o) for o in self._forward(layer, mod, x, init, lengths)]

    def rnn_stateful(self, layer, weights, calls):
        return carry_state(self, layer, weights, calls)

    def compiled_modes(self):
        return ("torch.compile",)

    def rnn_compiled(self, mode, layer, weights, x, *, initial_state=None, mask=None):
        if mode != "torch.compile":
            raise Unsupported(f"torch has no compiled mode {mode!r}")
        lengths = self._lengths(mask)
        x = self._tt(x, layer)
        mod = self._rnn_module(layer, weights, x.shape[-1])
        key = ("compiled", id(mod))
        compiled = self._module(key, lambda: self.torch.compile(mod, dynamic=True))
        init = None if initial_state is None else [self._tt(s, layer) for s in initial_state]
        with self.torch.no_grad():
            return [self._out(o) for o in self._forward(layer, mod, x, init, lengths,
                                                         call=compiled)]

    def roundtrip_modes(self):
        return ("state_dict file",)

    def roundtrip(self, via, layer, weights, inputs):
        """A new module built with the same arguments, loaded from a state_dict saved to
        a file (torch.save / torch.load): how torch models are persisted."""
        import io

        if via != "state_dict file":
            raise Unsupported(f"torch has no roundtrip mode {via!r}")
        if isinstance(layer, RNNLayer):
            original = self._rnn_module(layer, weights, np.shape(inputs)[-1])
            fresh = self._new_rnn(layer, np.shape(inputs)[-1])
        elif isinstance(layer, EmbeddingLayer):
            original = self._embed(layer, weights)
            fresh = self.torch.nn.Embedding(layer.input_dim, layer.output_dim)
        else:
            original = self._linear(layer, weights, np.shape(inputs)[-1])
            fresh = self.torch.nn.Linear(np.shape(inputs)[-1], layer.units,
                                         bias=layer.use_bias)
        buf = io.BytesIO()
        self.torch.save(original.state_dict(), buf)
        buf.seek(0)
        fresh.load_state_dict(self.torch.load(buf, weights_only=True))
        with self.torch.no_grad():
            if isinstance(layer, RNNLayer):
                x = self._tt(inputs, layer)
                return [self._out(o) for o in self._forward(layer, fresh, x, None)]
            if isinstance(layer, EmbeddingLayer):
                return self._np(fresh(self.torch.as_tensor(np.asarray(inputs,
                                                                       dtype=np.int64))))
            return self._np(fresh(self._t(inputs)))

    def rnn_vjp(self, layer, weights, x, upstream, *, initial_state=None, mask=None):
        if mask is not None:
            raise Unsupported("torch.nn recurrent modules take no mask (gradients through "
                              "packed sequences are not wired here)")
        x = self._tt(x, layer, grad=True)
        mod = self._rnn_module(layer, weights, x.shape[-1])
        init = None if initial_state is None else [self._tt(s, layer, grad=True)
                                                   for s in initial_state]
        outs = self._forward(layer, mod, x, init)
        loss = sum((o * self._tt(u, layer)).sum() for o, u in zip(outs, upstream))
        names = ["weight_ih_l0", "weight_hh_l0"] + (
            ["bias_ih_l0", "bias_hh_l0"] if layer.use_bias else [])
        params = [getattr(mod, n) for n in names]
        grads = self.torch.autograd.grad(loss, [x] + (init or []) + params, allow_unused=True)
        as_np = [None if g is None else self._np(g) for g in grads]
        result = {"x": as_np[0]}
        if init is not None:
            result["initial_state"] = tuple(as_np[1:1 + len(init)])
        g = dict(zip(names, as_np[1 + len(init or []):]))
        if layer.use_bias and layer.cell != "gru":
            # the Keras bias feeds bias_ih only (bias_hh is held at zero): its gradient is
            # that of bias_ih, not the sum of both
            g["bias_hh_l0"] = np.zeros_like(g["bias_ih_l0"])
        result.update(layouts.torch_to_keras(layer.cell, g))
        return result

    # ------------------------------------------------------------------ initialisation

    def initial_weights(self, layer, input_dim, seed):
        self.torch.manual_seed(seed)
        nn = self.torch.nn
        if isinstance(layer, DenseLayer):
            mod = nn.Linear(input_dim, layer.units, bias=layer.use_bias)
            w = {"kernel": self._np(mod.weight).T}
            if layer.use_bias:
                w["bias"] = self._np(mod.bias)
            return w
        if isinstance(layer, EmbeddingLayer):
            return {"embeddings": self._np(nn.Embedding(layer.input_dim,
                                                        layer.output_dim).weight)}
        if layer.cell == "gru" and not layer.reset_after:
            raise Unsupported("torch.nn.GRU has no reset_after=False form")
        kwargs = {"nonlinearity": "tanh"} if layer.cell == "simple_rnn" else {}
        mod = getattr(nn, _MODULES[layer.cell])(input_dim, layer.units, bias=layer.use_bias,
                                                batch_first=True, **kwargs)
        state = {k: self._np(v) for k, v in mod.state_dict().items()}
        return layouts.torch_to_keras(layer.cell, state)
