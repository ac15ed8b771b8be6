"""The strategies: validity of what they build, edges reachable, bad arguments rejected."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import reference as ref
from conformance import strategies as cst
from conformance.cases import RNNLayer


@given(vocab=cst.vocabularies(), data=st.data())
def test_sentences_map_to_valid_ids(vocab, data):
    assert len(set(vocab)) == len(vocab) and all(vocab)
    sentence = data.draw(cst.sentences(vocab))
    ids = cst.encode(sentence, vocab)
    assert ids.dtype == np.int64 and ((0 <= ids) & (ids < len(vocab))).all()
    assert [vocab[i] for i in ids] == sentence


def test_vocabularies_reach_non_ascii_words_and_size_one():
    from hypothesis import find

    find(cst.vocabularies(), lambda v: any(any(ord(ch) > 0xAC00 for ch in w) for w in v),
         settings=settings(max_examples=2000))
    assert len(find(cst.vocabularies(), lambda v: True)) == 1


@given(case=cst.rnn_cases())
def test_rnn_cases_are_consistent(case):
    shapes = ref.weight_shapes(case.layer.cell, case.features, case.layer.units,
                               use_bias=case.layer.use_bias, reset_after=case.layer.reset_after)
    assert {k: v.shape for k, v in case.weights.items()} == shapes
    assert np.abs(case.x).max() <= 1
    assert len(np.unique(case.weights["kernel"])) == case.weights["kernel"].size  # not constant


def test_rnn_cases_reach_the_edges():
    from hypothesis import find

    s = settings(max_examples=500)
    find(cst.rnn_cases(), lambda c: c.layer.units == 1 and c.steps == 1 and c.features == 1
         and c.batch == 1, settings=s)
    find(cst.rnn_cases(), lambda c: c.layer.cell == "gru" and not c.layer.reset_after, settings=s)


@given(case=cst.embedding_cases(from_text=None, mask_zero=None))
def test_embedding_cases_are_valid(case):
    assert case.embeddings.shape == (case.layer.input_dim, case.layer.output_dim)
    assert ((case.ids >= 0) & (case.ids < case.layer.input_dim)).all()
    # float32-representable, so exact claims are exact for float32 implementations
    assert (case.embeddings.astype(np.float32).astype(np.float64) == case.embeddings).all()


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
@pytest.mark.parametrize("factory,kwargs", [
    (cst.vocabularies, dict(min_size=0)),
    (cst.vocabularies, dict(min_size=3, max_size=2)),
    (cst.words, dict(min_size=0)),
    (cst.id_arrays, dict(vocab_size=0, shape=(2,))),
    (cst.rnn_layers, dict(cells=())),
])
def test_bad_arguments_are_rejected(factory, kwargs):
    with pytest.raises((ValueError, TypeError)):
        factory(**kwargs).example()


def test_layer_descriptions_validate():
    with pytest.raises(ValueError):
        RNNLayer("transformer", 3)
    with pytest.raises(ValueError):
        RNNLayer("lstm", 0)
