"""Small helpers shared by the spec modules (NumPy only; no framework)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from conformance import tolerances as tol
from conformance.strategies import SEEDS


def out_dtype(*arrays) -> np.dtype:
    """The floating dtype an implementation computed in, read off its outputs.

    The claims here are about layers at their default dtype policy, float32 in Keras: an
    output of lower precision is itself a departure (and would loosen the tolerance)."""
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind == "f":
            if a.dtype.itemsize < 4:
                raise AssertionError(
                    f"output dtype {a.dtype}: the layers' default dtype is float32, and an "
                    f"output of lower precision is not accepted at the default policy")
            return a.dtype
    return np.dtype(np.float64)


def as_list(outputs, what: str, expected_len: int) -> list[np.ndarray]:
    outs = [np.asarray(o) for o in outputs]
    if len(outs) != expected_len:
        raise AssertionError(f"{what}: {len(outs)} output(s) observed, {expected_len} expected")
    return outs


def expected_outputs(layer) -> int:
    return 1 + (layer.n_states if layer.return_state else 0)


def run_rnn(impl, case, layer=None, **kwargs) -> list[np.ndarray]:
    layer = layer or case.layer
    x = kwargs.pop("x", case.x)
    init = kwargs.pop("initial_state", case.initial_state)
    outs = impl.rnn(layer, case.weights, x, initial_state=init, mask=kwargs.pop("mask", case.mask))
    outs = as_list(outs, f"{layer.cell} outputs", expected_outputs(layer))
    for o in outs:
        tol.assert_finite(o, f"{layer.cell} output", case)
    return outs


def spectral_norm(m: np.ndarray) -> float:
    m = np.asarray(m, dtype=np.float64)
    return float(np.linalg.norm(m, 2)) if m.size else 0.0


def input_jacobians(impl, layer, weights, x1: np.ndarray) -> np.ndarray:
    """d output / d x for one sequence ``x1`` (1, T, F) of a layer without
    return_sequences: returns (T, units, F).  One VJP call: the sequence is repeated once
    per unit and each copy gets one unit vector as upstream gradient."""
    units = layer.units
    xb = np.repeat(np.asarray(x1), units, axis=0)
    upstream = [np.eye(units)]
    if layer.return_state:
        upstream += [np.zeros((units, units))] * layer.n_states
    grads = impl.rnn_vjp(layer, weights, xb, upstream)
    dx = np.asarray(grads["x"], dtype=np.float64)
    if dx.shape != xb.shape:
        raise AssertionError(f"gradient w.r.t. x: shape {dx.shape} observed, {xb.shape} expected")
    return np.transpose(dx, (1, 0, 2))


def decay_ratio(impl, layer, weights, x1) -> float:
    """||d h_T / d x_0|| / ||d h_T / d x_(T-1)|| (spectral norms)."""
    jac = input_jacobians(impl, layer, weights, x1)
    last = spectral_norm(jac[-1])
    return spectral_norm(jac[0]) / last if last > 0 else float("inf")


# The seeded trials of the statistical gradient claims (see their docstrings).
TRIALS, NEEDED, STEPS, FEATURES, UNITS = 20, 18, 50, 8, 16
DECAY_THRESHOLD = 1e-3


def trial_input(seed: int) -> np.ndarray:
    """(1, STEPS, FEATURES) standard normal input of trial ``seed``."""
    return np.random.default_rng(10_000 + seed).standard_normal((1, STEPS, FEATURES))


def draw_mask(draw_data, batch, steps):
    """A random mask with right padding, gaps in the middle and (sometimes) a fully masked
    row."""
    kind = draw_data.draw(st.sampled_from(["right-padded", "gaps", "with an empty row"]),
                          label="mask kind")
    rng = np.random.default_rng(draw_data.draw(SEEDS, label="mask seed"))
    if kind == "right-padded":
        lengths = rng.integers(1, steps + 1, size=batch)
        return np.arange(steps)[None, :] < lengths[:, None], kind
    mask = rng.random((batch, steps)) > 0.35
    if kind == "with an empty row":
        mask[rng.integers(batch)] = False
    return mask, kind
