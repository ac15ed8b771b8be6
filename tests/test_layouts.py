"""Weight-layout conversions: small worked examples, and round trips both ways."""

import numpy as np
import pytest

from conformance import layouts
from conformance import reference as ref


def test_reorder_worked_example():
    a = np.array([1, 1, 2, 2, 3, 3, 4, 4])  # blocks i f c o, two units each
    assert layouts.reorder(a, "ifco", "iofc").tolist() == [1, 1, 4, 4, 2, 2, 3, 3]
    with pytest.raises(ValueError):
        layouts.reorder(a, "ifco", "ifcx")


def test_torch_lstm_and_gru_by_hand():
    lstm = {"kernel": np.array([[1.0, 2.0, 3.0, 4.0]]),
            "recurrent_kernel": np.array([[5.0, 6.0, 7.0, 8.0]]),
            "bias": np.array([0.1, 0.2, 0.3, 0.4])}
    t = layouts.keras_to_torch("lstm", lstm)
    assert t["weight_ih_l0"].tolist() == [[1.0], [2.0], [3.0], [4.0]]  # i f g o, transposed
    assert t["weight_hh_l0"].tolist() == [[5.0], [6.0], [7.0], [8.0]]
    assert t["bias_ih_l0"].tolist() == [0.1, 0.2, 0.3, 0.4]
    assert t["bias_hh_l0"].tolist() == [0, 0, 0, 0]
    gru = {"kernel": np.array([[1.0, 2.0, 3.0]]),  # z r h
           "recurrent_kernel": np.array([[4.0, 5.0, 6.0]]),
           "bias": np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])}
    t = layouts.keras_to_torch("gru", gru)
    assert t["weight_ih_l0"].tolist() == [[2.0], [1.0], [3.0]]  # r z n
    assert t["bias_ih_l0"].tolist() == [0.2, 0.1, 0.3]
    assert t["bias_hh_l0"].tolist() == [0.5, 0.4, 0.6]
    with pytest.raises(ValueError):
        layouts.keras_to_torch("gru", {**gru, "bias": gru["bias"][0]}, reset_after=False)


def test_onnx_lstm_by_hand():
    lstm = {"kernel": np.array([[1.0, 2.0, 3.0, 4.0]]),
            "recurrent_kernel": np.array([[5.0, 6.0, 7.0, 8.0]]),
            "bias": np.array([0.1, 0.2, 0.3, 0.4])}
    o = layouts.keras_to_onnx("lstm", lstm)
    assert o["W"].shape == (1, 4, 1) and o["W"][0, :, 0].tolist() == [1.0, 4.0, 2.0, 3.0]
    assert o["R"][0, :, 0].tolist() == [5.0, 8.0, 6.0, 7.0]  # i o f c
    assert o["B"][0].tolist() == [0.1, 0.4, 0.2, 0.3, 0, 0, 0, 0]


def test_flax_lstm_and_simple_by_hand():
    lstm = {"kernel": np.array([[1.0, 2.0, 3.0, 4.0]]),
            "recurrent_kernel": np.array([[5.0, 6.0, 7.0, 8.0]]),
            "bias": np.array([0.1, 0.2, 0.3, 0.4])}
    f = layouts.keras_to_flax("lstm", lstm)
    assert f["if_"]["kernel"].tolist() == [[2.0]] and f["ig"]["kernel"].tolist() == [[3.0]]
    assert f["ho"]["kernel"].tolist() == [[8.0]] and f["ho"]["bias"].tolist() == [0.4]
    s = layouts.keras_to_flax("simple_rnn", {"kernel": np.array([[1.0]]),
                                             "recurrent_kernel": np.array([[2.0]]),
                                             "bias": np.array([3.0])})
    assert s["dense_i"]["kernel"].tolist() == [[1.0]]
    assert s["dense_i"]["bias"].tolist() == [3.0]  # SimpleCell's bias sits on the input
    assert s["dense_h"] == {"kernel": s["dense_h"]["kernel"]}
    assert s["dense_h"]["kernel"].tolist() == [[2.0]]


def _random(cell, reset_after=True, seed=0, use_bias=True):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=v) for k, v in
            ref.weight_shapes(cell, 3, 2, reset_after=reset_after, use_bias=use_bias).items()}


def _same_function(cell, w1, w2, reset_after=True):
    x = np.random.default_rng(9).normal(size=(2, 4, 3))
    a = ref.rnn(cell, x, w1, return_sequences=True, reset_after=reset_after)
    b = ref.rnn(cell, x, w2, return_sequences=True, reset_after=reset_after)
    np.testing.assert_allclose(a.sequence, b.sequence, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ref.CELLS)
def test_keras_torch_keras_is_exact(cell):
    w = _random(cell)
    back = layouts.torch_to_keras(cell, layouts.keras_to_torch(cell, w))
    assert set(back) == set(w)
    for k in w:
        np.testing.assert_array_equal(back[k], w[k])


@pytest.mark.parametrize("cell,reset_after", [("simple_rnn", True), ("lstm", True),
                                              ("gru", True), ("gru", False)])
def test_keras_onnx_keras_is_exact(cell, reset_after):
    w = _random(cell, reset_after)
    back = layouts.onnx_to_keras(cell, layouts.keras_to_onnx(cell, w, reset_after=reset_after),
                                 reset_after=reset_after)
    for k in w:
        np.testing.assert_array_equal(back[k], w[k])


@pytest.mark.parametrize("cell", ref.CELLS)
def test_keras_flax_keras_computes_the_same(cell):
    w = _random(cell)
    if cell == "gru":
        w["bias"][1, 4:] = 0.0  # Flax has no recurrent bias on the candidate
    back = layouts.flax_to_keras(cell, layouts.keras_to_flax(cell, w))
    _same_function(cell, w, back)
    again = layouts.keras_to_flax(cell, back)
    first = layouts.keras_to_flax(cell, w)
    for name in first:
        for p in first[name]:
            np.testing.assert_allclose(again[name][p], first[name][p], rtol=1e-15)


def test_flax_gru_rejects_what_it_cannot_hold():
    w = _random("gru")
    with pytest.raises(ValueError):
        layouts.keras_to_flax("gru", w)
    with pytest.raises(ValueError):
        layouts.keras_to_flax("gru", _random("gru", reset_after=False), reset_after=False)


@pytest.mark.parametrize("cell", ref.CELLS)
def test_torch_state_to_keras_computes_what_torch_computes(cell):
    """The other way round, against the real framework: a torch module's own state
    converted to Keras layout gives, in the reference, what the module computes."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cls = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    mod = cls(3, 2, batch_first=True).double()
    for p in mod.parameters():  # nonzero recurrent biases too
        torch.nn.init.uniform_(p, -0.8, 0.8)
    x = np.random.default_rng(1).normal(size=(2, 4, 3))
    want = mod(torch.as_tensor(x))[0].detach().numpy()
    keras_w = layouts.torch_to_keras(cell, {k: v.detach().numpy()
                                            for k, v in mod.state_dict().items()})
    got = ref.rnn(cell, x, keras_w, return_sequences=True).sequence
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell,reset_after", [("simple_rnn", True), ("lstm", True),
                                              ("gru", True), ("gru", False)])
def test_onnx_weights_to_keras_computes_what_onnxruntime_computes(cell, reset_after):
    pytest.importorskip("onnxruntime")
    from conformance.cases import RNNLayer
    from conformance.implementations.onnxruntime import OnnxRuntimeImplementation

    rng = np.random.default_rng(2)
    g = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    onnx_w = {"W": rng.normal(size=(1, g * 2, 3)) * 0.5, "R": rng.normal(size=(1, g * 2, 2)) * 0.5,
              "B": rng.normal(size=(1, 2 * g * 2)) * 0.5}
    if cell == "gru" and not reset_after:
        onnx_w["B"][0, -2:] = 0.0  # the candidate's recurrent bias has no Keras place
    keras_w = layouts.onnx_to_keras(cell, onnx_w, reset_after=reset_after)
    impl = OnnxRuntimeImplementation()
    impl.convert = lambda layer, weights: onnx_w  # ONNX Runtime runs the original weights
    x = rng.normal(size=(2, 4, 3))
    layer = RNNLayer(cell, 2, return_sequences=True, reset_after=reset_after)
    got = impl.rnn(layer, keras_w, x)[0]
    want = ref.rnn(cell, x, keras_w, return_sequences=True, reset_after=reset_after).sequence
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
