"""Golden recordings: what an implementation answers on a fixed set of cases, kept in a file,
and the comparison of two such files (claim ``version.golden``).

Cases
-----
:data:`CASES` is a fixed list of small calls through the implementation protocol, each with
explicit weights: one-hot encodings (out-of-range ids included), cosine similarity, Dense on
one-hot input, Embedding lookups (ids past the table and negative ids included), masks, the
gradients of Embedding and Dense, and SimpleRNN, LSTM and GRU (both ``reset_after``
conventions) forward and backward, with ``return_sequences``, ``return_state``,
``go_backwards``, ``initial_state``, masks (right-padded, left-padded, fully masked rows),
``unroll``, dropout outside training, stateful calls, every compiled call path and every
way of rebuilding a layer the implementation offers, float64/float16/bfloat16 layers and
empty input.  Each case has a stable id ``<claim id>/<n>`` (e.g. ``lstm.recurrence/0``)
and belongs to one claim; ``tests`` names the spec tests it mirrors.  Its inputs are not
stored: they are drawn again from ``numpy.random.default_rng(seed)`` (the seed is the CRC-32
of the case id), and a hash of them (with the layer configuration) is stored so that a diff
notices when the generator itself changed (this module's case definitions, or NumPy's
random streams, which are not promised stable forever).  Default (randomly initialised)
weights are never recorded: they differ between versions by random generator, not by
behaviour.  Sizes stay small (batch <= 3, steps <= 6, units <= 5), so that a recording of a
float32 implementation is about 55 KB.

Recording format (JSON, ``format: "conformance-golden"``, ``format_version: 1``)
-------------------------------------------------------------------------------
Top level: ``implementation`` (the name), ``versions`` (what ``impl.versions()`` says),
``python``, ``numpy``, ``packages`` (the versions of the installed distributions among
:data:`PACKAGES`: TensorFlow, Keras, tf-keras, torch, JAX, Flax, ONNX Runtime...),
``created`` (UTC, ISO 8601) and ``cases``, an object keyed by case id.  Each case holds
``claim``, ``what`` (a few words on the case), ``seed``, ``inputs`` (``sha256:`` and 16 hex
digits), ``depth`` (the depth of :mod:`conformance.tolerances` its values are compared with;
0 means exact) and ``result``, one of

* ``"values"`` with ``outputs``: a list of ``{"name", "shape", "dtype", "data"}``, where
  ``data`` is the base64 text of the zlib-compressed little-endian bytes of the array at
  its own dtype (bfloat16: its 16-bit patterns); an output the implementation answered with
  ``None`` (e.g. no gradient path) is ``{"name", "none": true}``;
* ``"error"`` with ``error``: ``{"type": exception class name, "message": its first
  line}``, less terminal colours, Keras's "Exception encountered when calling" preamble and
  TensorFlow's ``{{function_node ...}}`` prefix and ``name: <layer>_<n>/...`` suffix (any
  exception from the adapter is recorded, it never stops the recording; only the type is
  compared, a changed message is a note);
* ``"n/a"`` with ``reason``: the adapter raised ``Unsupported``.

Comparing
---------
:func:`diff` compares two recordings case by case: ``same`` (bit-identical), ``within
tolerance`` (values differ by no more than ``tolerance(dtype, depth) * (1 + |a|)`` at the
coarser of the two dtypes, or are equal but not bit-identical, e.g. float32 against the
float64 reference; the largest absolute and relative differences are reported), or
``changed``: shape, dtype, values, error behaviour (raised or not, error class), input hash,
n/a against a result, or a case (or a whole claim) on one side only.  A float32 / float64
difference of dtype is noted, not a change; any other dtype change is a change.  A change is
*explained* by an expectation-file entry of either recording's implementation, keyed by the
case's claim id (or by a spec test the case mirrors), that holds for one recording and not
the other within the version bands; or by an entry of ``conformance/expectations/changes.txt``
(key: claim id or case id; a version band there must hold for one recording and not the
other).  See :func:`_explain`.

Run as ``python -m conformance.golden --impl NAME [--out FILE]`` to record in the current
process; ``conformance record`` starts that in the process environment the implementation
needs.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import hashlib
import json
import math
import platform
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np

from . import claims as _claims
from . import expectations as _exp
from . import reference as ref
from . import tolerances as tol
from .cases import DenseLayer, EmbeddingLayer, RNNLayer
from .implementations import Unsupported
from .implementations import time_limit as _alarm

FORMAT = "conformance-golden"
FORMAT_VERSION = 1
CHANGES_FILE = _exp.HERE / "changes.txt"

SAME, WITHIN, CHANGED = "same", "within tolerance", "changed"

# --------------------------------------------------------------------------- cases


@dataclass
class Prepared:
    """One case made concrete: its generated inputs, the text of its configuration, the
    calls to make and the depth its values are compared with (0: exact)."""

    inputs: dict[str, np.ndarray]
    config: str
    run: Callable[[Any], list[tuple[str, Any]]]
    depth: int

    def input_hash(self) -> str:
        h = hashlib.sha256(self.config.encode("utf-8"))
        for name in sorted(self.inputs):
            a = np.asarray(self.inputs[name])
            a = a.astype(a.dtype.newbyteorder("<"), copy=False)
            h.update(f"|{name}|{a.dtype.str}|{a.shape}|".encode("ascii"))
            h.update(np.ascontiguousarray(a).tobytes())
        return "sha256:" + h.hexdigest()[:16]


@dataclass(frozen=True)
class GoldenCase:
    id: str
    claim: str
    what: str
    make: Callable[[np.random.Generator], Prepared] = field(repr=False, compare=False)
    tests: tuple[str, ...] = ()  # spec tests this case mirrors (expectation keys too)

    @property
    def seed(self) -> int:
        return zlib.crc32(self.id.encode("utf-8"))

    def prepare(self) -> Prepared:
        return self.make(np.random.default_rng(self.seed))


def _config(layer, extra: str = "") -> str:
    """The text of a layer configuration that enters the input hash: only the fields that
    differ from their defaults, so that a field added to the layer descriptions later does
    not change the hash of existing cases."""
    parts = [f"{f.name}={getattr(layer, f.name)!r}" for f in dataclasses.fields(layer)
             if f.default is dataclasses.MISSING or getattr(layer, f.name) != f.default]
    return f"{type(layer).__name__}({', '.join(parts)}){extra}"


def _u(rng, shape, scale=1.0) -> np.ndarray:
    """Uniform in [-scale, scale], rounded to float32 (exact for float32 implementations)."""
    return rng.uniform(-scale, scale, size=shape).astype(np.float32).astype(np.float64)


def _ids(rng, high, shape) -> np.ndarray:
    return rng.integers(0, high, size=shape).astype(np.int64)


def _rnn_weights(rng, layer: RNNLayer, features: int) -> dict:
    shapes = ref.weight_shapes(layer.cell, features, layer.units, use_bias=layer.use_bias,
                               reset_after=layer.reset_after)
    w = {"kernel": _u(rng, shapes["kernel"], 1 / math.sqrt(features)),
         "recurrent_kernel": _u(rng, shapes["recurrent_kernel"], 1 / math.sqrt(layer.units))}
    if layer.use_bias:
        w["bias"] = _u(rng, shapes["bias"], 0.5)
    return w


def _named(layer: RNNLayer, outs, prefix: str = "") -> list[tuple[str, Any]]:
    names = ["output"] + (list(ref.state_names(layer.cell)) if layer.return_state else [])
    outs = list(outs)
    if len(outs) != len(names):
        names = [f"output{k}" for k in range(len(outs))]
    return [(prefix + n, o) for n, o in zip(names, outs)]


def _grads(grads: Mapping, names: Iterable[str], n_init: int) -> list[tuple[str, Any]]:
    out = [("x", grads.get("x"))]
    init = grads.get("initial_state") if n_init else None
    for k in range(n_init):
        out.append((f"initial_state[{k}]",
                    None if init is None or len(init) <= k else init[k]))
    out += [(n, grads.get(n)) for n in names]
    return out


# Each factory below returns a GoldenCase whose make() draws the inputs from the case's rng.


def _onehot_case(cid, what, ids_fn, depth, tests=()):
    def make(rng):
        ids = ids_fn(rng)
        return Prepared({"ids": ids}, f"one_hot depth={depth}",
                        lambda impl: [("one_hot", impl.one_hot(ids.copy(), depth))], 0)
    return GoldenCase(cid, cid.split("/")[0], what, make, tuple(tests))


def _cosine_case(cid, what, n, d):
    def make(rng):
        a, b = _u(rng, (n, d)), _u(rng, (n, d))
        return Prepared({"a": a, "b": b}, "cosine_similarity",
                        lambda impl: [("similarity", impl.cosine_similarity(a.copy(), b.copy()))],
                        3 * d + 4)
    return GoldenCase(cid, cid.split("/")[0], what, make)


def _dense_onehot_case(cid, what, vocab, units, ids_shape):
    def make(rng):
        layer = DenseLayer(units, use_bias=False)
        kernel = _u(rng, (vocab, units))
        x = ref.one_hot(_ids(rng, vocab, ids_shape), vocab)
        return Prepared({"kernel": kernel, "x": x}, "dense " + _config(layer),
                        lambda impl: [("output", impl.dense(layer, {"kernel": kernel.copy()},
                                                            x.copy()))], 0)
    return GoldenCase(cid, cid.split("/")[0], what, make)


def _dense_vjp_case(cid, what, vocab, units, ids_shape):
    def make(rng):
        layer = DenseLayer(units, use_bias=False)
        kernel = _u(rng, (vocab, units))
        x = ref.one_hot(_ids(rng, vocab, ids_shape), vocab)
        up = _u(rng, tuple(ids_shape) + (units,))

        def run(impl):
            g = impl.dense_vjp(layer, {"kernel": kernel.copy()}, x.copy(), up.copy())
            return [("x", g.get("x")), ("kernel", g.get("kernel"))]
        rows = int(np.prod(ids_shape))
        return Prepared({"kernel": kernel, "x": x, "upstream": up},
                        "dense_vjp " + _config(layer), run, 2 * max(units, rows, vocab))
    return GoldenCase(cid, cid.split("/")[0], what, make)


def _embedding_case(cid, what, input_dim, output_dim, ids_fn, *, mask_zero=False,
                    with_mask=False, via_dense=False, tests=()):
    def make(rng):
        layer = EmbeddingLayer(input_dim, output_dim, mask_zero=mask_zero)
        table = _u(rng, (input_dim, output_dim))
        ids = ids_fn(rng)

        def run(impl):
            out = []
            if with_mask:
                out.append(("mask", impl.embedding_mask(layer, ids.copy())))
            out.append(("output", impl.embedding(layer, {"embeddings": table.copy()},
                                                 ids.copy())))
            if via_dense:
                oh = impl.one_hot(ids.copy(), input_dim)
                out.append(("dense(one_hot)", impl.dense(
                    DenseLayer(output_dim, use_bias=False), {"kernel": table.copy()}, oh)))
            return out
        calls = "embedding" + (" mask" if with_mask else "") + \
            (" one_hot+dense" if via_dense else "")
        return Prepared({"embeddings": table, "ids": ids}, f"{calls} {_config(layer)}", run, 0)
    return GoldenCase(cid, cid.split("/")[0], what, make, tuple(tests))


def _embedding_vjp_case(cid, what, input_dim, output_dim, ids_shape, keep):
    def make(rng):
        layer = EmbeddingLayer(input_dim, output_dim)
        table = _u(rng, (input_dim, output_dim))
        ids = _ids(rng, input_dim, ids_shape)
        up = _u(rng, tuple(ids_shape) + (output_dim,))

        def run(impl):
            g = impl.embedding_vjp(layer, {"embeddings": table.copy()}, ids.copy(), up.copy())
            return [(k, g.get(k)) for k in keep]
        return Prepared({"embeddings": table, "ids": ids, "upstream": up},
                        f"embedding_vjp {keep} {_config(layer)}", run,
                        int(np.prod(ids_shape)))
    return GoldenCase(cid, cid.split("/")[0], what, make)


def _rnn_case(cid, what, cell, *, batch=2, steps=4, features=3, units=4, init=False,
              lengths=None, mask_rows=None, vjp=False, variant=None, tests=(), **flags):
    """A recurrent case.  ``lengths`` gives a right-padded mask, ``mask_rows`` any mask
    (one list of 0/1 per sample); ``variant`` adds a second call: 'last_step'
    (return_sequences flipped), 'causal' (later steps edited), 'reversed' (time reversed),
    'alone' (sample 1 alone)."""

    def make(rng):
        layer = RNNLayer(cell, units, **flags)
        w = _rnn_weights(rng, layer, features)
        x = _u(rng, (batch, steps, features))
        inputs = dict(w, x=x)
        states = None
        if init:
            states = tuple(_u(rng, (batch, units)) for _ in range(layer.n_states))
            inputs.update({f"initial_state[{k}]": s for k, s in enumerate(states)})
        mask = None
        if lengths is not None:
            mask = np.arange(steps)[None, :] < np.asarray(lengths)[:, None]
        elif mask_rows is not None:
            mask = np.asarray(mask_rows, dtype=bool).reshape(batch, steps)
        if mask is not None:
            inputs["mask"] = mask
        depth = tol.rnn_depth(steps, features, units)
        wnames = list(w)

        def call(impl, lyr, xx, st=states, m=mask):
            return impl.rnn(lyr, {k: v.copy() for k, v in w.items()}, xx.copy(),
                            initial_state=None if st is None else [s.copy() for s in st],
                            mask=None if m is None else m.copy())

        if vjp:
            n_out = 1 + (layer.n_states if layer.return_state else 0)
            seq_shape = (batch, steps, units) if layer.return_sequences else (batch, units)
            ups = [_u(rng, seq_shape)] + [_u(rng, (batch, units)) for _ in range(n_out - 1)]
            inputs.update({f"upstream[{k}]": u for k, u in enumerate(ups)})

            def run(impl):
                g = impl.rnn_vjp(layer, {k: v.copy() for k, v in w.items()}, x.copy(),
                                 [u.copy() for u in ups],
                                 initial_state=None if states is None
                                 else [s.copy() for s in states],
                                 mask=None if mask is None else mask.copy())
                return _grads(g, wnames, 0 if states is None else len(states))
            return Prepared(inputs, "rnn_vjp " + _config(layer), run, 2 * depth)

        if variant == "causal":
            x2 = x.copy()
            x2[:, steps // 2:] = _u(rng, x2[:, steps // 2:].shape)
            inputs["x_edited"] = x2
        elif variant == "reversed":
            x2 = x[:, ::-1].copy()
        elif variant == "alone":
            x2 = x[1:2].copy()

        def run(impl):
            out = _named(layer, call(impl, layer, x))
            if variant == "last_step":
                other = layer.replace(return_sequences=not layer.return_sequences)
                out += _named(other, call(impl, other, x),
                              f"return_sequences={other.return_sequences}: ")
            elif variant == "causal":
                out += _named(layer, call(impl, layer, x2), "later steps edited: ")
            elif variant == "reversed":
                out += _named(layer, call(impl, layer, x2), "time reversed: ")
            elif variant == "alone":
                st = None if states is None else tuple(s[1:2] for s in states)
                m = None if mask is None else mask[1:2]
                out += _named(layer, call(impl, layer, x2, st, m), "sample 1 alone: ")
            return out
        extra = f" variant={variant}" if variant else ""
        return Prepared(inputs, "rnn " + _config(layer, extra), run, depth)
    return GoldenCase(cid, cid.split("/")[0], what, make, tuple(tests))


def _modes(impl, method: str, what: str) -> tuple:
    modes = tuple(getattr(impl, method, lambda: ())())
    if not modes:
        raise Unsupported(f"{getattr(impl, 'name', type(impl).__name__)} offers no {what}")
    return modes


def _rnn_calls_case(cid, what, cell, kind, *, batch=2, steps=4, features=3, units=4,
                    lengths=None, tests=(), **flags):
    """A recurrent layer called in another way than ``rnn``: ``kind`` 'stateful' (a stateful
    layer fed the first steps, the rest, a reset, the first steps again), 'compiled' (every
    compiled path the implementation offers, with a right-padded mask) or 'roundtrip'
    (every way it offers to rebuild the layer).  One output per call, prefixed with it."""

    def make(rng):
        layer = RNNLayer(cell, units, **flags)
        w = _rnn_weights(rng, layer, features)
        x = _u(rng, (batch, steps, features))
        inputs = dict(w, x=x)
        mask = None
        if lengths is not None:
            mask = np.arange(steps)[None, :] < np.asarray(lengths)[:, None]
            inputs["mask"] = mask
        depth = tol.rnn_depth(steps, features, units)
        wc = lambda: {k: v.copy() for k, v in w.items()}  # noqa: E731

        def run(impl):
            out = []
            if kind == "stateful":
                cut = steps // 2
                calls = [x[:, :cut].copy(), x[:, cut:].copy(), None, x[:, :cut].copy()]
                labels = [f"steps 0-{cut - 1}: ", f"then steps {cut}-{steps - 1}: ",
                          f"after reset, steps 0-{cut - 1}: "]
                for label, res in zip(labels, impl.rnn_stateful(layer, wc(), calls)):
                    out += _named(layer, res, label)
            elif kind == "compiled":
                for mode in _modes(impl, "compiled_modes", "compiled call path"):
                    out += _named(layer, impl.rnn_compiled(
                        mode, layer, wc(), x.copy(),
                        mask=None if mask is None else mask.copy()), f"{mode}: ")
            elif kind == "roundtrip":
                for via in _modes(impl, "roundtrip_modes", "way to rebuild a layer"):
                    res = impl.roundtrip(via, layer, wc(), x.copy())
                    out += _named(layer, res if isinstance(res, (list, tuple)) else [res],
                                  f"rebuilt via {via}: ")
            else:
                raise ValueError(f"unknown kind {kind!r}")
            return out
        return Prepared(inputs, f"rnn {kind} " + _config(layer), run, depth)
    return GoldenCase(cid, cid.split("/")[0], what, make, tuple(tests))


def _embedding_roundtrip_case(cid, what, input_dim, output_dim, ids_shape):
    def make(rng):
        layer = EmbeddingLayer(input_dim, output_dim)
        table = _u(rng, (input_dim, output_dim))
        ids = _ids(rng, input_dim, ids_shape)

        def run(impl):
            out = []
            for via in _modes(impl, "roundtrip_modes", "way to rebuild a layer"):
                res = impl.roundtrip(via, layer, {"embeddings": table.copy()}, ids.copy())
                res = list(res) if isinstance(res, (list, tuple)) else [res]
                out += [(f"rebuilt via {via}: output" + (f"{k}" if k else ""), r)
                        for k, r in enumerate(res)]
            return out
        return Prepared({"embeddings": table, "ids": ids}, "embedding roundtrip " +
                        _config(layer), run, 0)
    return GoldenCase(cid, cid.split("/")[0], what, make)


def _cases() -> list[GoldenCase]:
    c: list[GoldenCase] = []
    add = c.append
    # A: representation
    add(_onehot_case("onehot.shape/0", "ids (2, 3) over 5 words",
                     lambda r: _ids(r, 5, (2, 3)), 5, ["test_onehot_appends_vocabulary_axis"]))
    add(_onehot_case("onehot.shape/1", "a scalar id over 4 words",
                     lambda r: np.asarray(r.integers(0, 4), dtype=np.int64), 4,
                     ["test_onehot_appends_vocabulary_axis"]))
    add(_onehot_case("onehot.exactly_one/0", "a sentence of 6 ids over 7 words",
                     lambda r: _ids(r, 7, (6,)), 7,
                     ["test_onehot_of_a_sentence_marks_each_word_once"]))
    add(_onehot_case("onehot.no_similarity/0", "every word of a vocabulary of 5",
                     lambda r: np.arange(5, dtype=np.int64), 5))
    add(_onehot_case("onehot.out_of_range/0", "ids -1, 5, 7 and 2 with depth 5",
                     lambda r: np.array([-1, 5, 7, 2], dtype=np.int64), 5,
                     ["test_onehot_out_of_range_ids_encode_as_zeros"]))
    add(_cosine_case("similarity.cosine/0", "3 pairs of 4-wide vectors", 3, 4))
    # B: Dense on one-hot
    add(_dense_onehot_case("dense.onehot_selects_rows/0", "6 words, 4 units, ids (2, 3)",
                           6, 4, (2, 3)))
    # C: Embedding
    add(_embedding_case("embedding.output_shape/0", "Embedding(7, 3) on ids (2, 2, 3)", 7, 3,
                        lambda r: _ids(r, 7, (2, 2, 3))))
    add(_embedding_case("embedding.lookup/0", "Embedding(8, 4) on ids (3, 5)", 8, 4,
                        lambda r: _ids(r, 8, (3, 5))))
    add(_embedding_case("embedding.equals_onehot_dense/0",
                        "Embedding(6, 3) and Dense on one_hot, ids (2, 4)", 6, 3,
                        lambda r: _ids(r, 6, (2, 4)), via_dense=True))
    add(_embedding_case("embedding.same_word_same_vector/0",
                        "Embedding(3, 4) on ids (3, 4): words repeat", 3, 4,
                        lambda r: _ids(r, 3, (3, 4))))
    add(_embedding_vjp_case("embedding.weight_gradient/0",
                            "table gradient, Embedding(5, 3), ids (2, 4)", 5, 3, (2, 4),
                            ["embeddings"]))
    add(_dense_vjp_case("embedding.weight_gradient/1",
                        "the one-hot Dense path: dense_vjp, 5 words, 3 units, ids (2, 4)",
                        5, 3, (2, 4)))
    add(_embedding_vjp_case("embedding.no_input_gradient/0",
                            "gradient reaching the ids, Embedding(5, 3), ids (2, 3)", 5, 3,
                            (2, 3), ["ids"]))
    add(_embedding_case("embedding.invalid_ids/0", "Embedding(4, 3) on id 4 (= input_dim)",
                        4, 3, lambda r: np.array([[1, 4]], dtype=np.int64),
                        tests=["test_embedding_rejects_ids_past_the_table"]))
    add(_embedding_case("embedding.invalid_ids/1", "Embedding(4, 3) on id -1", 4, 3,
                        lambda r: np.array([[1, -1]], dtype=np.int64),
                        tests=["test_embedding_rejects_negative_ids"]))
    add(_embedding_case("embedding.mask_zero/0", "mask_zero=True: mask and values, ids (2, 4)",
                        5, 3, lambda r: np.array([[0, 2, 0, 4], [1, 0, 3, 0]], dtype=np.int64),
                        mask_zero=True, with_mask=True,
                        tests=["test_mask_zero_masks_id_zero_and_keeps_values"]))
    add(_embedding_case("embedding.mask_zero/1", "mask_zero=False: no mask, ids (2, 3)",
                        5, 3, lambda r: _ids(r, 5, (2, 3)), with_mask=True,
                        tests=["test_no_mask_without_mask_zero"]))
    # D: recurrent layers
    add(_rnn_case("rnn.return_sequences_rank/0", "SimpleRNN(4), return_sequences",
                  "simple_rnn", return_sequences=True))
    add(_rnn_case("rnn.last_step/0", "SimpleRNN(3): last output and whole sequence",
                  "simple_rnn", units=3, steps=5, variant="last_step"))
    add(_rnn_case("rnn.recurrence/0", "SimpleRNN(4), 3 x 5 x 3, sequences", "simple_rnn",
                  batch=3, steps=5, return_sequences=True))
    add(_rnn_case("rnn.recurrence/1", "SimpleRNN(5), no bias, 2 x 6 x 2", "simple_rnn",
                  steps=6, features=2, units=5, use_bias=False))
    add(_rnn_case("rnn.causal/0", "SimpleRNN(3), sequences, later half edited",
                  "simple_rnn", units=3, steps=6, return_sequences=True, variant="causal"))
    add(_rnn_case("rnn.order_matters/0", "SimpleRNN(3) on x and on x reversed in time",
                  "simple_rnn", units=3, steps=5, variant="reversed"))
    add(_rnn_case("rnn.vanishing_gradient_bound/0", "SimpleRNN(3): gradient of h_T",
                  "simple_rnn", batch=1, steps=6, units=3, vjp=True))
    # E: LSTM
    add(_rnn_case("lstm.recurrence/0", "LSTM(4), 3 x 5 x 3, sequences", "lstm", batch=3,
                  steps=5, return_sequences=True))
    add(_rnn_case("lstm.recurrence/1", "LSTM(3), no bias, last output", "lstm", units=3,
                  use_bias=False))
    add(_rnn_case("lstm.return_state/0", "LSTM(4), return_state: output, h, c", "lstm",
                  return_state=True))
    # F: GRU
    add(_rnn_case("gru.recurrence/0", "GRU(4), reset_after=True, sequences", "gru",
                  batch=3, steps=5, return_sequences=True))
    add(_rnn_case("gru.recurrence/1", "GRU(4), reset_after=False, sequences", "gru",
                  batch=3, steps=5, return_sequences=True, reset_after=False))
    add(_rnn_case("gru.recurrence/2", "GRU(3), reset_after=True, no bias", "gru", units=3,
                  use_bias=False))
    # G: options every recurrent layer shares
    cells = [("simple_rnn", {}, "SimpleRNN"), ("lstm", {}, "LSTM"), ("gru", {}, "GRU"),
             ("gru", {"reset_after": False}, "GRU(reset_after=False)")]
    for k, (cell, extra, label) in enumerate(cells):
        add(_rnn_case(f"rnn.return_state/{k}", f"{label}, return_state, sequences", cell,
                      return_state=True, return_sequences=True, **extra))
    for k, (cell, extra, label) in enumerate(cells):
        add(_rnn_case(f"rnn.go_backwards/{k}", f"{label}, go_backwards, sequences", cell,
                      go_backwards=True, return_sequences=True, **extra))
    for k, (cell, extra, label) in enumerate(cells):
        add(_rnn_case(f"rnn.initial_state/{k}", f"{label}, initial_state, return_state", cell,
                      init=True, return_state=True, **extra))
    for k, (cell, extra, label) in enumerate(cells):
        add(_rnn_case(f"rnn.mask/{k}", f"{label}, right-padded lengths 5, 2, 3", cell, batch=3,
                      steps=5, lengths=[5, 2, 3], return_sequences=True, return_state=True,
                      **extra))
    for k, (cell, extra, label) in enumerate(cells):
        add(_rnn_case(f"rnn.unroll/{k}", f"{label}, unroll=True, sequences", cell,
                      unroll=True, return_sequences=True, **extra))
    add(_rnn_case("rnn.dropout_inference/0", "LSTM(4), dropout=0.5, outside training", "lstm",
                  dropout=0.5, return_sequences=True,
                  tests=["test_dropout_changes_nothing_outside_training"]))
    add(_rnn_case("rnn.dropout_inference/1", "LSTM(4), recurrent_dropout=0.5, outside training",
                  "lstm", recurrent_dropout=0.5, return_sequences=True,
                  tests=["test_recurrent_dropout_changes_nothing_outside_training"]))
    add(_rnn_case("rnn.dropout_inference/2", "GRU(4), recurrent_dropout=0.5, outside training",
                  "gru", recurrent_dropout=0.5, return_sequences=True,
                  tests=["test_recurrent_dropout_changes_nothing_outside_training"]))
    add(_rnn_case("rnn.batch_independence/0", "LSTM(3), batch of 3 and sample 1 alone", "lstm",
                  batch=3, units=3, return_sequences=True, variant="alone"))
    for k, (cell, extra, label) in enumerate(cells):
        add(_rnn_case(f"rnn.gradients/{k}", f"{label}: gradients, last output", cell, vjp=True,
                      **extra))
    add(_rnn_case("rnn.gradients/4", "LSTM: gradients with initial_state, return_state, "
                  "sequences", "lstm", init=True, return_state=True, return_sequences=True,
                  vjp=True))
    add(_rnn_case("rnn.gradients/5", "GRU: gradients with a right-padded mask", "gru",
                  batch=3, steps=5, lengths=[5, 2, 3], return_sequences=True, vjp=True))
    add(_rnn_case("rnn.gradients/6", "SimpleRNN: gradients with go_backwards", "simple_rnn",
                  go_backwards=True, return_sequences=True, vjp=True))
    add(_rnn_case("rnn.mask/4", "LSTM(3) from an initial state: left-padded, fully masked "
                  "and unmasked rows", "lstm", batch=3, steps=5, units=3, init=True,
                  mask_rows=[[0, 0, 1, 1, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]],
                  return_sequences=True, return_state=True,
                  tests=["test_masked_steps_before_the_first_output_zeros"]))
    add(_rnn_case("rnn.mask/5", "GRU, go_backwards with a right-padded mask", "gru", batch=3,
                  steps=5, lengths=[5, 2, 3], go_backwards=True, return_sequences=True,
                  return_state=True))
    add(_rnn_calls_case("rnn.stateful/0", "stateful LSTM(4): two halves, reset, first half",
                        "lstm", "stateful", steps=6, return_sequences=True,
                        return_state=True, tests=["test_stateful_layer_carries_state_and_resets"]))
    add(_rnn_calls_case("rnn.stateful/1", "stateful GRU(3): two halves, reset, first half",
                        "gru", "stateful", steps=4, units=3, return_sequences=True,
                        tests=["test_stateful_layer_carries_state_and_resets"]))
    add(_rnn_calls_case("rnn.compiled_equals_eager/0", "LSTM(4) through every compiled path, "
                        "right-padded mask", "lstm", "compiled", batch=3,
                        lengths=[4, 1, 3], return_sequences=True, return_state=True))
    add(_rnn_calls_case("rnn.compiled_equals_eager/1", "GRU(4, reset_after=False) through "
                        "every compiled path", "gru", "compiled", reset_after=False))
    add(_rnn_case("rnn.dtype/0", "GRU(4), dtype float64, sequences", "gru",
                  dtype="float64", return_sequences=True, tests=["test_float64_layer"]))
    add(_rnn_case("rnn.dtype/1", "LSTM(4), dtype float16, return_state", "lstm",
                  dtype="float16", return_state=True, tests=["test_float16_layer"]))
    add(_rnn_case("rnn.dtype/2", "SimpleRNN(4), dtype bfloat16, sequences", "simple_rnn",
                  dtype="bfloat16", return_sequences=True, tests=["test_bfloat16_layer"]))
    add(_rnn_calls_case("layer.config_roundtrip/0", "LSTM(3), go_backwards, rebuilt every "
                        "way offered", "lstm", "roundtrip", units=3,
                        go_backwards=True, return_sequences=True))
    add(_embedding_roundtrip_case("layer.config_roundtrip/1", "Embedding(6, 3) rebuilt every "
                                  "way offered, ids (2, 4)", 6, 3, (2, 4)))
    add(_rnn_case("rnn.empty_input/0", "LSTM(3), return_state, zero steps", "lstm", steps=0,
                  units=3, return_state=True))
    add(_rnn_case("rnn.empty_input/1", "GRU(3), return_state, empty batch", "gru", batch=0,
                  units=3, return_state=True))
    ids = [case.id for case in c]
    assert len(ids) == len(set(ids)), "golden case ids must be unique"
    assert all(case.claim in _claims.CLAIMS for case in c)
    return c


CASES: list[GoldenCase] = _cases()
BY_ID: dict[str, GoldenCase] = {case.id: case for case in CASES}

# --------------------------------------------------------------------------- encoding


def _dtype_facts(name: str) -> tuple[str, int]:
    """(kind, itemsize) of a recorded dtype name; bfloat16 is known without ml_dtypes."""
    if name == "bfloat16":
        return "f", 2
    dt = np.dtype(name)
    return dt.kind, dt.itemsize


def encode_array(a) -> dict:
    """``{"shape", "dtype", "data"}``: base64 of the zlib-compressed little-endian bytes.
    bfloat16 (an ml_dtypes type) is stored as its 16-bit patterns."""
    a = np.asarray(a)
    if a.dtype.name == "bfloat16":
        bits = a.view(np.uint16)
        le = np.ascontiguousarray(bits.astype("<u2", copy=False))
    elif a.dtype.kind not in "biufc":
        raise TypeError(f"cannot record an array of dtype {a.dtype}")
    else:
        le = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False))
    data = base64.b64encode(zlib.compress(le.tobytes(), 9)).decode("ascii")
    return {"shape": list(a.shape), "dtype": a.dtype.name, "data": data}


def _raw(entry: Mapping) -> bytes:
    return zlib.decompress(base64.b64decode(entry["data"], validate=True))


def decode_array(entry: Mapping) -> np.ndarray:
    """The array at its own dtype (bfloat16 needs ml_dtypes; :func:`as_float64` does not)."""
    raw = _raw(entry)
    if entry["dtype"] == "bfloat16":
        import ml_dtypes

        bits = np.frombuffer(raw, dtype="<u2").reshape(entry["shape"])
        return bits.astype(np.uint16).view(ml_dtypes.bfloat16)
    dtype = np.dtype(entry["dtype"])
    a = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(entry["shape"])
    return a.astype(dtype)  # native byte order, writable copy


def as_float64(entry: Mapping) -> np.ndarray:
    """The recorded values as float64 (exact for every recorded float dtype)."""
    if entry["dtype"] == "bfloat16":
        bits = np.frombuffer(_raw(entry), dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).astype(np.float64).reshape(entry["shape"])
    return decode_array(entry).astype(np.float64)


# --------------------------------------------------------------------------- recording


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FUNCTION_NODE = re.compile(r"^\{\{function_node [^}]*\}\}\s*")
# TensorFlow ends eager op errors with "[Op:Name] name: <layer>_<n>/<op>/": a name that
# depends on how many layers the process built before
_OP_NAME = re.compile(r"(\[Op:[^\]]*\])\s*name:.*$")


def _first_line(exc: BaseException) -> str:
    """The first informative line of an exception's message: without terminal colours,
    Keras's "Exception encountered when calling ..." preamble and TensorFlow's
    ``{{function_node ...}}`` prefix (which holds run-dependent names)."""
    try:
        text = str(exc)
    except Exception as inner:  # an exception whose message itself fails
        text = f"(its message could not be read: {type(inner).__name__})"
    lines = [_OP_NAME.sub(r"\1", _FUNCTION_NODE.sub("", _ANSI.sub("", ln))).strip()
             for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if len(lines) > 1 and lines[0].startswith("Exception encountered when calling"):
        lines = lines[1:]
    return lines[0][:300] if lines else ""


class CaseTimeout(Exception):
    """A golden case ran past the time limit of ``conformance record``."""


def _case_timeout(seconds: float):
    raise CaseTimeout(f"the case ran past the limit of {seconds:g} s (--call-timeout)")


def record_case(impl, case: GoldenCase, limit: float = 0.0) -> dict:
    prep = case.prepare()
    entry = {"claim": case.claim, "what": case.what, "seed": case.seed,
             "inputs": prep.input_hash(), "depth": prep.depth}
    try:
        with _alarm(limit, lambda: _case_timeout(limit)):
            outs = prep.run(impl)
        encoded = []
        for name, value in outs:
            if value is None:
                encoded.append({"name": name, "none": True})
            else:
                encoded.append({"name": name, **encode_array(value)})
    except Unsupported as exc:
        entry.update(result="n/a", reason=exc.reason)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # an adapter's failure (even SystemExit) is a result,
        # never the end of a recording
        entry.update(result="error",
                     error={"type": type(exc).__name__, "message": _first_line(exc)})
    else:
        entry.update(result="values", outputs=encoded)
    return entry


def _versions(impl) -> dict:
    try:
        return {str(k): str(v) for k, v in dict(impl.versions()).items()}
    except Exception as exc:
        return {"error": f"versions() raised {type(exc).__name__}: {_first_line(exc)}"}


# distributions whose versions a recording notes when they are installed (found without
# importing them)
PACKAGES = ("numpy", "tensorflow", "tensorflow-cpu", "keras", "tf-keras", "ml-dtypes", "h5py",
            "torch", "jax", "jaxlib", "flax", "onnx", "onnxruntime", "scipy")


def installed_packages() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in PACKAGES:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


def record(impl, cases: Optional[Iterable[GoldenCase]] = None, *,
           time_limit: float = 0.0) -> dict:
    """Run every golden case on ``impl`` and return the recording (a JSON-ready dict).
    ``time_limit``: seconds a case may take before it is recorded as an error."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "implementation": getattr(impl, "name", type(impl).__name__),
        "versions": _versions(impl),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "packages": installed_packages(),
        "created": datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="seconds").replace("+00:00", "Z"),
        "cases": {case.id: record_case(impl, case, time_limit)
                  for case in (cases or CASES)},
    }


def dumps(recording: Mapping) -> str:
    return json.dumps(recording, indent=1, ensure_ascii=False) + "\n"


def write(recording: Mapping, path) -> Path:
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(recording), encoding="utf-8")
    return path


class NotARecording(ValueError):
    pass


def _check_output(cid: str, o) -> None:
    if not isinstance(o, dict) or not isinstance(o.get("name"), str):
        raise NotARecording(f"case {cid}: an output without a name")
    if o.get("none"):
        return
    where = f"case {cid}, output {o['name']!r}"
    try:
        kind, size = _dtype_facts(o["dtype"])
        shape = [int(n) for n in o["shape"]]
        raw = _raw(o)
    except KeyError as exc:
        raise NotARecording(f"{where}: no {exc.args[0]!r}") from None
    except (TypeError, ValueError, zlib.error) as exc:  # binascii.Error is a ValueError
        raise NotARecording(f"{where}: unreadable data ({type(exc).__name__}: {exc})") from None
    if len(raw) != size * math.prod(shape):
        raise NotARecording(f"{where}: {len(raw)} bytes of data for shape {tuple(shape)} of "
                            f"{o['dtype']}")


def validate(data) -> dict:
    """Check the structure of a recording and that every stored array decodes; raise
    NotARecording saying what is wrong and where."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NotARecording("not a golden recording (no \"format\": \"conformance-golden\")")
    if data.get("format_version") != FORMAT_VERSION:
        raise NotARecording(f"format version {data.get('format_version')!r} is not "
                            f"{FORMAT_VERSION}")
    if not isinstance(data.get("cases"), dict):
        raise NotARecording("the recording has no cases")
    for key in ("versions", "packages"):
        value = data.get(key)
        if value is not None and (not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
            raise NotARecording(f"\"{key}\" is not an object of names and versions")
    for cid, case in data["cases"].items():
        if not isinstance(case, dict):
            raise NotARecording(f"case {cid} is not an object")
        depth = case.get("depth", 0)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise NotARecording(f"case {cid}: depth {depth!r} is not a count")
        result = case.get("result")
        if result == "values":
            if not isinstance(case.get("outputs"), list):
                raise NotARecording(f"case {cid}: result \"values\" without \"outputs\"")
            for o in case["outputs"]:
                _check_output(cid, o)
        elif result == "error":
            err = case.get("error")
            if not isinstance(err, dict) or not isinstance(err.get("type"), str):
                raise NotARecording(f"case {cid}: result \"error\" without an error type")
            if not isinstance(err.get("message", ""), str):
                raise NotARecording(f"case {cid}: an error message that is not text")
        elif result != "n/a":
            raise NotARecording(f"case {cid}: unknown result {result!r}")
    return data


def read(path) -> dict:
    """Load a recording; OSError when unreadable, NotARecording when it is not one."""
    raw = Path(path).read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise NotARecording(f"not UTF-8 text: {exc}") from None
    except ValueError as exc:
        raise NotARecording(f"not JSON: {exc}") from None
    return validate(data)


_SKIP_IN_NAME = {"python", "backend", "error"}


def default_path(recording: Mapping, folder="goldens") -> Path:
    """``goldens/<impl>-<key versions>.json``, e.g. ``keras-tensorflow-keras3.15.1-
    tensorflow2.21.0.json`` (python and the backend name are left out)."""
    parts = [str(recording["implementation"])]
    for k, v in recording.get("versions", {}).items():
        if k not in _SKIP_IN_NAME:
            parts.append(f"{k}{v}")
    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", "-".join(parts))[:150]
    return Path(folder) / f"{name}.json"


# --------------------------------------------------------------------------- diff


@dataclass
class CaseDiff:
    case: str
    claim: str
    status: str  # SAME, WITHIN or CHANGED
    details: list[str] = field(default_factory=list)
    explained_by: str = ""  # reason, link and origin of the entry that explains a change
    used: float = 0.0  # within tolerance: the largest share of the tolerance a value used
    max_abs: float = 0.0  # largest absolute difference of a value (float outputs)
    max_rel: float = 0.0  # largest relative difference
    notes: list[str] = field(default_factory=list)  # e.g. a changed error message


@dataclass
class DiffResult:
    a: dict  # header of recording A (everything but the cases)
    b: dict
    cases: list[CaseDiff]

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.cases)

    @property
    def unexplained(self) -> list[CaseDiff]:
        return [c for c in self.cases if c.status == CHANGED and not c.explained_by]

    @property
    def exit_status(self) -> int:
        return 1 if self.unexplained else 0

    def by_claim(self) -> dict[str, list[CaseDiff]]:
        order = {cid: i for i, cid in enumerate(_claims.CLAIMS)}
        groups: dict[str, list[CaseDiff]] = {}
        for c in sorted(self.cases, key=lambda c: (order.get(c.claim, len(order)), c.claim)):
            groups.setdefault(c.claim, []).append(c)
        return groups

    def summary(self) -> str:
        changed = self.count(CHANGED)
        explained = changed - len(self.unexplained)
        return (f"{len(self.cases)} cases: {self.count(SAME)} same, {self.count(WITHIN)} within "
                f"tolerance, {changed} changed ({explained} explained, "
                f"{len(self.unexplained)} unexplained)")

    def render(self, verbose: bool = False) -> str:
        """The report: both recordings' versions, then one line per claim (and below it
        every changed case, and with ``verbose`` every case that is not bit-identical or
        carries a note), then the summary."""
        lines = []
        for label, head in (("A", self.a), ("B", self.b)):
            vs = ", ".join(f"{k} {v}" for k, v in head.get("versions", {}).items())
            lines.append(f"{label}: {head.get('implementation')} ({vs}) recorded "
                         f"{head.get('created', '?')}")
            pk = head.get("packages") or {}
            if pk:
                lines.append("   installed: " + ", ".join(f"{k} {v}" for k, v in pk.items()))
        lines.append("")
        for claim_id, items in self.by_claim().items():
            counts = [f"{sum(c.status == s for c in items)} {s}" for s in (SAME, WITHIN, CHANGED)
                      if any(c.status == s for c in items)]
            flag = ""
            if any(c.status == CHANGED and not c.explained_by for c in items):
                flag = "CHANGED  "
            elif any(c.status == CHANGED for c in items):
                flag = "explained  "
            within = [c for c in items if c.status == WITHIN]
            if within:
                worst = max(within, key=lambda c: c.used)
                if worst.used > 0:
                    note = (f" (max |diff| {max(c.max_abs for c in within):.3g}, max relative "
                            f"{max(c.max_rel for c in within):.3g}; at most {worst.used:.2g} "
                            f"of the tolerance, {worst.case})")
                else:
                    note = " (equal values, not bit-identical)"
                counts[1 if any(c.status == SAME for c in items) else 0] += note
            sides = {d.split()[-1] for c in items for d in c.details
                     if d.startswith("case only in recording")}
            if len(sides) == 1 and all(c.status == CHANGED and c.details and
                                       c.details[0].startswith("case only in recording")
                                       for c in items):
                counts.append(f"claim only in recording {sides.pop()}")
            lines.append(f"{claim_id}: {flag}{', '.join(counts)}")
            for c in items:
                if c.status == SAME and not (verbose and c.notes):
                    continue
                if c.status == WITHIN and not verbose:
                    continue
                mark = c.status
                if c.status == CHANGED:
                    mark = "changed, explained" if c.explained_by else "CHANGED"
                lines.append(f"  {c.case}: {mark}")
                for d in c.details + (c.notes if verbose else []):
                    lines.append(f"    {d}")
                if c.explained_by:
                    lines.append(f"    explained: {c.explained_by}")
        lines.append("")
        lines.append(self.summary())
        return "\n".join(lines)


def _header(rec: Mapping) -> dict:
    return {k: v for k, v in rec.items() if k != "cases"}


def _where(idx) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _num(x) -> str:
    return repr(x.item()) if hasattr(x, "item") else repr(x)


def _float_pair_ok(da: str, db: str) -> bool:
    """float32 against float64 is a precision note, not a change (the specs accept either at
    the default policy); anything else, e.g. float32 -> float16 or float -> int, is."""
    (ka, sa), (kb, sb) = _dtype_facts(da), _dtype_facts(db)
    return ka == kb == "f" and sa >= 4 and sb >= 4


def _describe_output(e: Mapping) -> str:
    return "None" if e.get("none") else f"{e['dtype']} {tuple(e['shape'])}"


@dataclass
class _Out:
    status: str
    details: list[str]
    used: float = 0.0
    max_abs: float = 0.0
    max_rel: float = 0.0


def _compare_output(name: str, ea: Mapping, eb: Mapping, depth: int) -> _Out:
    """How one output of a case compares: status, details, and the figures."""
    if ea.get("none") or eb.get("none"):
        if ea.get("none") and eb.get("none"):
            return _Out(SAME, [])
        return _Out(CHANGED, [f"{name}: {_describe_output(ea)} -> {_describe_output(eb)}"])
    if list(ea["shape"]) != list(eb["shape"]):
        return _Out(CHANGED, [f"{name}: shape {tuple(ea['shape'])} -> {tuple(eb['shape'])}"])
    da, db = ea["dtype"], eb["dtype"]
    note = ""
    if da != db:
        if not _float_pair_ok(da, db):
            return _Out(CHANGED, [f"{name}: dtype {da} -> {db}"])
        note = f"; dtype {da} -> {db}"
    elif ea["data"] == eb["data"]:
        return _Out(SAME, [])
    if _dtype_facts(da)[0] != "f":  # bool, integer, complex: equal or not
        a, b = decode_array(ea), decode_array(eb)
        if np.array_equal(a, b):
            return _Out(WITHIN, [f"{name}: equal values, not bit-identical{note}"])
        i = tuple(np.argwhere(a != b)[0])
        return _Out(CHANGED, [f"{name}: {int((a != b).sum())} of {a.size} value(s) differ; "
                              f"first at {_where(i)}: {_num(a[i])} -> {_num(b[i])}"])
    a64, b64 = as_float64(ea), as_float64(eb)
    na, nb = np.isnan(a64), np.isnan(b64)
    if (na != nb).any():
        i = tuple(np.argwhere(na != nb)[0])
        return _Out(CHANGED, [f"{name}: NaN in one recording only, {int((na != nb).sum())} "
                              f"value(s); first at {_where(i)}: {_num(a64[i])} -> "
                              f"{_num(b64[i])}"])
    # an infinity is no number a tolerance can be relative to: it must be the same
    # infinity on both sides
    inf = (np.isinf(a64) | np.isinf(b64)) & (a64 != b64)
    if inf.any():
        i = tuple(np.argwhere(inf)[0])
        return _Out(CHANGED, [f"{name}: an infinity on one side only, {int(inf.sum())} "
                              f"value(s); first at {_where(i)}: {_num(a64[i])} -> "
                              f"{_num(b64[i])}"])
    a64, b64 = np.where(na, 0.0, a64), np.where(nb, 0.0, b64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        err = np.where(a64 == b64, 0.0, np.abs(a64 - b64))  # equal infinities: no error
        err = np.where(np.isnan(err), np.inf, err)
        rel = np.where(err == 0, 0.0, err / np.abs(a64))
    if not err.any():
        return _Out(WITHIN, [f"{name}: equal values, not bit-identical{note}"])
    ia = tuple(np.unravel_index(np.argmax(err), err.shape))
    ir = tuple(np.unravel_index(np.argmax(rel), rel.shape))
    coarse = da if tol.eps(_tol_name(da)) >= tol.eps(_tol_name(db)) else db
    tolerance = tol.tolerance(_tol_name(coarse), depth) if depth > 0 else 0.0
    allowed = tolerance * (1.0 + np.abs(a64))
    over = err > allowed
    figures = dict(max_abs=float(err[ia]), max_rel=float(rel[ir]))
    text = (f"{name}: max |diff| {err[ia]:.3g} at {_where(ia)} ({_num(a64[ia])} -> "
            f"{_num(b64[ia])}), max relative {rel[ir]:.3g} at {_where(ir)}{note}")
    if not over.any():
        used = float(np.max(err / allowed))
        return _Out(WITHIN, [f"{text}; tolerance {tolerance:.3g} (depth {depth}), {used:.2g} "
                             f"of it used"], used, **figures)
    limit = ("exact case (depth 0)" if depth == 0 else
             f"{int(over.sum())} of {a64.size} over tolerance {tolerance:.3g} "
             f"(depth {depth}, dtype {coarse})")
    return _Out(CHANGED, [f"{text}; {limit}"], **figures)


def _tol_name(dtype_name: str) -> str:
    return dtype_name if dtype_name == "bfloat16" else np.dtype(dtype_name).name


def compare_case(cid: str, ca: Optional[Mapping], cb: Optional[Mapping]) -> CaseDiff:
    claim_id = (ca or cb or {}).get("claim") or cid.split("/")[0]
    if ca is None or cb is None:
        side = "B" if ca is None else "A"
        return CaseDiff(cid, claim_id, CHANGED, [f"case only in recording {side}"])
    if ca.get("inputs") != cb.get("inputs"):
        return CaseDiff(cid, claim_id, CHANGED, [
            f"input hash {ca.get('inputs')} -> {cb.get('inputs')}: the case generator "
            f"changed, so the results are not comparable"])
    ra, rb = ca.get("result"), cb.get("result")

    def describe(c):
        if c.get("result") == "error":
            return f"error {c['error']['type']}: {c['error']['message']}"
        if c.get("result") == "n/a":
            return f"n/a ({c.get('reason', '')})"
        outs = c.get("outputs", [])
        return "values " + ", ".join(
            f"{o['name']}=None" if o.get("none") else f"{o['name']} {o['dtype']} "
            f"{tuple(o['shape'])}" for o in outs)

    if ra != rb:
        return CaseDiff(cid, claim_id, CHANGED,
                        [f"{ra} -> {rb}: A gave {describe(ca)}; B gives {describe(cb)}"])
    if ra == "n/a":
        return CaseDiff(cid, claim_id, SAME)
    if ra == "error":
        ea, eb = ca["error"], cb["error"]
        if ea["type"] != eb["type"]:
            return CaseDiff(cid, claim_id, CHANGED,
                            [f"error type {ea['type']} -> {eb['type']} ({describe(cb)})"])
        notes = []
        if ea.get("message") != eb.get("message"):  # messages are noted, never compared
            notes.append(f"same error type, message {ea.get('message')!r} -> "
                         f"{eb.get('message')!r}")
        return CaseDiff(cid, claim_id, SAME, notes=notes)
    oa, ob = ca.get("outputs", []), cb.get("outputs", [])
    if [o["name"] for o in oa] != [o["name"] for o in ob]:
        return CaseDiff(cid, claim_id, CHANGED, [
            f"outputs {[o['name'] for o in oa]} -> {[o['name'] for o in ob]}"])
    # the depth the tolerance is derived from comes from the case as this version defines
    # it, not from a file (an edited depth would loosen the comparison); a case this
    # version no longer has takes the smaller of the two recorded depths
    if cid in BY_ID:
        depth = BY_ID[cid].prepare().depth
    else:
        depth = min(int(ca.get("depth", 0)), int(cb.get("depth", 0)))
    per_output = [_compare_output(ea["name"], ea, eb, depth) for ea, eb in zip(oa, ob)]
    figures = dict(used=max((o.used for o in per_output), default=0.0),
                   max_abs=max((o.max_abs for o in per_output), default=0.0),
                   max_rel=max((o.max_rel for o in per_output), default=0.0))
    for status in (CHANGED, WITHIN):
        if any(o.status == status for o in per_output):
            details = [d for o in per_output if o.status == status for d in o.details]
            return CaseDiff(cid, claim_id, status, details, **figures)
    return CaseDiff(cid, claim_id, SAME)


def _all_versions(rec: Mapping) -> dict:
    """Every version a recording notes, for version bands: the installed packages, Python,
    NumPy, and what the implementation reported (which wins where names overlap)."""
    v = {str(k): str(x) for k, x in (rec.get("packages") or {}).items()}
    if "tensorflow-cpu" in v:
        v.setdefault("tensorflow", v["tensorflow-cpu"])
    v.update({"python": str(rec.get("python", "")), "numpy": str(rec.get("numpy", ""))})
    v.update({str(k): str(x) for k, x in rec.get("versions", {}).items()})
    return {k: x for k, x in v.items() if x}


def builtin_expectations(a: Mapping, b: Mapping) -> list[_exp.Expectation]:
    """The built-in expectation files of the implementations of both recordings."""
    names = dict.fromkeys([str(a.get("implementation")), str(b.get("implementation"))])
    out: list[_exp.Expectation] = []
    for n in names:
        out += _exp.builtin(n)
    return out


def load_changes(path) -> list[_exp.Expectation]:
    """A changes file: expectation lines keyed by claim id or case id; they apply to every
    implementation unless the file names one with ``@impl NAME``."""
    path = Path(path)
    return _exp.parse(path.read_text(encoding="utf-8"), impl="*", origin=path.name,
                      user=path != CHANGES_FILE)


def builtin_changes() -> list[_exp.Expectation]:
    return load_changes(CHANGES_FILE) if CHANGES_FILE.exists() else []


def _explain(cd: CaseDiff, a: Mapping, b: Mapping, departures, changes) -> str:
    """The entry that explains a change, as text, or "".

    A departure (an implementation's expectation entry, keyed by the case's claim id or a
    spec test the case mirrors) explains a change when it holds for one recording and not
    for the other: the departure began or ended between them.  One that holds for both says
    both depart the same documented way, which does not account for a difference between
    them.  A known change (``changes.txt``) explains a change of its claim or case between
    recordings of its implementation (any, without ``@impl``); with a version band, the band
    must hold for one recording and not the other (the change lies between them)."""
    tests = BY_ID[cd.case].tests if cd.case in BY_ID else ()
    va, vb = _all_versions(a), _all_versions(b)

    def holds(e, rec, versions):
        impl = str(rec.get("implementation"))
        hit = any(e.matches(impl, cd.claim, t) for t in tests) or e.matches(impl, cd.claim, "")
        return hit and e.applies_to(versions)

    # the departure as a whole, not entry by entry: two entries of one test, banded to
    # different versions, that hold on both sides say that both recordings depart, which
    # explains no difference between them
    on_a = [e for e in departures if holds(e, a, va)]
    on_b = [e for e in departures if holds(e, b, vb)]
    if bool(on_a) != bool(on_b):
        e = (on_a or on_b)[0]
        side = a if on_a else b
        return (f"{e.reason} ({e.link}) [{e.origin}, departure of "
                f"{side.get('implementation')}"
                f"{', ' + e.versions if e.versions else ''}, recording "
                f"{'A' if on_a else 'B'} only]")
    impls = {str(a.get("implementation")), str(b.get("implementation"))}
    for e in changes:
        if e.impl != "*" and e.impl not in impls:
            continue
        if e.key not in (cd.claim, cd.case):
            continue
        if not e.versions or e.applies_to(va) != e.applies_to(vb):
            band = f", {e.versions}" if e.versions else ""
            return f"{e.reason} ({e.link}) [{e.origin}, known change{band}]"
    return ""


def diff(a: Mapping, b: Mapping, expectations: Optional[Iterable[_exp.Expectation]] = None,
         *, changes: Optional[Iterable[_exp.Expectation]] = None) -> DiffResult:
    """Compare recording ``b`` with recording ``a``, case by case.

    ``expectations``: departure entries (expectation-file format, per implementation);
    default: the built-in files of both recordings' implementations.  ``changes``: known
    version-to-version changes (format of ``expectations/changes.txt``, implementation
    ``*`` for all); default: that file."""
    a, b = validate(dict(a)), validate(dict(b))
    departures = builtin_expectations(a, b) if expectations is None else list(expectations)
    known = builtin_changes() if changes is None else list(changes)
    ids = list(a["cases"]) + [cid for cid in b["cases"] if cid not in a["cases"]]
    results = []
    for cid in ids:
        cd = compare_case(cid, a["cases"].get(cid), b["cases"].get(cid))
        if cd.status == CHANGED:
            cd.explained_by = _explain(cd, a, b, departures, known)
        results.append(cd)
    return DiffResult(_header(a), _header(b), results)


# --------------------------------------------------------------------------- command line


def main(argv=None) -> int:
    """Record in this process: ``python -m conformance.golden --impl NAME [--out FILE]``.
    Prints the path written; exit 2 when the implementation cannot be loaded."""
    from . import implementations as _impls

    p = argparse.ArgumentParser(prog="python -m conformance.golden",
                                description="record the golden cases of one implementation "
                                            "in this process")
    p.add_argument("--impl", required=True, metavar="NAME")
    p.add_argument("--out", metavar="FILE",
                   help="default: goldens/<impl>-<key versions>.json")
    p.add_argument("--call-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="a case running longer is recorded as an error (default 120; 0: none)")
    args = p.parse_args(argv)
    try:
        impl = _impls.load(args.impl)
    except _impls.ImplementationUnavailable as exc:
        print(f"conformance record: {exc}", file=sys.stderr)
        return 2
    rec = record(impl, time_limit=args.call_timeout)
    path = Path(args.out) if args.out else default_path(rec)
    try:
        write(rec, path)
    except OSError as exc:
        print(f"conformance record: cannot write {path}: {exc}", file=sys.stderr)
        return 2
    counts = {}
    for c in rec["cases"].values():
        counts[c["result"]] = counts.get(c["result"], 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    print(f"recorded {len(rec['cases'])} golden cases of {rec['implementation']} "
          f"({summary}) in {path} ({path.stat().st_size / 1024:.1f} KB)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
