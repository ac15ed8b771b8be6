"""Section G (part): options every recurrent layer shares: return_state, go_backwards,
initial_state, batch independence, unroll, dropout outside training."""

import numpy as np
from hypothesis import given, strategies as st

from conformance import reference as ref
from conformance import strategies as cst
from conformance import tolerances as tol
from conformance.claims import claim

from ._support import draw_mask, out_dtype, run_rnn


def _depth(case):
    return tol.rnn_depth(case.steps, case.features, case.layer.units)


def _ref(case, layer=None, x=None, initial_state=None):
    layer = layer or case.layer
    return ref.rnn(layer.cell, case.x if x is None else x, case.weights,
                   initial_state=initial_state, return_sequences=layer.return_sequences,
                   go_backwards=layer.go_backwards, reset_after=layer.reset_after)


@claim("rnn.return_state")
@given(case=cst.rnn_cases(layers=cst.rnn_layers(return_state=True)))
def test_return_state_appends_final_states(impl, case):
    outs = run_rnn(impl, case)
    b, u = case.batch, case.layer.units
    names = ("h", "c") if case.layer.cell == "lstm" else ("h",)
    for name, s in zip(names, outs[1:]):
        assert s.shape == (b, u), (f"{case.layer.cell} state {name}: shape {s.shape}, expected "
                                   f"{(b, u)}\n  for {case!r}")
    last = outs[0][:, -1] if case.layer.return_sequences else outs[0]
    tol.assert_exact(outs[1], last, "returned h_T against the last output", case)
    expected = _ref(case)
    for name, got, want in zip(names, outs[1:], expected.states):
        tol.assert_close(got, want, dtype=out_dtype(got), depth=_depth(case),
                         what=f"returned state {name} against the reference", context=case)


@claim("rnn.go_backwards")
@given(case=cst.rnn_cases(layers=cst.rnn_layers(return_sequences=True, return_state=False)))
def test_go_backwards_reads_the_reversed_input(impl, case):
    backwards = case.layer.replace(go_backwards=True)
    got = run_rnn(impl, case, backwards)[0]
    on_reversed = run_rnn(impl, case, x=case.x[:, ::-1])[0]
    dt = out_dtype(got)
    tol.assert_close(got, on_reversed, dtype=dt, depth=_depth(case),
                     what="go_backwards=True against a forward run on the reversed input "
                          "(sequence in processing order)", context=case)
    tol.assert_close(got, _ref(case, backwards).sequence, dtype=dt, depth=_depth(case),
                     what="go_backwards=True against the reference", context=case)


@claim("rnn.initial_state")
@given(case=cst.rnn_cases(layers=cst.rnn_layers(return_state=True), initial_state=True,
                          min_steps=2), data=st.data())
def test_initial_state_replaces_zeros_and_hands_over(impl, case, data):
    outs = run_rnn(impl, case)
    expected = _ref(case, initial_state=case.initial_state)
    dt = out_dtype(*outs)
    tol.assert_close(outs[0], expected.output, dtype=dt, depth=_depth(case),
                     what="output from the given initial state", context=case)
    cut = data.draw(st.integers(1, case.steps - 1), label="cut")
    layer = case.layer.replace(return_sequences=True)
    first = run_rnn(impl, case, layer, x=case.x[:, :cut])
    second = run_rnn(impl, case, layer, x=case.x[:, cut:], initial_state=tuple(first[1:]))
    whole = run_rnn(impl, case, layer)
    tol.assert_close(second[0], whole[0][:, cut:], dtype=dt, depth=_depth(case),
                     what=f"second half (from step {cut}) started from the first half's final "
                          f"state, against one run over the whole", context=case)
    for k, (a, b) in enumerate(zip(second[1:], whole[1:])):
        tol.assert_close(a, b, dtype=dt, depth=_depth(case),
                         what=f"final state {k} after the hand-over", context=case)


@claim("rnn.batch_independence")
@given(case=cst.rnn_cases(max_batch=4, initial_state=None))
def test_each_sample_is_independent_of_its_batch(impl, case):
    together = run_rnn(impl, case)
    for b in range(case.batch):
        init = None if case.initial_state is None else tuple(s[b:b + 1]
                                                             for s in case.initial_state)
        alone = run_rnn(impl, case, x=case.x[b:b + 1], initial_state=init)
        for k, (a, t) in enumerate(zip(alone, together)):
            tol.assert_close(a, t[b:b + 1], dtype=out_dtype(a), depth=_depth(case),
                             what=f"sample {b} run alone against in its batch (output {k})",
                             context=case)


@claim("rnn.unroll")
@given(case=cst.rnn_cases(initial_state=None))
def test_unroll_gives_the_same_result(impl, case):
    rolled = run_rnn(impl, case)
    unrolled = run_rnn(impl, case, case.layer.replace(unroll=True))
    for k, (a, b) in enumerate(zip(unrolled, rolled)):
        tol.assert_close(a, b, dtype=out_dtype(a), depth=_depth(case),
                         what=f"unroll=True against unroll=False (output {k})", context=case)


@claim("rnn.dropout_inference")
@given(case=cst.rnn_cases(), rate=st.sampled_from([0.1, 0.5, 0.9]))
def test_dropout_changes_nothing_outside_training(impl, case, rate):
    plain = run_rnn(impl, case)
    dropped = run_rnn(impl, case, case.layer.replace(dropout=rate))
    for k, (a, b) in enumerate(zip(dropped, plain)):
        tol.assert_exact(a, b, f"dropout={rate} at inference (output {k})", case)


@claim("rnn.dropout_inference")
@given(case=cst.rnn_cases(), rate=st.sampled_from([0.1, 0.5, 0.9]))
def test_recurrent_dropout_changes_nothing_outside_training(impl, case, rate):
    plain = run_rnn(impl, case)
    dropped = run_rnn(impl, case, case.layer.replace(recurrent_dropout=rate))
    for k, (a, b) in enumerate(zip(dropped, plain)):
        tol.assert_exact(a, b, f"recurrent_dropout={rate} at inference (output {k})", case)


@claim("rnn.mask")
@given(case=cst.rnn_cases(layers=cst.rnn_layers(return_sequences=True, return_state=True),
                          initial_state=None, max_batch=4), data=st.data())
def test_masked_steps_carry_state_forward(impl, case, data):
    """Final states and every output match the reference: a masked step repeats the
    previous output (zero before the first unmasked step) and carries the states; a fully
    masked row returns its initial state."""
    mask, kind = draw_mask(data, case.batch, case.steps)
    outs = run_rnn(impl, case, mask=mask)
    expected = ref.rnn(case.layer.cell, case.x, case.weights, initial_state=case.initial_state,
                       mask=mask, return_sequences=True, reset_after=case.layer.reset_after)
    dt, depth = out_dtype(*outs), _depth(case)
    ctx = f"{case!r} with a {kind} mask {mask.astype(int).tolist()}"
    for k, (got, want) in enumerate(zip(outs[1:], expected.states)):
        tol.assert_close(got, want, dtype=dt, depth=depth, what=f"final state {k} under the mask",
                         context=ctx)
    tol.assert_close(outs[0], expected.sequence, dtype=dt, depth=depth,
                     what="outputs under the mask", context=ctx)
    init = case.initial_state or tuple(np.zeros((case.batch, case.layer.units))
                                       for _ in range(case.layer.n_states))
    for b in np.flatnonzero(~mask.any(axis=1)):
        for k, s in enumerate(outs[1:]):
            tol.assert_close(s[b], init[k][b], dtype=dt, depth=1,
                             what=f"final state {k} of fully masked row {b} (its initial state)",
                             context=ctx)


@claim("rnn.mask")
@given(case=cst.rnn_cases(layers=cst.rnn_layers(return_sequences=False, return_state=True),
                          max_batch=4, min_steps=2), data=st.data())
def test_padded_batch_equals_each_sequence_alone(impl, case, data):
    lengths = np.array(data.draw(st.lists(st.integers(1, case.steps), min_size=case.batch,
                                          max_size=case.batch), label="lengths"))
    mask = np.arange(case.steps)[None, :] < lengths[:, None]
    padded = np.where(mask[..., None], case.x, 0.0)
    together = run_rnn(impl, case, x=padded, mask=mask)
    for b, n in enumerate(lengths):
        alone = run_rnn(impl, case, x=case.x[b:b + 1, :n])
        for k, (a, t) in enumerate(zip(alone, together)):
            tol.assert_close(t[b:b + 1], a, dtype=out_dtype(a), depth=_depth(case),
                             what=f"sequence {b} (length {n}) in a right-padded batch with its "
                                  f"mask, against it run alone (output {k})", context=case)


@claim("rnn.empty_input")
@given(case=cst.rnn_cases(layers=cst.rnn_layers(return_state=True)),
       empty=st.sampled_from(["no steps", "no samples"]))
def test_empty_input_gets_an_error_or_an_empty_result(impl, case, empty):
    """Either an exception (the report notes which), or a result of the right shape: no
    steps gives the initial (zero) state, no samples gives empty arrays."""
    from conformance.plugin import is_control_exception, note

    x = case.x[:, :0] if empty == "no steps" else case.x[:0]
    layer = case.layer
    from conformance.implementations import WouldCrash

    try:
        outs = impl.rnn(layer, case.weights, x)
    except WouldCrash as exc:
        raise AssertionError(f"{empty}: {layer.cell} crashes the process: {exc}") from None
    except Exception as exc:
        if is_control_exception(exc):
            raise
        note(f"{empty}: raises {type(exc).__name__}")
        return
    outs = [np.asarray(o) for o in outs]
    b, t, u = x.shape[0], x.shape[1], layer.units
    first = (b, t, u) if layer.return_sequences else (b, u)
    shapes = [o.shape for o in outs]
    assert shapes == [first] + [(b, u)] * layer.n_states, (
        f"{empty}: output shapes {shapes}, expected {[first] + [(b, u)] * layer.n_states}"
        f"\n  for {case!r}")
    if not layer.return_sequences:  # the last output of no steps is the initial h
        tol.assert_exact(outs[0], np.zeros_like(outs[0]), f"{empty}: the last output (the "
                                                          f"zero initial h)", case)
    for k, s in enumerate(outs[1:]):
        tol.assert_exact(s, np.zeros_like(s), f"{empty}: final state {k} (the zero initial "
                                              f"state)", case)
    note(f"{empty}: returns an empty / initial-state result")


@claim("rnn.mask")
@given(case=cst.rnn_cases(layers=cst.rnn_layers(return_sequences=True, return_state=False),
                          initial_state=True, max_batch=3, min_steps=2), data=st.data())
def test_masked_steps_before_the_first_output_zeros(impl, case, data):
    """A step masked before any unmasked one has no previous output to repeat: Keras on
    TensorFlow outputs zeros there, even from a non-zero initial state (the state itself is
    carried, as the final-state checks of the other mask tests show)."""
    lead = np.array(data.draw(st.lists(st.integers(1, case.steps - 1), min_size=case.batch,
                                       max_size=case.batch), label="masked leading steps"))
    mask = np.arange(case.steps)[None, :] >= lead[:, None]
    seq = np.asarray(run_rnn(impl, case, mask=mask)[0], dtype=np.float64)
    for b, n in enumerate(lead):
        tol.assert_exact(seq[b, :n], np.zeros((n, case.layer.units)),
                         f"row {b}: outputs of its {n} leading masked step(s) (zeros; its "
                         f"initial h is {case.initial_state[0][b].tolist()})",
                         f"{case!r} with mask {mask.tolist()}")
