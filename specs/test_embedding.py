"""Sections B and C: a bias-free Dense on one-hot vectors, and the Embedding lookup table."""

import numpy as np
from hypothesis import given, strategies as st

from conformance import reference as ref
from conformance import strategies as cst
from conformance import tolerances as tol
from conformance.cases import DenseLayer, EmbeddingLayer
from conformance.claims import claim
from conformance.plugin import is_control_exception, note

from ._support import out_dtype

# --------------------------------------------------------------------------- B. Dense


@claim("dense.kernel_shape")
@given(vocab=st.integers(1, 16), units=st.integers(1, 8), seed=cst.SEEDS)
def test_bias_free_dense_owns_one_kernel(impl, vocab, units, seed):
    weights = impl.initial_weights(DenseLayer(units, use_bias=False), vocab, seed)
    shapes = {k: np.shape(v) for k, v in weights.items()}
    assert shapes == {"kernel": (vocab, units)}, (
        f"Dense(units={units}, use_bias=False) on {vocab}-wide input owns {shapes}; "
        f"expected exactly {{'kernel': {(vocab, units)}}}")


@claim("dense.onehot_selects_rows")
@given(case=cst.dense_cases(use_bias=False, onehot=True))
def test_dense_on_onehot_reads_kernel_rows(impl, case):
    n_in = case.kernel.shape[0]
    ids = case.x.argmax(-1)
    onehot = impl.one_hot(ids, n_in)
    out = impl.dense(case.layer, case.weights, onehot)
    expected = case.kernel.astype(out_dtype(out))[ids]
    tol.assert_exact(out, expected, "Dense(one_hot(ids)) against kernel[ids]", case)


# --------------------------------------------------------------------------- C. Embedding


@claim("embedding.weight_shape")
@given(input_dim=st.integers(1, 64), output_dim=st.integers(1, 16), seed=cst.SEEDS)
def test_embedding_owns_one_vocab_by_dim_table(impl, input_dim, output_dim, seed):
    weights = impl.initial_weights(EmbeddingLayer(input_dim, output_dim), 0, seed)
    shapes = {k: np.shape(v) for k, v in weights.items()}
    assert shapes == {"embeddings": (input_dim, output_dim)}, (
        f"Embedding({input_dim}, {output_dim}) owns {shapes}; expected exactly "
        f"{{'embeddings': {(input_dim, output_dim)}}}")


@claim("embedding.output_shape")
@given(case=cst.embedding_cases())
def test_embedding_output_appends_output_dim(impl, case):
    out = np.asarray(impl.embedding(case.layer, case.weights, case.ids))
    expected = case.ids.shape + (case.layer.output_dim,)
    assert out.shape == expected, (
        f"Embedding output shape {out.shape} observed, {expected} expected for ids shaped "
        f"{case.ids.shape}\n  for {case!r}")


@claim("embedding.lookup")
@given(case=cst.embedding_cases(from_text=None))
def test_embedding_is_a_row_lookup(impl, case):
    out = impl.embedding(case.layer, case.weights, case.ids)
    expected = case.embeddings.astype(out_dtype(out))[case.ids]
    tol.assert_exact(out, expected, "Embedding(ids) against table[ids]", case)


@claim("embedding.equals_onehot_dense")
@given(case=cst.embedding_cases())
def test_embedding_equals_dense_on_onehot(impl, case):
    layer = case.layer
    out = impl.embedding(layer, case.weights, case.ids)
    onehot = impl.one_hot(case.ids, layer.input_dim)
    via_dense = impl.dense(DenseLayer(layer.output_dim, use_bias=False),
                           {"kernel": case.embeddings}, onehot)
    tol.assert_exact(out, via_dense, "Embedding(ids) against Dense(one_hot(ids))", case)


@claim("embedding.same_word_same_vector")
@given(case=cst.embedding_cases(from_text=True))
def test_same_word_gets_same_vector_everywhere(impl, case):
    out = np.asarray(impl.embedding(case.layer, case.weights, case.ids))
    flat_ids = case.ids.reshape(-1)
    flat = out.reshape(len(flat_ids), -1)
    for word_id in np.unique(flat_ids):
        rows = flat[flat_ids == word_id]
        tol.assert_exact(rows, np.broadcast_to(rows[0], rows.shape),
                         f"vectors of word {word_id} at its positions in the batch", case)
    for b in range(case.ids.shape[0]):
        alone = impl.embedding(case.layer, case.weights, case.ids[b:b + 1])
        tol.assert_exact(alone, out[b:b + 1], f"sentence {b} embedded alone vs in its batch",
                         case)


@claim("embedding.weight_gradient")
@given(case=cst.embedding_cases(), seed=cst.SEEDS)
def test_embedding_table_gradient_scatters_upstream(impl, case, seed):
    layer = case.layer
    upstream = cst.seeded_uniform(seed, case.ids.shape + (layer.output_dim,))
    grads = impl.embedding_vjp(layer, case.weights, case.ids, upstream)
    g = np.asarray(grads["embeddings"])
    expected = ref.embedding_vjp(case.ids, case.embeddings, upstream)["embeddings"]
    repeats = max(1, int(np.bincount(case.ids.reshape(-1)).max()))
    dt = out_dtype(g)
    tol.assert_close(g, expected, dtype=dt, depth=repeats,
                     what="gradient of the table (scatter-add of the upstream)", context=case)
    unused = np.setdiff1d(np.arange(layer.input_dim), case.ids)
    tol.assert_exact(g[unused], np.zeros((len(unused), layer.output_dim), dtype=g.dtype),
                     f"gradient rows of ids never looked up {unused.tolist()}", case)
    onehot = ref.one_hot(case.ids, layer.input_dim)
    dense = impl.dense_vjp(DenseLayer(layer.output_dim, use_bias=False),
                           {"kernel": case.embeddings}, onehot, upstream)
    tol.assert_close(g, dense["kernel"], dtype=dt, depth=repeats,
                     what="table gradient against the one-hot Dense kernel gradient",
                     context=case)


@claim("embedding.no_input_gradient")
@given(case=cst.embedding_cases(), seed=cst.SEEDS)
def test_no_gradient_reaches_the_ids(impl, case, seed):
    upstream = cst.seeded_uniform(seed, case.ids.shape + (case.layer.output_dim,))
    grads = impl.embedding_vjp(case.layer, case.weights, case.ids, upstream)
    g_ids = grads.get("ids")
    if g_ids is None:
        note("the ids have no gradient path")
        return
    g_ids = np.asarray(g_ids)
    tol.assert_exact(g_ids, np.zeros_like(g_ids), "gradient with respect to the ids", case)
    note("the ids get an all-zero gradient")


def _invalid_ids_probe(impl, layer, table, bad_ids, what):
    ids = np.array(bad_ids, dtype=np.int64)
    try:
        out = impl.embedding(layer, {"embeddings": table}, ids)
    except Exception as exc:
        if is_control_exception(exc):
            raise
        note(f"{what}: raises {type(exc).__name__}")
        return
    out = np.asarray(out)
    kind = "NaN" if np.isnan(out).any() else "values"
    raise AssertionError(
        f"{what}: Embedding({layer.input_dim}, {layer.output_dim}) answered ids {bad_ids} "
        f"with {kind} {out.tolist()} instead of raising")


@claim("embedding.invalid_ids")
@given(input_dim=st.integers(1, 10), data=st.data())
def test_embedding_rejects_ids_past_the_table(impl, input_dim, data):
    excess = data.draw(st.integers(0, 5), label="excess")
    layer = EmbeddingLayer(input_dim, 3)
    table = cst.seeded_uniform(input_dim, (input_dim, 3))
    _invalid_ids_probe(impl, layer, table, [input_dim + excess], "an id >= input_dim")


@claim("embedding.invalid_ids")
@given(input_dim=st.integers(1, 10), data=st.data())
def test_embedding_rejects_negative_ids(impl, input_dim, data):
    neg = data.draw(st.integers(-input_dim, -1), label="negative id")
    layer = EmbeddingLayer(input_dim, 3)
    table = cst.seeded_uniform(input_dim, (input_dim, 3))
    _invalid_ids_probe(impl, layer, table, [neg], "a negative id")


@claim("embedding.mask_zero")
@given(case=cst.embedding_cases(mask_zero=True))
def test_mask_zero_masks_id_zero_and_keeps_values(impl, case):
    mask = impl.embedding_mask(case.layer, case.ids)
    assert mask is not None, f"mask_zero=True produced no mask\n  for {case!r}"
    mask = np.asarray(mask)
    assert mask.dtype == bool, f"the mask has dtype {mask.dtype}, expected bool\n  for {case!r}"
    tol.assert_exact(mask, case.ids != 0, "mask", case)
    out = impl.embedding(case.layer, case.weights, case.ids)
    expected = case.embeddings.astype(out_dtype(out))[case.ids]
    tol.assert_exact(out, expected, "values with mask_zero=True (row 0 included)", case)


@claim("embedding.mask_zero")
@given(case=cst.embedding_cases(mask_zero=False))
def test_no_mask_without_mask_zero(impl, case):
    mask = impl.embedding_mask(case.layer, case.ids)
    assert mask is None, (f"mask_zero=False handed on a mask {np.asarray(mask).tolist()}; "
                          f"expected none\n  for {case!r}")
