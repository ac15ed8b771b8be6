"""Section G (part): stateful layers, compiled calls and dtype policies."""

import numpy as np
from hypothesis import given, strategies as st

from conformance import reference as ref
from conformance import strategies as cst
from conformance import tolerances as tol
from conformance.claims import claim

from ._support import as_list, draw_mask, expected_outputs, out_dtype, run_rnn


def _depth(case):
    return tol.rnn_depth(case.steps, case.features, case.layer.units)


def _modes(impl, method: str, what: str) -> tuple:
    from conformance.plugin import not_applicable

    modes = tuple(getattr(impl, method, lambda: ())())
    if not modes:
        not_applicable(f"{impl.name} offers no {what}")
    return modes


# --------------------------------------------------------------------------- stateful


@claim("rnn.stateful")
@given(case=cst.rnn_cases(layers=cst.rnn_layers(return_sequences=True), min_steps=2),
       data=st.data())
def test_stateful_layer_carries_state_and_resets(impl, case, data):
    """One stateful layer fed the first part, then the rest, gives one whole run's sequence
    and final states; after a reset, the first part again gives what it gave from zeros."""
    cut = data.draw(st.integers(1, case.steps - 1), label="cut")
    first, rest = case.x[:, :cut], case.x[:, cut:]
    results = impl.rnn_stateful(case.layer, case.weights, [first, rest, None, first])
    n = expected_outputs(case.layer)
    assert len(results) == 3, f"{len(results)} results for 3 chunks\n  for {case!r}"
    results = [as_list(r, f"{case.layer.cell} outputs of chunk {i}", n)
               for i, r in enumerate(results)]
    whole = ref.rnn(case.layer.cell, case.x, case.weights, return_sequences=True,
                    reset_after=case.layer.reset_after)
    dt, depth = out_dtype(*results[0]), _depth(case)
    tol.assert_close(np.concatenate([results[0][0], results[1][0]], axis=1), whole.sequence,
                     dtype=dt, depth=depth, what=f"two stateful calls (cut at step {cut}) "
                     f"against one run over the whole sequence", context=case)
    for k, (got, want) in enumerate(zip(results[1][1:], whole.states)):
        tol.assert_close(got, want, dtype=dt, depth=depth,
                         what=f"final state {k} after the second call", context=case)
    from_zero = ref.rnn(case.layer.cell, first, case.weights, return_sequences=True,
                        reset_after=case.layer.reset_after)
    for i, when in ((0, "the first call"), (2, "the first part again after reset (from the "
                                                "zero state)")):
        tol.assert_close(results[i][0], from_zero.sequence, dtype=dt, depth=depth,
                         what=f"sequence of {when}", context=case)
        for k, (got, want) in enumerate(zip(results[i][1:], from_zero.states)):
            tol.assert_close(got, want, dtype=dt, depth=depth,
                             what=f"final state {k} after {when}", context=case)


# --------------------------------------------------------------------------- compiled


@claim("rnn.compiled_equals_eager")
@given(case=cst.rnn_cases(initial_state=None, max_batch=2, max_steps=5, max_features=3),
       masked=st.booleans(), backwards=st.sampled_from([False, False, True]), data=st.data())
def test_compiled_call_gives_the_eager_result(impl, case, masked, backwards, data):
    """Each compiled path the implementation offers (graph, XLA, jit, torch.compile), with
    and without a mask (right padding, gaps, a fully masked row: a fused kernel that reads a
    mask as lengths is a known way to differ), forwards and (a third of the time)
    backwards, against its own eager call.  (How eager calls relate to the reference is
    what the other claims check.)"""
    mode = data.draw(st.sampled_from(_modes(impl, "compiled_modes", "compiled call path")),
                     label="mode")
    if backwards:
        case = case.replace(layer=case.layer.replace(go_backwards=True))
    mask = draw_mask(data, case.batch, case.steps)[0] if masked else None
    eager = run_rnn(impl, case, mask=mask)
    compiled = as_list(impl.rnn_compiled(mode, case.layer, case.weights, case.x,
                                         initial_state=case.initial_state, mask=mask),
                       f"{mode} outputs", expected_outputs(case.layer))
    dt, depth = out_dtype(*eager), _depth(case)
    for k, (c, e) in enumerate(zip(compiled, eager)):
        tol.assert_close(c, e, dtype=dt, depth=depth,
                         what=f"{mode} against eager (output {k})",
                         context=f"{case!r} with mask {None if mask is None else mask.tolist()}")


# --------------------------------------------------------------------------- dtypes


def _dtype_policy(impl, case, dtype: str):
    layer = case.layer.replace(dtype=dtype)
    outs = as_list(impl.rnn(layer, case.weights, case.x, initial_state=case.initial_state),
                   f"{layer.cell} outputs", expected_outputs(layer))
    for k, o in enumerate(outs):
        got = tol.dtype_name(np.asarray(o).dtype)
        assert got == dtype, (f"output {k} has dtype {got}, but the layer's dtype policy is "
                              f"{dtype}\n  for {case!r}")
    # what a 16-bit layer computes on is the inputs rounded to 16 bits: the reference gets
    # the same rounded inputs, so only the computation's own rounding is compared
    weights = {k: tol.round_to(dtype, v) for k, v in case.weights.items()}
    init = None if case.initial_state is None else tuple(tol.round_to(dtype, s)
                                                         for s in case.initial_state)
    want = ref.rnn(layer.cell, tol.round_to(dtype, case.x), weights, initial_state=init,
                   return_sequences=layer.return_sequences, reset_after=layer.reset_after)
    for k, (got, exp) in enumerate(zip(outs, [want.output, *want.states])):
        tol.assert_close(np.asarray(got, dtype=np.float64), exp, dtype=dtype,
                         depth=_depth(case), what=f"{dtype} layer: output {k} against the "
                         f"reference on the {dtype}-rounded inputs", context=case)


_SMALL = dict(max_batch=2, max_steps=6, max_features=4, initial_state=None)


@claim("rnn.dtype")
@given(case=cst.rnn_cases(**_SMALL))
def test_float64_layer(impl, case):
    _dtype_policy(impl, case, "float64")


@claim("rnn.dtype")
@given(case=cst.rnn_cases(**_SMALL))
def test_float16_layer(impl, case):
    _dtype_policy(impl, case, "float16")


@claim("rnn.dtype")
@given(case=cst.rnn_cases(**_SMALL))
def test_bfloat16_layer(impl, case):
    _dtype_policy(impl, case, "bfloat16")
