"""Section A: one-hot vectors and dense word vectors."""

import numpy as np
from hypothesis import assume, given, strategies as st

from conformance import reference as ref
from conformance import strategies as cst
from conformance import tolerances as tol
from conformance.claims import claim
from conformance.plugin import is_control_exception, note

from ._support import out_dtype


@st.composite
def ids_and_depth(draw):
    depth = draw(st.integers(1, 12), label="depth")
    shape = draw(cst.id_shapes(min_dims=0, max_dims=3), label="shape")
    ids = draw(cst.id_arrays(vocab_size=depth, shape=shape), label="ids")
    return ids, depth


@claim("onehot.shape")
@given(case=ids_and_depth())
def test_onehot_appends_vocabulary_axis(impl, case):
    ids, depth = case
    out = np.asarray(impl.one_hot(ids, depth))
    assert out.shape == ids.shape + (depth,), (
        f"one_hot of ids shaped {ids.shape} over {depth} words: shape {out.shape} observed, "
        f"{ids.shape + (depth,)} expected")


@claim("onehot.exactly_one")
@given(vocab=cst.vocabularies(), data=st.data())
def test_onehot_of_a_sentence_marks_each_word_once(impl, vocab, data):
    sentence = data.draw(cst.sentences(vocab), label="sentence")
    ids = cst.encode(sentence, vocab)
    out = np.asarray(impl.one_hot(ids, len(vocab)))
    tol.assert_exact(out, ref.one_hot(ids, len(vocab)), "one-hot vectors",
                     f"sentence {sentence!r} over vocabulary {vocab!r}")


@claim("onehot.no_similarity")
@given(depth=st.integers(2, 16))
def test_onehot_vectors_are_orthogonal_and_equidistant(impl, depth):
    vecs = np.asarray(impl.one_hot(np.arange(depth), depth), dtype=np.float64)
    tol.assert_exact(vecs @ vecs.T, np.eye(depth), "Gram matrix of the one-hot vectors",
                     f"vocabulary of {depth}")
    sq = ((vecs[:, None, :] - vecs[None, :, :]) ** 2).sum(-1)
    expected = 2.0 * (1 - np.eye(depth))
    tol.assert_exact(sq, expected, "squared distances between distinct words (sqrt 2 apart)",
                     f"vocabulary of {depth}")


@claim("onehot.out_of_range")
@given(depth=st.integers(1, 10), data=st.data())
def test_onehot_out_of_range_ids_encode_as_zeros(impl, depth, data):
    bad = data.draw(st.lists(st.one_of(st.integers(-50, -1), st.integers(depth, depth + 50)),
                             min_size=1, max_size=6), label="out-of-range ids")
    ids = np.array(bad, dtype=np.int64)
    try:
        out = np.asarray(impl.one_hot(ids, depth))
    except Exception as exc:  # an error is a departure from the claim; say which
        if is_control_exception(exc):
            raise
        raise AssertionError(f"one_hot raised {type(exc).__name__} for ids {bad} "
                             f"(depth {depth}) instead of returning zero vectors") from exc
    tol.assert_exact(out, np.zeros((len(bad), depth)), "one-hot of out-of-range ids",
                     f"ids {bad}, depth {depth}")
    note("out-of-range ids give all-zero vectors")


@claim("similarity.cosine")
@given(case=cst.embedding_cases(max_dim=8), scale=st.floats(0.01, 100.0))
def test_cosine_similarity_of_embedded_words(impl, case, scale):
    """The implementation's cosine similarity (e.g. keras.layers.Dot(normalize=True),
    torch.nn.functional.cosine_similarity) on its own embedded word vectors."""
    layer = case.layer
    ids = np.arange(layer.input_dim)
    vecs = np.asarray(impl.embedding(layer, case.weights, ids))
    assume(np.all(np.linalg.norm(vecs.astype(np.float64), axis=-1) > 1e-3))
    n = layer.input_dim
    a = np.repeat(vecs, n, axis=0)  # every ordered pair (i, j)
    b = np.tile(vecs, (n, 1))
    cos = np.asarray(impl.cosine_similarity(a, b))
    assert cos.shape == (n * n,), f"cosine of {n * n} pairs has shape {cos.shape}"
    dt = out_dtype(cos, vecs)
    depth = 2 * layer.output_dim + 4
    cos = cos.reshape(n, n)
    tol.assert_close(cos, ref.cosine_similarity(a, b).reshape(n, n), dtype=dt, depth=depth,
                     what="cosine similarity against the reference", context=case)
    tol.assert_close(cos, cos.T, dtype=dt, depth=depth, what="cosine is symmetric",
                     context=case)
    bound = 1 + tol.tolerance(dt, depth)
    assert np.all(np.abs(cos) <= bound), f"cosine outside [-1, 1]: {cos.tolist()}"
    tol.assert_close(np.diag(cos), np.ones(n), dtype=dt, depth=depth,
                     what="cosine of a vector with itself", context=case)
    scaled = np.asarray(impl.cosine_similarity(a * scale, b))
    tol.assert_close(scaled.reshape(n, n), cos, dtype=dt, depth=depth,
                     what=f"cosine after scaling the first vector by {scale}", context=case)
