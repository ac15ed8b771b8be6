"""Tolerance policy, written down once, and comparisons whose messages explain themselves.

The rule
--------
An implementation computing in a floating dtype with machine epsilon ``eps`` is compared
with the float64 reference elementwise::

    |actual - expected| <= tol * (1 + |expected|),   tol = SAFETY * eps * depth

``depth`` is the length of the longest chain of rounded operations that produced a value:

* a dot product of length n: n (each multiply-add may round once);
* a recurrent layer over T steps, each step a dot product of length F + u plus the bias and
  activation: T * (F + u + 2);
* a gradient through the same computation walks the chain back once more: 2 * that.

This is the classical worst-case bound for accumulated rounding error, linear in the number
of operations.  ``SAFETY = 4`` covers the few extra roundings of activation functions
(their own results are accurate to a few ulp).  The inputs the strategies draw keep
|weights| <= 1/sqrt(fan_in) and |x| <= 1, so activations stay in their contracting regime
and errors are not amplified from step to step.  For float32 and a 10-step LSTM with 8
features and 8 units the bound is about 9e-5 (observed errors of Keras on TensorFlow are
near 1e-7), far below the O(0.1) differences a swapped gate or a dropped term makes.

The float64 reference itself is compared against finite differences in ``tests/`` with its
own, separately justified tolerances.

Exact claims are exact: :func:`assert_exact` compares bit for bit (with -0.0 == 0.0).
A tolerance is never widened to let one implementation pass; a real departure is recorded in
that implementation's expectation file instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SAFETY = 4.0


def eps(dtype) -> float:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return 0.0
    return float(np.finfo(dtype).eps)


def rnn_depth(steps: int, features: int, units: int) -> int:
    return max(1, steps) * (features + units + 2)


def tolerance(dtype, depth: int) -> float:
    """The allowed relative/absolute error for a value of the given dtype and depth."""
    return SAFETY * eps(dtype) * max(1, depth)


def _where(index) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def _check_shape(actual: np.ndarray, expected: np.ndarray, what: str, context: str):
    if actual.shape != expected.shape:
        raise AssertionError(
            f"{what}: shape {actual.shape} observed, {expected.shape} expected{context}")


def _ctx(context: Any) -> str:
    return f"\n  for {context}" if context else ""


def assert_finite(actual, what: str, context: Any = None):
    a = np.asarray(actual)
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))
        raise AssertionError(
            f"{what}: {len(bad)} non-finite value(s), first at {_where(bad[0])} "
            f"= {a[tuple(bad[0])]}{_ctx(context)}")


def assert_exact(actual, expected, what: str, context: Any = None):
    """Bitwise equality of values (NaN never equals); shapes must agree."""
    a, e = np.asarray(actual), np.asarray(expected)
    ctx = _ctx(context)
    _check_shape(a, e, what, ctx)
    diff = a != e
    if diff.any():
        bad = np.argwhere(diff)
        i = tuple(bad[0])
        raise AssertionError(
            f"{what}: {len(bad)} of {a.size} value(s) differ; first at {_where(i)}: "
            f"{a[i]!r} observed, {e[i]!r} expected (exact claim){ctx}")


def assert_close(actual, expected, *, dtype, depth: int, what: str, context: Any = None):
    """``actual`` (computed in ``dtype``) against the float64 ``expected``."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    ctx = _ctx(context)
    _check_shape(a, e, what, ctx)
    assert_finite(actual, what, context)
    tol = tolerance(dtype, depth)
    err = np.abs(a - e)
    allowed = tol * (1.0 + np.abs(e))
    over = err > allowed
    if over.any():
        i = tuple(np.unravel_index(np.argmax(err - allowed), err.shape))
        raise AssertionError(
            f"{what}: {int(over.sum())} of {a.size} value(s) outside tolerance; worst at "
            f"{_where(i)}: {a[i]!r} observed, {e[i]!r} expected, |diff| {err[i]:.3g} > "
            f"allowed {allowed[i]:.3g} (dtype {np.dtype(dtype).name}, depth {depth}, "
            f"tol {tol:.3g}){ctx}")
