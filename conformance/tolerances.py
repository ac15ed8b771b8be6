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

Sixteen-bit dtypes
------------------
For float16 (eps 2**-10) and bfloat16 (eps 2**-7) the worst-case bound is empty: at a depth
of 40 it already allows an error of 0.16 (float16) or 1.25 (bfloat16), more than any output
of a tanh layer can be off.  For these two dtypes the rule uses the probabilistic bound
instead: rounding errors of independent operations are zero-mean and add like a random walk,
so the accumulated error grows with the square root of the depth (Higham and Mary,
"A new approach to probabilistic rounding error analysis", SIAM J. Sci. Comput. 2019)::

    tol = SAFETY * eps * sqrt(depth)

The rounding of the inputs themselves (weights and x stored in 16 bits) is not part of the
computation's error: a spec compares a 16-bit layer with the reference run on the inputs
rounded to that dtype (:func:`round_to`).

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


# machine epsilon by dtype name; bfloat16 (an ml_dtypes type to NumPy) has 8 significand
# bits, float16 11, float32 24, float64 53
EPS = {"bfloat16": 2.0 ** -7, "float16": 2.0 ** -10, "float32": 2.0 ** -23,
       "float64": 2.0 ** -52}
SIXTEEN_BIT = ("float16", "bfloat16")


def dtype_name(dtype) -> str:
    return dtype if isinstance(dtype, str) else np.dtype(dtype).name


def eps(dtype) -> float:
    name = dtype_name(dtype)
    if name in EPS:
        return EPS[name]
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return 0.0
    return float(np.finfo(dtype).eps)


def round_to(dtype, a) -> np.ndarray:
    """``a`` rounded (to nearest, ties to even) to the values ``dtype`` can hold, returned
    as float64.  bfloat16 is done on the float32 bit pattern, so NumPy alone suffices."""
    name = dtype_name(dtype)
    a = np.asarray(a, dtype=np.float64)
    if name == "bfloat16":
        bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
        return bits.astype(np.uint32).view(np.float32).astype(np.float64)
    return a.astype(name).astype(np.float64)


def rnn_depth(steps: int, features: int, units: int) -> int:
    return max(1, steps) * (features + units + 2)


def tolerance(dtype, depth: int) -> float:
    """The allowed relative/absolute error for a value of the given dtype and depth."""
    if dtype_name(dtype) in SIXTEEN_BIT:
        return SAFETY * eps(dtype) * float(np.sqrt(max(1, depth)))
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
            f"allowed {allowed[i]:.3g} (dtype {dtype_name(dtype)}, depth {depth}, "
            f"tol {tol:.3g}){ctx}")
