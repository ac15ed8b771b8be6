"""Where the suite's time goes: the cost of one call of each implementation, and the
saving from reusing built Keras layers.  Run: pytest benchmarks --benchmark-only.
Results are compared as ratios in the benchmark's extra_info; nothing here asserts time."""

import numpy as np
import pytest

from conformance import strategies as cst
from conformance.cases import RNNLayer
from conformance.implementations import load

LAYER = RNNLayer("lstm", 8, return_sequences=True)
X = cst.seeded_uniform(0, (2, 10, 4))


@pytest.fixture(scope="module")
def weights():
    return cst.rnn_weights(1, "lstm", 4, 8)


def test_reference_lstm_forward(benchmark, weights):
    impl = load("reference")
    benchmark(impl.rnn, LAYER, weights, X)


def test_keras_lstm_forward_reusing_the_layer(benchmark, weights):
    pytest.importorskip("tensorflow")
    impl = load("keras-tensorflow")
    impl.rnn(LAYER, weights, X)  # build once
    benchmark(impl.rnn, LAYER, weights, X)


def test_keras_lstm_forward_building_each_time(benchmark, weights):
    pytest.importorskip("tensorflow")
    impl = load("keras-tensorflow")

    def fresh():
        impl._layers.clear()
        return impl.rnn(LAYER, weights, X)

    benchmark(fresh)


def test_keras_lstm_gradient(benchmark, weights):
    pytest.importorskip("tensorflow")
    impl = load("keras-tensorflow")
    up = [np.ones((2, 10, 8))]
    impl.rnn_vjp(LAYER, weights, X, up)
    benchmark(impl.rnn_vjp, LAYER, weights, X, up)
