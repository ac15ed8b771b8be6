"""The float64 reference against values worked out by hand and against finite differences."""

import math

import numpy as np
import pytest

from conformance import reference as ref


def sig(v):
    return 1.0 / (1.0 + math.exp(-v))


def test_one_hot_of_the_tutorial_sentence():
    vocab = {"i": 0, "need": 1, "some": 2, "more": 3, "coffee": 4, "cake": 5, "cat": 6, "dog": 7}
    ids = [vocab[w] for w in "i i i i need some more coffee coffee coffee".split()]
    assert ids == [0, 0, 0, 0, 1, 2, 3, 4, 4, 4]
    oh = ref.one_hot(np.array(ids), 8)
    assert oh.shape == (10, 8)
    assert oh[0].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    assert oh[5].tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    assert oh.sum() == 10


def test_one_hot_out_of_range_is_zero():
    assert ref.one_hot(np.array([-1, 3]), 3).tolist() == [[0, 0, 0], [0, 0, 0]]


def test_dense_and_embedding_by_hand():
    kernel = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert ref.dense(np.array([[0.0, 1.0, 0.0]]), kernel).tolist() == [[3.0, 4.0]]
    assert ref.dense(np.array([[1.0, 1.0, 0.0]]), kernel, np.array([0.5, -0.5])).tolist() == \
        [[4.5, 5.5]]
    assert ref.embedding(np.array([[2, 0]]), kernel).tolist() == [[[5.0, 6.0], [1.0, 2.0]]]
    # the tutorial's Embedding(64, 100) on one sentence of 3 ids
    assert ref.embedding(np.array([[3, 57, 35]]), np.zeros((64, 100))).shape == (1, 3, 100)


def test_embedding_rejects_bad_ids():
    with pytest.raises(ref.InvalidIds):
        ref.embedding(np.array([3]), np.zeros((3, 2)))
    with pytest.raises(ref.InvalidIds):
        ref.embedding(np.array([-1]), np.zeros((3, 2)))
    with pytest.raises(TypeError):
        ref.embedding(np.array([0.0]), np.zeros((3, 2)))


def test_embedding_gradient_by_hand():
    ids = np.array([[1, 1, 3]])
    up = np.array([[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]])
    g = ref.embedding_vjp(ids, np.zeros((4, 2)), up)
    assert g["embeddings"].tolist() == [[0, 0], [3.0, 30.0], [0, 0], [3.0, 30.0]]
    assert g["ids"] is None


def test_simple_rnn_two_steps_by_hand():
    w = {"kernel": np.array([[0.5]]), "recurrent_kernel": np.array([[-1.0]]),
         "bias": np.array([0.25])}
    h1 = math.tanh(0.5 * 1.0 + 0.25)
    h2 = math.tanh(0.5 * 2.0 - 1.0 * h1 + 0.25)
    res = ref.rnn("simple_rnn", np.array([[[1.0], [2.0]]]), w, return_sequences=True)
    np.testing.assert_allclose(res.sequence[0, :, 0], [h1, h2], rtol=1e-15)
    back = ref.rnn("simple_rnn", np.array([[[1.0], [2.0]]]), w, go_backwards=True)
    g1 = math.tanh(0.5 * 2.0 + 0.25)
    np.testing.assert_allclose(back.output[0, 0], math.tanh(0.5 - g1 + 0.25), rtol=1e-15)


def test_lstm_one_step_by_hand():
    # one unit; blocks i, f, c, o
    k = np.array([[0.1, 0.2, 0.3, 0.4]])
    r = np.array([[-0.5, 0.6, -0.7, 0.8]])
    b = np.array([0.05, 1.0, -0.05, 0.0])
    x, h0, c0 = 2.0, 0.3, -0.4
    i = sig(0.1 * x - 0.5 * h0 + 0.05)
    f = sig(0.2 * x + 0.6 * h0 + 1.0)
    g = math.tanh(0.3 * x - 0.7 * h0 - 0.05)
    o = sig(0.4 * x + 0.8 * h0)
    c = f * c0 + i * g
    h = o * math.tanh(c)
    res = ref.rnn("lstm", np.array([[[x]]]), {"kernel": k, "recurrent_kernel": r, "bias": b},
                  initial_state=(np.array([[h0]]), np.array([[c0]])))
    np.testing.assert_allclose([res.states[0][0, 0], res.states[1][0, 0]], [h, c], rtol=1e-14)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_one_step_by_hand(reset_after):
    k = np.array([[0.1, 0.2, 0.3]])      # z, r, h
    r = np.array([[0.4, -0.5, 0.6]])
    x, h0 = 1.5, -0.7
    if reset_after:
        b = np.array([[0.01, 0.02, 0.03], [0.04, 0.05, 0.06]])
        z = sig(0.1 * x + 0.01 + 0.4 * h0 + 0.04)
        rr = sig(0.2 * x + 0.02 - 0.5 * h0 + 0.05)
        hh = math.tanh(0.3 * x + 0.03 + rr * (0.6 * h0 + 0.06))
    else:
        b = np.array([0.01, 0.02, 0.03])
        z = sig(0.1 * x + 0.01 + 0.4 * h0)
        rr = sig(0.2 * x + 0.02 - 0.5 * h0)
        hh = math.tanh(0.3 * x + 0.03 + 0.6 * (rr * h0))
    h = z * h0 + (1 - z) * hh
    res = ref.rnn("gru", np.array([[[x]]]), {"kernel": k, "recurrent_kernel": r, "bias": b},
                  initial_state=(np.array([[h0]]),), reset_after=reset_after)
    np.testing.assert_allclose(res.states[0][0, 0], h, rtol=1e-14)


def _finite_difference(loss, arr, eps=1e-6):
    g = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + eps
        plus = loss()
        arr[idx] = old - eps
        minus = loss()
        arr[idx] = old
        g[idx] = (plus - minus) / (2 * eps)
    return g


# Central differences with eps = 1e-6 on O(1) smooth functions: truncation ~ eps^2 = 1e-12,
# cancellation ~ 1e-16 / 1e-6 = 1e-10.  1e-7 leaves three orders of margin over both.
FD_TOL = 1e-7
CONFIGS = [(cell, ra, gb, m) for cell in ref.CELLS for ra in ((True, False) if cell == "gru"
           else (True,)) for gb in (False, True) for m in (False, True)]


@pytest.mark.parametrize("cell,reset_after,go_backwards,masked", CONFIGS)
def test_rnn_vjp_matches_finite_differences(cell, reset_after, go_backwards, masked):
    rng = np.random.default_rng(abs(hash((cell, reset_after, go_backwards, masked))) % 2**32)
    b, t, f, u = 2, 4, 3, 2
    w = {k: rng.normal(size=s) * 0.7
         for k, s in ref.weight_shapes(cell, f, u, reset_after=reset_after).items()}
    x = rng.normal(size=(b, t, f))
    init = tuple(rng.normal(size=(b, u)) for _ in ref.state_names(cell))
    mask = rng.random((b, t)) > 0.4 if masked else None
    d_seq = rng.normal(size=(b, t, u))
    d_states = [rng.normal(size=(b, u)) for _ in init]
    kw = dict(initial_state=init, mask=mask, go_backwards=go_backwards, reset_after=reset_after)

    def loss():
        r = ref.rnn(cell, x, w, return_sequences=True, **kw)
        return float((r.sequence * d_seq).sum() + sum((s * d).sum()
                                                      for s, d in zip(r.states, d_states)))

    grads = ref.rnn_vjp(cell, x, w, d_sequence=d_seq, d_states=d_states, **kw)
    np.testing.assert_allclose(grads["x"], _finite_difference(loss, x), atol=FD_TOL)
    for name in w:
        np.testing.assert_allclose(grads[name], _finite_difference(loss, w[name]), atol=FD_TOL,
                                   err_msg=name)
    for k, s in enumerate(init):
        np.testing.assert_allclose(grads["initial_state"][k], _finite_difference(loss, s),
                                   atol=FD_TOL)


def test_dense_vjp_matches_finite_differences():
    rng = np.random.default_rng(3)
    x, k, bias, up = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5)), rng.normal(size=5), \
        rng.normal(size=(2, 3, 5))

    def loss():
        return float((ref.dense(x, k, bias) * up).sum())

    g = ref.dense_vjp(x, k, bias, up)
    for name, arr in (("x", x), ("kernel", k), ("bias", bias)):
        np.testing.assert_allclose(g[name], _finite_difference(loss, arr), atol=FD_TOL)


def test_weight_shapes_follow_keras():
    assert ref.weight_shapes("lstm", 3, 2) == {"kernel": (3, 8), "recurrent_kernel": (2, 8),
                                               "bias": (8,)}
    assert ref.weight_shapes("gru", 3, 2)["bias"] == (2, 6)
    assert ref.weight_shapes("gru", 3, 2, reset_after=False)["bias"] == (6,)
    assert "bias" not in ref.weight_shapes("simple_rnn", 3, 2, use_bias=False)


def test_reference_implementation_default_init():
    from conformance.cases import RNNLayer
    from conformance.implementations.reference import ReferenceImplementation

    w = ReferenceImplementation().initial_weights(RNNLayer("lstm", 3), 4, seed=0)
    assert w["bias"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    rk = ReferenceImplementation().initial_weights(RNNLayer("simple_rnn", 5), 4, 0)
    np.testing.assert_allclose(rk["recurrent_kernel"] @ rk["recurrent_kernel"].T, np.eye(5),
                               atol=1e-12)
