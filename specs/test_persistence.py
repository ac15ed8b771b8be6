"""Section H (part): a layer rebuilt from its configuration and weights, or saved and
loaded, computes what the original computed."""

import numpy as np
from hypothesis import given, strategies as st

from conformance import strategies as cst
from conformance import tolerances as tol
from conformance.claims import claim


@st.composite
def _any_layer_case(draw):
    kind = draw(st.sampled_from(["rnn", "embedding", "dense"]), label="layer kind")
    if kind == "rnn":
        case = draw(cst.rnn_cases(max_batch=2, max_steps=5, max_features=4))
        backwards = draw(st.booleans(), label="go_backwards")
        return case.layer.replace(go_backwards=backwards), case.weights, case.x
    if kind == "embedding":
        case = draw(cst.embedding_cases())
        return case.layer, case.weights, case.ids
    case = draw(cst.dense_cases())
    return case.layer, case.weights, case.x


def _forward(impl, layer, weights, inputs):
    from conformance.cases import DenseLayer, EmbeddingLayer

    if isinstance(layer, EmbeddingLayer):
        return [impl.embedding(layer, weights, inputs)]
    if isinstance(layer, DenseLayer):
        return [impl.dense(layer, weights, inputs)]
    return list(impl.rnn(layer, weights, inputs))


@claim("layer.config_roundtrip")
@given(drawn=_any_layer_case(), data=st.data())
def test_rebuilt_layer_gives_identical_outputs(impl, drawn, data):
    from conformance.plugin import not_applicable

    modes = tuple(getattr(impl, "roundtrip_modes", lambda: ())())
    if not modes:
        not_applicable(f"{impl.name} offers no way to rebuild or reload a layer")
    via = data.draw(st.sampled_from(modes), label="via")
    layer, weights, inputs = drawn
    original = _forward(impl, layer, weights, inputs)
    rebuilt = impl.roundtrip(via, layer, weights, inputs)
    rebuilt = list(rebuilt) if isinstance(rebuilt, (list, tuple)) else [rebuilt]
    assert len(rebuilt) == len(original), (
        f"rebuilt via {via}: {len(rebuilt)} outputs, the original gives {len(original)}"
        f"\n  for {layer!r}")
    for k, (r, o) in enumerate(zip(rebuilt, original)):
        tol.assert_exact(np.asarray(r), np.asarray(o),
                         f"layer rebuilt via {via}: output {k} against the original",
                         f"{layer!r} on inputs of shape {np.shape(inputs)}")
