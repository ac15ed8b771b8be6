"""ONNX graphs built with ``onnx.helper`` and run by ONNX Runtime.

One small graph per operation and configuration (``OneHot``, ``MatMul`` (+ ``Add``),
``Gather``, ``RNN``, ``LSTM``, ``GRU``); weights are graph inputs, so a session is built
once per configuration and fed new weights for each example.  Keras-layout weights are
converted with :func:`conformance.layouts.keras_to_onnx` (gate order i o f c for LSTM,
``linear_before_reset`` for the GRU reset convention).  Inference only: no gradients.

Keras masks become the operators' ``sequence_lens`` (right padding only; ONNX writes zeros
into ``Y`` past each length, where Keras repeats the last output); a stateful layer is the
final states handed on by hand; float16 and float64 layers use those tensor types where
ONNX Runtime has kernels for them; a saved model stores the weights as initializers.
"""

from __future__ import annotations

import platform

import numpy as np

from .. import layouts
from ..cases import DenseLayer, EmbeddingLayer, RNNLayer
from . import Implementation, Unsupported, WouldCrash, carry_state, right_padded_lengths

OPSET = 21
IR_VERSION = 10
_OPS = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
_ELEM = {"float32": "FLOAT", "float16": "FLOAT16", "float64": "DOUBLE"}


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

    def _dense_graph(self, layer, rank, initializers=None):
        h = self.onnx.helper
        stored = initializers or {}
        nodes = [h.make_node("MatMul", ["x", "kernel"], ["xk" if layer.use_bias else "out"])]
        inputs = [self._vi("x", self._f32, rank)]
        if "kernel" not in stored:
            inputs.append(self._vi("kernel", self._f32, 2))
        if layer.use_bias:
            nodes.append(h.make_node("Add", ["xk", "bias"], ["out"]))
            if "bias" not in stored:
                inputs.append(self._vi("bias", self._f32, 1))
        init = [self.onnx.numpy_helper.from_array(v, n) for n, v in stored.items()]
        return h.make_graph(nodes, "dense", inputs, [self._vi("out", self._f32, rank)],
                            initializer=init)

    def dense(self, layer: DenseLayer, weights, x):
        x = np.asarray(x, dtype=np.float32)
        feed = {"x": x, "kernel": np.asarray(weights["kernel"], dtype=np.float32)}
        if layer.use_bias:
            feed["bias"] = np.asarray(weights["bias"], dtype=np.float32)
        sess = self._session(("dense", layer.use_bias, x.ndim),
                             lambda: self._dense_graph(layer, x.ndim))
        return sess.run(None, feed)[0]

    def dense_vjp(self, layer, weights, x, upstream):
        raise Unsupported("ONNX Runtime inference sessions compute no gradients")

    # ------------------------------------------------------------------ embedding

    def _embedding_graph(self, rank, initializers=None):
        h = self.onnx.helper
        stored = initializers or {}
        node = h.make_node("Gather", ["table", "ids"], ["out"], axis=0)
        inputs = ([] if "table" in stored else [self._vi("table", self._f32, 2)])
        inputs.append(self._vi("ids", self._i64, rank))
        init = [self.onnx.numpy_helper.from_array(v, n) for n, v in stored.items()]
        return h.make_graph([node], "embedding", inputs,
                            [self._vi("out", self._f32, rank + 1)], initializer=init)

    def embedding(self, layer: EmbeddingLayer, weights, ids):
        ids = np.asarray(ids, dtype=np.int64)
        sess = self._session(("gather", ids.ndim), lambda: self._embedding_graph(ids.ndim))
        return sess.run(None, {"table": np.asarray(weights["embeddings"], dtype=np.float32),
                               "ids": ids})[0]

    def embedding_mask(self, layer, ids):
        if layer.mask_zero:
            raise Unsupported("an ONNX Gather hands on no mask")
        return None

    def embedding_vjp(self, layer, weights, ids, upstream):
        raise Unsupported("ONNX Runtime inference sessions compute no gradients")

    # ------------------------------------------------------------------ recurrent

    def _elem(self, layer):
        """The ONNX element type and NumPy dtype of a layer's dtype policy."""
        name = layer.dtype or "float32"
        if name not in _ELEM:
            raise Unsupported(f"ONNX tensors have no {name} type usable by the recurrent "
                              f"operators (T is float16, float or double)")
        return getattr(self.onnx.TensorProto, _ELEM[name]), np.dtype(name)

    def _rnn_graph(self, layer, has_init, has_lens, elem, initializers=None):
        """The graph of one recurrent operator; with ``initializers`` (name -> array) the
        weights are stored in the graph instead of fed (what a saved model holds)."""
        h = self.onnx.helper
        direction = "reverse" if layer.go_backwards else "forward"
        names = ["X", "W", "R", "B", "sequence_lens" if has_lens else "",
                 "initial_h" if has_init else ""]
        if layer.cell == "lstm":
            names.append("initial_c" if has_init else "")
        while names and names[-1] == "":
            names.pop()
        outs = ["Y", "Y_h"] + (["Y_c"] if layer.cell == "lstm" else [])
        attrs = {"hidden_size": layer.units, "direction": direction}
        if layer.cell == "gru":
            attrs["linear_before_reset"] = int(layer.reset_after)
        node = h.make_node(_OPS[layer.cell], names, outs, **attrs)
        fed = [n for n in names if n and not (initializers and n in initializers)]
        inputs = [h.make_tensor_value_info(n, self.onnx.TensorProto.INT32, ["batch"])
                  if n == "sequence_lens" else self._vi(n, elem, 2 if n == "B" else 3)
                  for n in fed]
        outputs = [self._vi("Y", elem, 4)] + [self._vi(n, elem, 3) for n in outs[1:]]
        init = [self.onnx.numpy_helper.from_array(v, n)
                for n, v in (initializers or {}).items()]
        return h.make_graph([node], _OPS[layer.cell].lower(), inputs, outputs,
                            initializer=init)

    def _rnn_feed(self, layer, weights, x, initial_state, lengths, dtype):
        feed = {"X": np.ascontiguousarray(np.asarray(x, dtype=dtype).transpose(1, 0, 2))}
        feed.update({k: np.asarray(v, dtype=dtype)
                     for k, v in self.convert(layer, weights).items()})
        if lengths is not None:
            feed["sequence_lens"] = np.asarray(lengths, dtype=np.int32)
        if initial_state is not None:
            feed["initial_h"] = np.asarray(initial_state[0], dtype=dtype)[None]
            if layer.cell == "lstm":
                feed["initial_c"] = np.asarray(initial_state[1], dtype=dtype)[None]
        return feed

    @staticmethod
    def _rnn_outputs(layer, outs):
        seq = outs[0][:, 0].transpose(1, 0, 2)  # (B, T, u) in input time order
        if layer.go_backwards:
            seq = seq[:, ::-1]  # Keras returns the sequence in processing order
        states = [o[0] for o in outs[1:]]
        first = seq if layer.return_sequences else states[0]
        return [first] + (states if layer.return_state else [])

    def _check_rnn(self, layer, x):
        if layer.unroll or layer.dropout or layer.recurrent_dropout:
            raise Unsupported("the ONNX recurrent operators have no unroll or dropout "
                              "attributes")
        # seen with onnxruntime 1.32: std::terminate (SIGABRT) inside these kernels
        if x.shape[0] == 0 and layer.cell in ("lstm", "gru"):
            raise WouldCrash(f"ONNX Runtime {self.ort.__version__} aborts the process on an "
                             f"{_OPS[layer.cell]} with an empty batch")
        if x.shape[1] == 0 and layer.cell == "gru":
            raise WouldCrash(f"ONNX Runtime {self.ort.__version__} aborts the process on a "
                             f"GRU with zero steps")

    def rnn(self, layer, weights, x, *, initial_state=None, mask=None):
        """Keras masks become ``sequence_lens`` (right padding only)."""
        lengths = right_padded_lengths(mask, "the ONNX recurrent operators' sequence_lens")
        elem, dtype = self._elem(layer)
        x = np.asarray(x, dtype=dtype)
        self._check_rnn(layer, x)
        has_init = initial_state is not None
        key = ("rnn", layer.cell, layer.units, layer.reset_after, layer.go_backwards,
               has_init, lengths is not None, elem)
        sess = self._session(key, lambda: self._rnn_graph(layer, has_init,
                                                          lengths is not None, elem))
        feed = self._rnn_feed(layer, weights, x, initial_state, lengths, dtype)
        return self._rnn_outputs(layer, self._run_typed(layer, sess, feed))

    def _run_typed(self, layer, sess, feed):
        """Run a recurrent session; a kernel that exists but refuses the layer's dtype at
        run time (seen: "LSTM operator does not support double yet") is Unsupported."""
        try:
            return sess.run(None, feed)
        except Exception as exc:
            if layer.dtype is not None and "does not support" in str(exc):
                raise Unsupported(f"ONNX Runtime {self.ort.__version__}: "
                                  f"{str(exc).split('Status Message:')[-1].strip()[:200]}"
                                  ) from exc
            raise

    def rnn_stateful(self, layer, weights, calls):
        return carry_state(self, layer, weights, calls)

    def _session(self, key, build):
        sess = self._sessions.get(key)
        if sess is None:
            sess = self._new_session(self._model(build()).SerializeToString())
            self._sessions[key] = sess
        return sess

    def _model(self, graph):
        model = self.onnx.helper.make_model(
            graph, opset_imports=[self.onnx.helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        self.onnx.checker.check_model(model)
        return model

    def _new_session(self, model):
        """A session on serialized model bytes or a file path; a kernel ONNX Runtime lacks
        (a type its CPU provider does not implement) becomes Unsupported."""
        opts = self.ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            return self.ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own NotImplemented class
            if "NOT_IMPLEMENTED" in str(exc) or "Could not find an implementation" in str(exc):
                raise Unsupported(f"ONNX Runtime {self.ort.__version__} has no CPU kernel for "
                                  f"this graph: {str(exc).splitlines()[0][:200]}") from exc
            raise

    def roundtrip_modes(self):
        return ("onnx file",)

    def roundtrip(self, via, layer, weights, inputs):
        """The layer's graph with its weights stored as initializers, written to an
        ``.onnx`` file, read back by a new session and run on ``inputs``."""
        import os
        import tempfile

        if via != "onnx file":
            raise Unsupported(f"onnxruntime has no roundtrip mode {via!r}")
        if isinstance(layer, EmbeddingLayer):
            graph = self._embedding_graph(np.ndim(inputs), {
                "table": np.asarray(weights["embeddings"], dtype=np.float32)})
            feed = {"ids": np.asarray(inputs, dtype=np.int64)}
            finish = lambda outs: outs[0]  # noqa: E731
        elif isinstance(layer, DenseLayer):
            stored = {"kernel": np.asarray(weights["kernel"], dtype=np.float32)}
            if layer.use_bias:
                stored["bias"] = np.asarray(weights["bias"], dtype=np.float32)
            graph = self._dense_graph(layer, np.ndim(inputs), stored)
            feed = {"x": np.asarray(inputs, dtype=np.float32)}
            finish = lambda outs: outs[0]  # noqa: E731
        else:
            elem, dtype = self._elem(layer)
            x = np.asarray(inputs, dtype=dtype)
            self._check_rnn(layer, x)
            feed = self._rnn_feed(layer, weights, x, None, None, dtype)
            stored = {k: feed.pop(k) for k in ("W", "R", "B")}
            graph = self._rnn_graph(layer, False, False, elem, initializers=stored)
            finish = lambda outs: self._rnn_outputs(layer, outs)  # noqa: E731
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "layer.onnx")
            self.onnx.save(self._model(graph), path)
            sess = self._new_session(path)
        if isinstance(layer, RNNLayer):
            return finish(self._run_typed(layer, sess, feed))
        return finish(sess.run(None, feed))

    def convert(self, layer, weights) -> dict:
        """Keras-layout weights -> the W, R, B inputs (see conformance.layouts)."""
        return layouts.keras_to_onnx(layer.cell, weights, reset_after=layer.reset_after)

    def rnn_vjp(self, layer, weights, x, upstream, *, initial_state=None, mask=None):
        raise Unsupported("ONNX Runtime inference sessions compute no gradients")

    def initial_weights(self, layer, input_dim, seed):
        raise Unsupported("an ONNX graph has no default initialisation: its weights are "
                          "always given")
