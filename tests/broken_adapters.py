"""Framework adapters with one weight-conversion bug each (the suite must catch them).

Kept apart from broken.py because they import torch / onnxruntime when built."""

from __future__ import annotations

import numpy as np

from conformance import layouts


def TorchGRUWrongOrder():
    """The torch adapter with the GRU blocks left in the Keras order z, r, h (torch reads
    r, z, n)."""
    from conformance.implementations.torch import TorchImplementation

    class _Adapter(TorchImplementation):
        def convert(self, layer, weights):
            state = super().convert(layer, weights)
            if layer.cell == "gru":
                for k, v in state.items():
                    state[k] = layouts.reorder(v, "rzh", "zrh", axis=0)
            return state

    return _Adapter()


def OnnxLSTMKerasOrder():
    """The ONNX adapter feeding LSTM weights in the Keras gate order i, f, c, o (ONNX reads
    i, o, f, c)."""
    from conformance.implementations.onnxruntime import OnnxRuntimeImplementation

    class _Adapter(OnnxRuntimeImplementation):
        def convert(self, layer, weights):
            w = super().convert(layer, weights)
            if layer.cell == "lstm":
                w = {"W": layouts.reorder(w["W"], "iofc", "ifco", axis=1),
                     "R": layouts.reorder(w["R"], "iofc", "ifco", axis=1),
                     "B": np.concatenate([layouts.reorder(h, "iofc", "ifco", axis=1)
                                          for h in np.split(w["B"], 2, axis=1)], axis=1)}
            return w

    return _Adapter()


def TorchKernelNotTransposed():
    """The torch adapter loading a square Dense kernel without transposing it."""
    from conformance.implementations.torch import TorchImplementation

    class _Adapter(TorchImplementation):
        def _linear(self, layer, weights, n_in):
            mod = super()._linear(layer, weights, n_in)
            k = np.asarray(weights["kernel"], dtype=np.float32)
            if k.shape[0] == k.shape[1]:
                self._load(mod, {"weight": k})
            return mod

    return _Adapter()


CATCHES = {
    "TorchGRUWrongOrder": ("torch", {"gru.recurrence", "gru.weight_shapes"}),
    "OnnxLSTMKerasOrder": ("onnxruntime", {"lstm.recurrence", "lstm.weight_shapes"}),
    "TorchKernelNotTransposed": ("torch", {"dense.onehot_selects_rows",
                                           "embedding.equals_onehot_dense"}),
}
