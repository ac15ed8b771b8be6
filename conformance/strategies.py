"""Hypothesis strategies that build cases.

Conventions: every factory takes keyword-only arguments, validated on entry.  Small integer
arrays (ids) are drawn element by element so that they shrink; float arrays (weights,
inputs) are filled from a drawn seed so that they are random, non-symmetric and never
constant, while the seed, shapes and flags still shrink.  Float values are rounded to
float32 so that exact claims are exact for float32 implementations too.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from . import reference as ref
from .cases import DenseCase, DenseLayer, EmbeddingCase, EmbeddingLayer, RNNCase, RNNLayer

SEEDS = st.integers(0, 2**32 - 1)

# Letters from several scripts, Hangul syllables included, as in the tutorial's corpus.
_ALPHABET = st.characters(
    codec="utf-8",
    categories=("Ll", "Lu", "Lo"),
    min_codepoint=0x41,
)


def _check_range(name: str, lo: int, hi: int, floor: int = 0):
    if not isinstance(lo, int) or not isinstance(hi, int):
        raise TypeError(f"{name}: bounds must be int, got {lo!r}, {hi!r}")
    if lo < floor or hi < lo:
        raise ValueError(f"{name}: need {floor} <= min <= max, got {lo}, {hi}")


def seeded_uniform(seed: int, shape, scale: float = 1.0) -> np.ndarray:
    """Uniform values in [-scale, scale] from ``seed``, rounded to float32."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-scale, scale, size=shape).astype(np.float32).astype(np.float64)


# --------------------------------------------------------------------------- words


def words(*, min_size: int = 1, max_size: int = 8) -> st.SearchStrategy[str]:
    """One word: letters of any script (Latin, Hangul, Cyrillic, ...).

    min_size: fewest characters.  max_size: most characters."""
    _check_range("words", min_size, max_size, floor=1)
    return st.text(_ALPHABET, min_size=min_size, max_size=max_size)


def vocabularies(*, min_size: int = 1, max_size: int = 12) -> st.SearchStrategy[tuple]:
    """A tuple of distinct words; a word's id is its index.

    min_size: fewest words (1 is the edge the suite covers on purpose).
    max_size: most words."""
    _check_range("vocabularies", min_size, max_size, floor=1)
    return st.lists(words(), min_size=min_size, max_size=max_size, unique=True).map(tuple)


@st.composite
def sentences(draw, vocabulary, *, min_length: int = 1, max_length: int = 8):
    """A list of words, each taken from ``vocabulary`` (repeats allowed).

    vocabulary: the words to draw from.  min_length / max_length: sentence length."""
    _check_range("sentences", min_length, max_length)
    if not vocabulary:
        raise ValueError("sentences: the vocabulary is empty")
    return draw(st.lists(st.sampled_from(vocabulary), min_size=min_length,
                         max_size=max_length))


def encode(sentence, vocabulary) -> np.ndarray:
    """Map words to ids through the vocabulary (index of each word)."""
    index = {w: i for i, w in enumerate(vocabulary)}
    return np.array([index[w] for w in sentence], dtype=np.int64)


# --------------------------------------------------------------------------- ids, shapes


def id_arrays(*, vocab_size: int, shape) -> st.SearchStrategy[np.ndarray]:
    """Integer ids in [0, vocab_size) of the given shape, drawn element-wise.

    vocab_size: the vocabulary size (>= 1).  shape: a tuple or a strategy of tuples."""
    if vocab_size < 1:
        raise ValueError(f"id_arrays: vocab_size must be >= 1, got {vocab_size}")
    return hnp.arrays(np.int64, shape, elements=st.integers(0, vocab_size - 1),
                      fill=st.nothing())


def id_shapes(*, min_dims: int = 1, max_dims: int = 3, max_side: int = 5):
    """Shapes of id arrays: rank min_dims..max_dims, each side 1..max_side."""
    _check_range("id_shapes", min_dims, max_dims, floor=0)
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1,
                            max_side=max_side)


# --------------------------------------------------------------------------- cases


@st.composite
def embedding_cases(draw, *, max_vocab: int = 12, max_dim: int = 6, min_dims: int = 1,
                    max_dims: int = 3, from_text: bool | None = None,
                    mask_zero: bool | None = False) -> EmbeddingCase:
    """An Embedding layer, its table and valid ids.

    max_vocab: largest input_dim.  max_dim: largest output_dim.
    min_dims / max_dims: rank of the ids (ignored for text, which is (batch, seq)).
    from_text: ids come from sentences over a random vocabulary (None: either).
    mask_zero: the layer's flag (None: either)."""
    _check_range("embedding_cases", 1, max_vocab, floor=1)
    if from_text is None:
        from_text = draw(st.booleans(), label="from_text")
    if mask_zero is None:
        mask_zero = draw(st.booleans(), label="mask_zero")
    output_dim = draw(st.integers(1, max_dim), label="output_dim")
    vocab: tuple = ()
    if from_text:
        vocab = draw(vocabularies(max_size=max_vocab), label="vocabulary")
        batch = draw(st.integers(1, 3), label="batch")
        length = draw(st.integers(1, 6), label="length")
        sents = [draw(sentences(vocab, min_length=length, max_length=length),
                      label=f"sentence {b}") for b in range(batch)]
        ids = np.stack([encode(s, vocab) for s in sents])
        input_dim = len(vocab)
    else:
        input_dim = draw(st.integers(1, max_vocab), label="input_dim")
        shape = draw(id_shapes(min_dims=min_dims, max_dims=max_dims), label="ids shape")
        ids = draw(id_arrays(vocab_size=input_dim, shape=shape), label="ids")
    seed = draw(SEEDS, label="weights seed")
    table = seeded_uniform(seed, (input_dim, output_dim))
    layer = EmbeddingLayer(input_dim, output_dim, mask_zero=mask_zero)
    return EmbeddingCase(layer, table, ids, vocab)


@st.composite
def dense_cases(draw, *, max_in: int = 12, max_units: int = 6, use_bias: bool | None = None,
                onehot: bool = False) -> DenseCase:
    """A Dense layer, its weights and an input.

    max_in: widest input.  max_units: most units.  use_bias: the flag (None: either).
    onehot: the input is one_hot(ids) of shape (batch, seq, in) instead of uniform floats."""
    if use_bias is None:
        use_bias = draw(st.booleans(), label="use_bias")
    n_in = draw(st.integers(1, max_in), label="in")
    units = draw(st.integers(1, max_units), label="units")
    seed = draw(SEEDS, label="weights seed")
    rng = np.random.default_rng(seed)
    kernel = seeded_uniform(int(rng.integers(2**32)), (n_in, units))
    bias = seeded_uniform(int(rng.integers(2**32)), (units,)) if use_bias else None
    if onehot:
        shape = draw(id_shapes(min_dims=1, max_dims=2), label="ids shape")
        ids = draw(id_arrays(vocab_size=n_in, shape=shape), label="ids")
        x = ref.one_hot(ids, n_in)
    else:
        batch = draw(st.integers(1, 4), label="batch")
        x = seeded_uniform(int(rng.integers(2**32)), (batch, n_in))
    return DenseCase(DenseLayer(units, use_bias), kernel, bias, x)


def rnn_weights(seed: int, cell: str, features: int, units: int, *, use_bias: bool = True,
                reset_after: bool = True) -> dict:
    """Random Keras-layout weights: |w| <= 1/sqrt(fan_in), biases in [-0.5, 0.5]."""
    rng = np.random.default_rng(seed)
    shapes = ref.weight_shapes(cell, features, units, use_bias=use_bias,
                               reset_after=reset_after)
    w = {
        "kernel": seeded_uniform(int(rng.integers(2**32)), shapes["kernel"],
                                 1.0 / np.sqrt(features)),
        "recurrent_kernel": seeded_uniform(int(rng.integers(2**32)),
                                           shapes["recurrent_kernel"], 1.0 / np.sqrt(units)),
    }
    if use_bias:
        w["bias"] = seeded_uniform(int(rng.integers(2**32)), shapes["bias"], 0.5)
    return w


@st.composite
def rnn_layers(draw, *, cells=("simple_rnn", "lstm", "gru"), max_units: int = 6,
               use_bias=None, return_sequences=None, return_state=None,
               reset_after=None) -> RNNLayer:
    """A recurrent layer configuration.

    cells: the cells to choose from.  max_units: most units (1 is covered on purpose).
    use_bias / return_sequences / return_state / reset_after: a fixed value, or None to
    draw it."""
    if not cells:
        raise ValueError("rnn_layers: cells is empty")

    def flag(value, label):
        return draw(st.booleans(), label=label) if value is None else bool(value)

    cell = draw(st.sampled_from(tuple(cells)), label="cell")
    return RNNLayer(
        cell=cell,
        units=draw(st.integers(1, max_units), label="units"),
        use_bias=flag(use_bias, "use_bias"),
        return_sequences=flag(return_sequences, "return_sequences"),
        return_state=flag(return_state, "return_state"),
        reset_after=flag(reset_after, "reset_after") if cell == "gru" else True,
    )


@st.composite
def rnn_cases(draw, *, layers=None, max_batch: int = 3, min_steps: int = 1,
              max_steps: int = 8, max_features: int = 5,
              initial_state: bool | None = False) -> RNNCase:
    """A recurrent layer, Keras-layout weights and an input (B, T, F) in [-1, 1].

    layers: a strategy of RNNLayer (default: rnn_layers()).  max_batch / min_steps /
    max_steps / max_features: size bounds (the lower edges are 1).
    initial_state: also draw initial states in [-1, 1] (None: draw whether to)."""
    _check_range("rnn_cases", min_steps, max_steps)
    layer = draw(layers if layers is not None else rnn_layers(), label="layer")
    batch = draw(st.integers(1, max_batch), label="batch")
    steps = draw(st.integers(min_steps, max_steps), label="steps")
    features = draw(st.integers(1, max_features), label="features")
    seed = draw(SEEDS, label="seed")
    rng = np.random.default_rng(seed)
    weights = rnn_weights(int(rng.integers(2**32)), layer.cell, features, layer.units,
                          use_bias=layer.use_bias, reset_after=layer.reset_after)
    x = seeded_uniform(int(rng.integers(2**32)), (batch, steps, features))
    if initial_state is None:
        initial_state = draw(st.booleans(), label="with initial_state")
    init = None
    if initial_state:
        init = tuple(seeded_uniform(int(rng.integers(2**32)), (batch, layer.units))
                     for _ in range(layer.n_states))
    return RNNCase(layer, weights, x, init, None, seed)
