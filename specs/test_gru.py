"""Section F: GRU, in both reset conventions."""

import numpy as np
from hypothesis import given, strategies as st

from conformance import reference as ref
from conformance import strategies as cst
from conformance import tolerances as tol
from conformance.cases import RNNLayer
from conformance.claims import claim

from ._support import out_dtype, run_rnn


@claim("gru.weight_shapes")
@given(features=st.integers(1, 8), units=st.integers(1, 8), reset_after=st.booleans(),
       seed=cst.SEEDS)
def test_gru_weight_shapes(impl, features, units, reset_after, seed):
    layer = RNNLayer("gru", units, reset_after=reset_after)
    shapes = {k: np.shape(v) for k, v in impl.initial_weights(layer, features, seed).items()}
    expected = {"kernel": (features, 3 * units), "recurrent_kernel": (units, 3 * units),
                "bias": (2, 3 * units) if reset_after else (3 * units,)}
    assert shapes == expected, (f"GRU({units}, reset_after={reset_after}) on {features} "
                                f"features owns {shapes}; expected {expected}")


@claim("gru.weight_shapes")
@given(units=st.integers(1, 4), features=st.integers(1, 3), reset_after=st.booleans())
def test_gru_gate_blocks_in_keras_order(impl, units, features, reset_after):
    """Zero kernels and a distinct bias per gate block (z, r, h) with a nonzero initial
    state: one step's result differs for every other reading of the blocks."""
    layer = RNNLayer("gru", units, reset_after=reset_after, return_state=True)
    b_in = np.repeat([1.5, -1.0, 0.5], units)
    bias = np.stack([b_in, np.repeat([0.25, 0.75, -0.5], units)]) if reset_after else b_in
    w = {"kernel": np.zeros((features, 3 * units)),
         "recurrent_kernel": np.full((units, 3 * units), 0.1), "bias": bias}
    x = np.zeros((1, 1, features))
    init = (np.full((1, units), 0.6),)
    out, h = (np.asarray(o) for o in impl.rnn(layer, w, x, initial_state=init))
    expected = ref.rnn("gru", x, w, initial_state=init, reset_after=reset_after)
    tol.assert_close(h, expected.states[0], dtype=out_dtype(h), depth=8,
                     what=f"state of the gate-order probe (blocks z, r, h; "
                          f"reset_after={reset_after})")


@claim("gru.recurrence")
@given(case=cst.rnn_cases(layers=cst.rnn_layers(cells=("gru",)), initial_state=None))
def test_gru_matches_reference(impl, case):
    expected = ref.rnn("gru", case.x, case.weights, initial_state=case.initial_state,
                       return_sequences=case.layer.return_sequences,
                       reset_after=case.layer.reset_after)
    outs = run_rnn(impl, case)
    depth = tol.rnn_depth(case.steps, case.features, case.layer.units)
    dt = out_dtype(*outs)
    tol.assert_close(outs[0], expected.output, dtype=dt, depth=depth,
                     what=f"GRU output (reset_after={case.layer.reset_after})", context=case)
    if case.layer.return_state:
        tol.assert_close(outs[1], expected.states[0], dtype=dt, depth=depth,
                         what="GRU final state", context=case)
