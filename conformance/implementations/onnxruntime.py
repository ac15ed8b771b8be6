"""ONNX graphs built with ``onnx.helper`` and run by ONNX Runtime.

One small graph per operation and configuration (``OneHot``, ``MatMul`` (+ ``Add``),
``Gather``, ``RNN``, ``LSTM``, ``GRU``); weights are graph inputs, so a session is built
once per configuration and fed new weights for each example.  Keras-layout weights are
converted with :func:`conformance.layouts.keras_to_onnx` (gate order i o f c for LSTM,
``linear_before_reset`` for the GRU reset convention).  Inference only: no gradients.
"""

from __future__ import annotations

import platform

import numpy as np

from .. import layouts
from ..cases import DenseLayer, EmbeddingLayer
from . import Implementation, Unsupported, WouldCrash

OPSET = 21
IR_VERSION = 10
_OPS = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


class OnnxRuntimeImplementation(Implementation):
    name = "onnxruntime"

    def __init__(self):
        import onnx
        import onnxruntime

        self.onnx = onnx
        self.ort = onnxruntime
        self._sessions: dict = {}

    def versions(self):
        return {"onnxruntime": self.ort.__version__, "onnx": self.onnx.__version__,
                "opset": str(OPSET), "python": platform.python_version()}

    # ------------------------------------------------------------------ graph helpers

    def _session(self, key, build):
        sess = self._sessions.get(key)
        if sess is None:
            graph = build()
            model = self.onnx.helper.make_model(
                graph, opset_imports=[self.onnx.helper.make_opsetid("", OPSET)])
            model.ir_version = IR_VERSION
            self.onnx.checker.check_model(model)
            opts = self.ort.SessionOptions()
            opts.log_severity_level = 3
            sess = self.ort.InferenceSession(model.SerializeToString(), opts,
                                             providers=["CPUExecutionProvider"])
            self._sessions[key] = sess
        return sess

    def _vi(self, name, elem, rank):
        dims = [f"{name}_d{i}" for i in range(rank)]
        return self.onnx.helper.make_tensor_value_info(name, elem, dims)

    @property
    def _f32(self):
        return self.onnx.TensorProto.FLOAT

    @property
    def _i64(self):
        return self.onnx.TensorProto.INT64

    # ------------------------------------------------------------------ one-hot, dense

    def one_hot(self, ids, depth):
        ids = np.asarray(ids, dtype=np.int64)
        h = self.onnx.helper

        def build():
            node = h.make_node("OneHot", ["ids", "depth", "values"], ["out"], axis=-1)
            return h.make_graph([node], "one_hot",
                                [self._vi("ids", self._i64, ids.ndim),
                                 h.make_tensor_value_info("depth", self._i64, []),
                                 h.make_tensor_value_info("values", self._f32, [2])],
                                [self._vi("out", self._f32, ids.ndim + 1)])

        sess = self._session(("one_hot", ids.ndim), build)
        return sess.run(None, {"ids": ids, "depth": np.array(depth, dtype=np.int64),
                               "values": np.array([0, 1], dtype=np.float32)})[0]

    def cosine_similarity(self, a, b):
        raise Unsupported("ONNX has no cosine similarity operator")

    def dense(self, layer: DenseLayer, weights, x):
        x = np.asarray(x, dtype=np.float32)
        h = self.onnx.helper

        def build():
            nodes = [h.make_node("MatMul", ["x", "kernel"], ["xk" if layer.use_bias else "out"])]
            inputs = [self._vi("x", self._f32, x.ndim), self._vi("kernel", self._f32, 2)]
            if layer.use_bias:
                nodes.append(h.make_node("Add", ["xk", "bias"], ["out"]))
                inputs.append(self._vi("bias", self._f32, 1))
            return h.make_graph(nodes, "dense", inputs, [self._vi("out", self._f32, x.ndim)])

        feed = {"x": x, "kernel": np.asarray(weights["kernel"], dtype=np.float32)}
        if layer.use_bias:
            feed["bias"] = np.asarray(weights["bias"], dtype=np.float32)
        return self._session(("dense", layer.use_bias, x.ndim), build).run(None, feed)[0]

    def dense_vjp(self, layer, weights, x, upstream):
        raise Unsupported("ONNX Runtime inference sessions compute no gradients")

    # ------------------------------------------------------------------ embedding

    def embedding(self, layer: EmbeddingLayer, weights, ids):
        ids = np.asarray(ids, dtype=np.int64)
        h = self.onnx.helper

        def build():
            node = h.make_node("Gather", ["table", "ids"], ["out"], axis=0)
            return h.make_graph([node], "embedding",
                                [self._vi("table", self._f32, 2),
                                 self._vi("ids", self._i64, ids.ndim)],
                                [self._vi("out", self._f32, ids.ndim + 1)])

        sess = self._session(("gather", ids.ndim), build)
        return sess.run(None, {"table": np.asarray(weights["embeddings"], dtype=np.float32),
                               "ids": ids})[0]

    def embedding_mask(self, layer, ids):
        if layer.mask_zero:
            raise Unsupported("an ONNX Gather hands on no mask")
        return None

    def embedding_vjp(self, layer, weights, ids, upstream):
        raise Unsupported("ONNX Runtime inference sessions compute no gradients")

    # ------------------------------------------------------------------ recurrent

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        if mask is not None:
            raise Unsupported("the ONNX recurrent operators take sequence_lens, not a mask")
        if layer.unroll or layer.dropout or layer.recurrent_dropout:
            raise Unsupported("the ONNX recurrent operators have no unroll or dropout "
                              "attributes")
        x = np.asarray(x, dtype=np.float32)
        # seen with onnxruntime 1.32: std::terminate (SIGABRT) inside these kernels
        if x.shape[0] == 0 and layer.cell in ("lstm", "gru"):
            raise WouldCrash(f"ONNX Runtime {self.ort.__version__} aborts the process on an "
                             f"{_OPS[layer.cell]} with an empty batch")
        if x.shape[1] == 0 and layer.cell == "gru":
            raise WouldCrash(f"ONNX Runtime {self.ort.__version__} aborts the process on a "
                             f"GRU with zero steps")
        op = _OPS[layer.cell]
        h = self.onnx.helper
        has_init = initial_state is not None
        direction = "reverse" if layer.go_backwards else "forward"

        def build():
            names = ["X", "W", "R", "B", "", "initial_h" if has_init else ""]
            if layer.cell == "lstm":
                names.append("initial_c" if has_init else "")
            while names and names[-1] == "":
                names.pop()
            outs = ["Y", "Y_h"] + (["Y_c"] if layer.cell == "lstm" else [])
            attrs = {"hidden_size": layer.units, "direction": direction}
            if layer.cell == "gru":
                attrs["linear_before_reset"] = int(layer.reset_after)
            node = h.make_node(op, names, outs, **attrs)
            inputs = [self._vi(n, self._f32, 3) for n in ("X", "W", "R")]
            inputs.append(self._vi("B", self._f32, 2))
            if has_init:
                inputs += [self._vi(n, self._f32, 3) for n in names[5:]]
            outputs = [self._vi("Y", self._f32, 4)] + [self._vi(n, self._f32, 3)
                                                       for n in outs[1:]]
            return h.make_graph([node], op.lower(), inputs, outputs)

        key = ("rnn", layer.cell, layer.units, layer.reset_after, direction, has_init)
        sess = self._session(key, build)
        w = self.convert(layer, weights)
        feed = {"X": np.ascontiguousarray(x.transpose(1, 0, 2))}
        feed.update({k: np.asarray(v, dtype=np.float32) for k, v in w.items()})
        if has_init:
            feed["initial_h"] = np.asarray(initial_state[0], dtype=np.float32)[None]
            if layer.cell == "lstm":
                feed["initial_c"] = np.asarray(initial_state[1], dtype=np.float32)[None]
        outs = sess.run(None, feed)
        seq = outs[0][:, 0].transpose(1, 0, 2)  # (B, T, u) in input time order
        if layer.go_backwards:
            seq = seq[:, ::-1]  # Keras returns the sequence in processing order
        states = [o[0] for o in outs[1:]]
        first = seq if layer.return_sequences else states[0]
        return [first] + (states if layer.return_state else [])

    def convert(self, layer, weights) -> dict:
        """Keras-layout weights -> the W, R, B inputs (see conformance.layouts)."""
        return layouts.keras_to_onnx(layer.cell, weights, reset_after=layer.reset_after)

    def rnn_vjp(self, layer, weights, x, upstream, *, initial_state=None, mask=None):
        raise Unsupported("ONNX Runtime inference sessions compute no gradients")

    def initial_weights(self, layer, input_dim, seed):
        raise Unsupported("an ONNX graph has no default initialisation: its weights are "
                          "always given")
