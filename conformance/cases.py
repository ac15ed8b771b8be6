"""Frozen descriptions of one layer and one call: configuration, Keras-layout weights, inputs.

A *layer* object (``DenseLayer``, ``EmbeddingLayer``, ``RNNLayer``) holds only the
configuration, so an adapter can use it as a cache key.  A *case* adds weights and inputs.
Weights are float64 NumPy arrays in the Keras layout, keyed by the Keras weight names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping, Optional

import numpy as np

CELL_NAMES = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
DTYPES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class DenseLayer:
    units: int
    use_bias: bool = True


@dataclass(frozen=True)
class EmbeddingLayer:
    input_dim: int
    output_dim: int
    mask_zero: bool = False


@dataclass(frozen=True)
class RNNLayer:
    cell: str
    units: int
    use_bias: bool = True
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    reset_after: bool = True  # GRU only
    unroll: bool = False
    dropout: float = 0.0  # only active in training, which the specs never ask for
    recurrent_dropout: float = 0.0
    # the layer's dtype policy by name ("float16", "bfloat16", "float32", "float64");
    # None is the framework's default (float32 in Keras)
    dtype: Optional[str] = None

    def __post_init__(self):
        if self.cell not in CELL_NAMES:
            raise ValueError(f"cell must be one of {sorted(CELL_NAMES)}, got {self.cell!r}")
        if self.units < 1:
            raise ValueError(f"units must be >= 1, got {self.units}")
        if self.dtype not in (None,) + DTYPES:
            raise ValueError(f"dtype must be None or one of {DTYPES}, got {self.dtype!r}")

    @property
    def n_states(self) -> int:
        return 2 if self.cell == "lstm" else 1

    def replace(self, **changes) -> "RNNLayer":
        return dataclasses.replace(self, **changes)


def _short(a) -> str:
    if a is None:
        return "None"
    a = np.asarray(a)
    body = np.array2string(a, separator=", ", threshold=64, precision=17,
                           floatmode="maxprec")
    return f"array({body}, dtype={a.dtype.name})"


def _repr(obj) -> str:
    parts = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            v = _short(v)
        elif isinstance(v, Mapping):
            v = "{" + ", ".join(f"{k!r}: {_short(x)}" for k, x in v.items()) + "}"
        elif isinstance(v, tuple) and v and isinstance(v[0], np.ndarray):
            v = "(" + ", ".join(_short(x) for x in v) + ")"
        else:
            v = repr(v)
        parts.append(f"{f.name}={v}")
    return f"{type(obj).__name__}({', '.join(parts)})"


@dataclass(frozen=True, eq=False, repr=False)
class EmbeddingCase:
    layer: EmbeddingLayer
    embeddings: np.ndarray
    ids: np.ndarray
    words: tuple[str, ...] = ()  # the vocabulary the ids came from, when they came from text

    @property
    def weights(self) -> dict:
        return {"embeddings": self.embeddings}

    __repr__ = _repr


@dataclass(frozen=True, eq=False, repr=False)
class DenseCase:
    layer: DenseLayer
    kernel: np.ndarray
    bias: Optional[np.ndarray]
    x: np.ndarray

    @property
    def weights(self) -> dict:
        w = {"kernel": self.kernel}
        if self.bias is not None:
            w["bias"] = self.bias
        return w

    __repr__ = _repr


@dataclass(frozen=True, eq=False, repr=False)
class RNNCase:
    layer: RNNLayer
    weights: Mapping[str, np.ndarray]
    x: np.ndarray
    initial_state: Optional[tuple[np.ndarray, ...]] = None
    mask: Optional[np.ndarray] = None
    seed: int = field(default=0)

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    @property
    def steps(self) -> int:
        return self.x.shape[1]

    @property
    def features(self) -> int:
        return self.x.shape[2]

    def replace(self, **changes) -> "RNNCase":
        return dataclasses.replace(self, **changes)

    __repr__ = _repr
