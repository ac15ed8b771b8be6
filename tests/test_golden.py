"""Golden recordings: `record`, the compact encoding, `diff` and the two commands."""

import copy
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conformance import expectations as exp
from conformance import golden
from conformance import reference as ref
from conformance.implementations import Unsupported
from conformance.implementations.reference import ReferenceImplementation

from .broken import SwappedGRUGates
from .conftest import ROOT


@pytest.fixture(scope="module")
def recording():
    return golden.record(ReferenceImplementation())


def fresh(rec):
    return copy.deepcopy(rec)


def output(rec, case_id, k=0):
    return rec["cases"][case_id]["outputs"][k]


def set_output(rec, case_id, array, k=0):
    entry = output(rec, case_id, k)
    entry.update(golden.encode_array(array))


def only(result, status):
    return [c for c in result.cases if c.status == status]


# --------------------------------------------------------------------------- cases


def test_case_ids_are_stable_claim_ids_and_inputs_regenerate():
    for case in golden.CASES:
        claim, _, n = case.id.partition("/")
        assert claim == case.claim and n.isdigit()
        first, second = case.prepare(), case.prepare()
        assert first.input_hash() == second.input_hash()


def test_every_computable_claim_has_a_case():
    covered = {c.claim for c in golden.CASES}
    wanted = {
        "rnn.stateful", "rnn.compiled_equals_eager", "rnn.dtype", "layer.config_roundtrip",
        "onehot.shape", "onehot.exactly_one", "onehot.no_similarity", "onehot.out_of_range",
        "similarity.cosine", "dense.onehot_selects_rows", "embedding.output_shape",
        "embedding.lookup", "embedding.equals_onehot_dense", "embedding.same_word_same_vector",
        "embedding.weight_gradient", "embedding.no_input_gradient", "embedding.invalid_ids",
        "embedding.mask_zero", "rnn.return_sequences_rank", "rnn.last_step", "rnn.recurrence",
        "rnn.causal", "rnn.order_matters", "rnn.vanishing_gradient_bound", "lstm.recurrence",
        "lstm.return_state", "gru.recurrence", "rnn.return_state", "rnn.go_backwards",
        "rnn.initial_state", "rnn.mask", "rnn.unroll", "rnn.dropout_inference",
        "rnn.batch_independence", "rnn.gradients", "rnn.empty_input"}
    assert wanted <= covered, sorted(wanted - covered)
    # no case is built on randomly initialised weights
    assert not {"lstm.unit_forget_bias", "rnn.weight_shapes"} & covered


def test_cases_stay_small():
    for case in golden.CASES:
        prep = case.prepare()
        x = prep.inputs.get("x")
        if x is not None and x.ndim == 3:
            b, t, _ = x.shape
            assert b <= 3 and t <= 6, case.id
        units = re.search(r"units=(\d+)", prep.config)
        if units:
            assert int(units.group(1)) <= 5, case.id


def test_recurrent_cases_cover_cells_and_options():
    text = "\n".join(c.prepare().config for c in golden.CASES)
    for needle in ("cell='simple_rnn'", "cell='lstm'", "cell='gru'", "reset_after=False",
                   "return_sequences=True", "return_state=True", "go_backwards=True",
                   "unroll=True", "use_bias=False", "recurrent_dropout=0.5"):
        assert needle in text, needle
    names = {k for c in golden.CASES for k in c.prepare().inputs}
    assert {"mask", "initial_state[0]", "initial_state[1]", "upstream[0]"} <= names


# --------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("array", [
    np.array([1.5, -0.0, np.nan, np.inf, -np.inf, 1e-45], dtype=np.float32),
    np.random.default_rng(0).standard_normal((3, 4, 5)),
    np.array([[1, -2], [3, 2**40]], dtype=np.int64),
    np.array([True, False, True]),
    np.arange(6, dtype=np.float16).reshape(2, 3),
    np.arange(4, dtype=">f8"),  # big-endian input is stored little-endian
    np.zeros((2, 0, 3), dtype=np.float32),
    np.float64(3.25),
], ids=["float32-specials", "float64", "int64", "bool", "float16", "big-endian", "empty",
        "scalar"])
def test_encoding_restores_arrays_bit_for_bit(array):
    entry = golden.encode_array(array)
    back = golden.decode_array(json.loads(json.dumps(entry)))
    expected = np.asarray(array)
    assert back.shape == expected.shape
    assert back.dtype == expected.dtype.newbyteorder("=")
    assert back.tobytes() == expected.astype(back.dtype).tobytes()


def test_recording_of_the_reference_is_small_and_complete(recording, tmp_path):
    path = golden.write(recording, tmp_path / "ref.json")
    assert path.stat().st_size < 150_000
    data = golden.read(path)
    assert data["format"] == golden.FORMAT and data["format_version"] == golden.FORMAT_VERSION
    assert data["implementation"] == "reference"
    assert data["versions"]["numpy"] == np.__version__ and data["python"] and data["created"]
    assert list(data["cases"]) == [c.id for c in golden.CASES]
    case = data["cases"]["lstm.recurrence/0"]
    assert case["claim"] == "lstm.recurrence" and case["inputs"].startswith("sha256:")
    assert case["depth"] > 0 and case["result"] == "values"
    assert data["cases"]["embedding.lookup/0"]["depth"] == 0  # exact
    err = data["cases"]["embedding.invalid_ids/1"]
    assert err["result"] == "error" and err["error"]["type"] == "InvalidIds"
    # the values are those of the reference, recomputed here
    prep = golden.BY_ID["lstm.recurrence/0"].prepare()
    want = ref.rnn("lstm", prep.inputs["x"],
                   {k: prep.inputs[k] for k in ("kernel", "recurrent_kernel", "bias")},
                   return_sequences=True).output
    got = golden.decode_array(case["outputs"][0])
    assert got.tobytes() == want.tobytes()


def test_no_initial_weights_are_recorded(recording):
    class Loud(ReferenceImplementation):
        def initial_weights(self, layer, input_dim, seed):
            raise AssertionError("initial_weights must not be called")

    rec = golden.record(Loud())
    assert all(c["result"] != "error" or c["error"]["type"] != "AssertionError"
               for c in rec["cases"].values())


# --------------------------------------------------------------------------- diff


def test_two_recordings_of_the_reference_are_the_same(recording):
    again = golden.record(ReferenceImplementation())
    result = golden.diff(recording, again)
    assert [c.status for c in result.cases] == [golden.SAME] * len(golden.CASES)
    assert result.exit_status == 0
    assert "0 changed" in result.summary()


def test_a_flipped_value_is_caught_with_claim_and_case(recording):
    b = fresh(recording)
    arr = golden.decode_array(output(b, "lstm.recurrence/0"))
    arr[1, 2, 3] = -arr[1, 2, 3]
    set_output(b, "lstm.recurrence/0", arr)
    result = golden.diff(recording, b)
    (changed,) = only(result, golden.CHANGED)
    assert (changed.case, changed.claim) == ("lstm.recurrence/0", "lstm.recurrence")
    assert "[1, 2, 3]" in changed.details[0] and "max |diff|" in changed.details[0]
    assert result.exit_status == 1
    text = result.render()
    assert "lstm.recurrence: CHANGED" in text and "lstm.recurrence/0: CHANGED" in text


def test_a_rounding_difference_is_within_tolerance_except_in_exact_cases(recording):
    b = fresh(recording)
    arr = golden.decode_array(output(b, "gru.recurrence/0"))
    arr[0, 0, 0] = np.nextafter(arr[0, 0, 0], 2.0)
    set_output(b, "gru.recurrence/0", arr)
    table = golden.decode_array(output(b, "embedding.lookup/0"))
    table[0, 0, 0] = np.nextafter(table[0, 0, 0], 2.0)
    set_output(b, "embedding.lookup/0", table)
    result = golden.diff(recording, b)
    status = {c.case: c.status for c in result.cases}
    assert status["gru.recurrence/0"] == golden.WITHIN
    assert status["embedding.lookup/0"] == golden.CHANGED
    assert "exact" in [c for c in result.cases if c.case == "embedding.lookup/0"][0].details[0]


def test_float32_against_the_float64_reference_is_within_tolerance(recording):
    b = fresh(recording)
    for case in b["cases"].values():
        for o in case.get("outputs", []):
            if not o.get("none") and o["dtype"] == "float64":
                o.update(golden.encode_array(golden.decode_array(o).astype(np.float32)))
    result = golden.diff(recording, b)
    assert not only(result, golden.CHANGED)
    assert len(only(result, golden.WITHIN)) > 50
    b16 = fresh(recording)
    arr = golden.decode_array(output(b16, "rnn.recurrence/0")).astype(np.float16)
    set_output(b16, "rnn.recurrence/0", arr)
    (changed,) = only(golden.diff(recording, b16), golden.CHANGED)
    assert "dtype float64 -> float16" in changed.details[0]


def test_shape_error_na_missing_and_generator_changes_are_caught(recording):
    b = fresh(recording)
    set_output(b, "rnn.go_backwards/1", np.zeros((2, 4, 5)))
    b["cases"]["rnn.mask/2"] = {**b["cases"]["rnn.mask/2"], "result": "error",
                                "error": {"type": "ValueError", "message": "no masks"}}
    b["cases"]["rnn.mask/2"].pop("outputs")
    b["cases"]["rnn.unroll/0"] = {**b["cases"]["rnn.unroll/0"], "result": "n/a",
                                  "reason": "no unroll"}
    del b["cases"]["rnn.gradients/3"]
    b["cases"]["onehot.shape/0"]["inputs"] = "sha256:0000000000000000"
    b["cases"]["embedding.invalid_ids/0"]["error"]["type"] = "IndexError"
    result = golden.diff(recording, b)
    changed = {c.case: " ".join(c.details) for c in only(result, golden.CHANGED)}
    assert set(changed) == {"rnn.go_backwards/1", "rnn.mask/2", "rnn.unroll/0",
                            "rnn.gradients/3", "onehot.shape/0", "embedding.invalid_ids/0"}
    assert "shape (2, 4, 4) -> (2, 4, 5)" in changed["rnn.go_backwards/1"]
    assert "values -> error" in changed["rnn.mask/2"] and "ValueError" in changed["rnn.mask/2"]
    assert "values -> n/a" in changed["rnn.unroll/0"]
    assert "only in recording A" in changed["rnn.gradients/3"]
    assert "generator changed" in changed["onehot.shape/0"]
    assert "InvalidIds -> IndexError" in changed["embedding.invalid_ids/0"]
    assert result.exit_status == 1
    groups = result.by_claim()
    assert [c.case for c in groups["rnn.mask"] if c.status == golden.CHANGED] == ["rnn.mask/2"]
    # the other way round: error -> values, n/a -> values, a case only in B
    back = golden.diff(b, recording)
    changed = {c.case: " ".join(c.details) for c in only(back, golden.CHANGED)}
    assert "error -> values" in changed["rnn.mask/2"]
    assert "n/a -> values" in changed["rnn.unroll/0"]
    assert "only in recording B" in changed["rnn.gradients/3"]


def _changes(text, tmp_path):
    path = tmp_path / "changes.txt"
    path.write_text(text, encoding="utf-8")
    return golden.load_changes(path)


def _planted(recording):
    b = fresh(recording)
    arr = golden.decode_array(output(b, "gru.recurrence/1"))
    set_output(b, "gru.recurrence/1", arr + 0.25)
    b["versions"]["numpy"] = "99.0"
    return b


def test_a_known_change_explains_the_planted_change(recording, tmp_path):
    b = _planted(recording)
    assert golden.diff(recording, b, changes=[]).exit_status == 1
    by_case = _changes("gru.recurrence/1 | the reset gate moved | https://example.org/1\n",
                       tmp_path)
    result = golden.diff(recording, b, changes=by_case)
    (changed,) = only(result, golden.CHANGED)
    assert "the reset gate moved" in changed.explained_by and result.exit_status == 0
    assert "explained: the reset gate moved" in result.render()
    by_claim = _changes("gru.recurrence | new kernel | https://example.org/2 | numpy>=99\n",
                        tmp_path)
    assert golden.diff(recording, b, changes=by_claim).exit_status == 0  # B's side matches
    assert golden.diff(b, recording, changes=by_claim).exit_status == 0  # A's side matches
    neither = _changes("gru.recurrence | new kernel | https://example.org/2 | numpy>=100\n",
                       tmp_path)
    assert golden.diff(recording, b, changes=neither).exit_status == 1
    both = _changes("gru.recurrence | new kernel | https://example.org/2 | numpy>=1\n",
                    tmp_path)
    assert golden.diff(recording, b, changes=both).exit_status == 1  # not between them
    other_case = _changes("gru.recurrence/0 | elsewhere | https://example.org/3\n", tmp_path)
    assert golden.diff(recording, b, changes=other_case).exit_status == 1
    other_impl = _changes("@impl torch\ngru.recurrence | torch only | https://example.org/4\n",
                          tmp_path)
    assert golden.diff(recording, b, changes=other_impl).exit_status == 1


def _departure(line, impl="reference"):
    return exp.parse(line + "\n", impl=impl, origin=f"{impl}.txt")


def test_a_departure_that_holds_on_one_side_only_explains_a_change(recording):
    b = _planted(recording)  # B: numpy "99.0"
    began = _departure("gru.recurrence | began with numpy 99 | https://example.org/d | numpy>=99")
    result = golden.diff(recording, b, began, changes=[])
    (changed,) = only(result, golden.CHANGED)
    assert result.exit_status == 0 and "recording B only" in changed.explained_by
    ended = _departure("gru.recurrence | ended with numpy 99 | https://example.org/d | numpy<99")
    assert golden.diff(recording, b, ended, changes=[]).exit_status == 0
    # a departure both recordings share does not account for a difference between them
    both = _departure("gru.recurrence | a known departure | https://example.org/d")
    assert golden.diff(recording, b, both, changes=[]).exit_status == 1
    neither = _departure("gru.recurrence | old numpy | https://example.org/d | numpy<1")
    assert golden.diff(recording, b, neither, changes=[]).exit_status == 1
    other_impl = _departure("gru.recurrence | not this one | https://example.org/d | numpy>=99",
                            impl="torch")
    assert golden.diff(recording, b, other_impl, changes=[]).exit_status == 1
    other_claim = _departure("lstm.recurrence | elsewhere | https://example.org/d | numpy>=99")
    assert golden.diff(recording, b, other_claim, changes=[]).exit_status == 1
    # two entries of one departure, banded so that one holds on each side: the departure
    # holds on both, so it explains no difference between them
    split = _departure("gru.recurrence | since numpy 99 | https://example.org/d | numpy>=99\n"
                       "gru.recurrence | before numpy 99 | https://example.org/d | numpy<99")
    assert golden.diff(recording, b, split, changes=[]).exit_status == 1


def test_builtin_departures_keyed_by_spec_test_name_explain_the_matching_case(recording):
    b = fresh(recording)
    b["implementation"] = "keras-tensorflow"
    b["versions"] = {"keras": "3.15.1", "backend": "tensorflow", "tensorflow": "2.21.0"}
    neg = b["cases"]["embedding.invalid_ids/1"]
    neg.update(result="values", outputs=[{"name": "output",
                                          **golden.encode_array(np.zeros((1, 2, 3)))}])
    neg.pop("error")
    result = golden.diff(recording, b)
    (changed,) = only(result, golden.CHANGED)
    assert changed.case == "embedding.invalid_ids/1"
    assert "keras-tensorflow.txt" in changed.explained_by and result.exit_status == 0


class LSTMWithoutBias(ReferenceImplementation):
    """Forgets to add its bias."""

    def rnn(self, layer, weights, x, **kwargs):
        if layer.cell == "lstm":
            weights = {k: (np.zeros_like(v) if k == "bias" else v) for k, v in weights.items()}
        return super().rnn(layer, weights, x, **kwargs)


@pytest.mark.parametrize("broken, claim", [(SwappedGRUGates(), "gru.recurrence"),
                                           (LSTMWithoutBias(), "lstm.recurrence")])
def test_a_broken_implementation_is_changed(recording, broken, claim):
    result = golden.diff(recording, golden.record(broken))
    changed = {c.claim for c in only(result, golden.CHANGED)}
    assert claim in changed and result.exit_status == 1
    unrelated = {c.claim for c in result.cases if c.status == golden.SAME}
    assert "embedding.lookup" in unrelated and "rnn.recurrence" in unrelated


def test_a_failing_adapter_is_recorded_not_fatal():
    class Failing(ReferenceImplementation):
        name = "failing"

        def rnn(self, *a, **k):
            raise RuntimeError("boom\nsecond line")

        def rnn_vjp(self, *a, **k):
            raise Unsupported("no gradients here")

        def versions(self):
            raise OSError("no versions")

    rec = golden.record(Failing())
    assert rec["cases"]["lstm.recurrence/0"]["error"] == {"type": "RuntimeError",
                                                          "message": "boom"}
    assert rec["cases"]["rnn.gradients/0"] == {**rec["cases"]["rnn.gradients/0"],
                                               "result": "n/a", "reason": "no gradients here"}
    assert "error" in rec["versions"]
    assert rec["cases"]["embedding.lookup/0"]["result"] == "values"


def test_a_hanging_or_exiting_adapter_is_recorded_not_fatal():
    import time

    class Hanging(ReferenceImplementation):
        name = "hanging"

        def rnn(self, layer, *a, **k):
            if layer.cell == "gru":
                while True:
                    time.sleep(0.01)
            raise SystemExit(3)

    class BadMessage(Exception):
        def __str__(self):
            raise ValueError("no message")

    class Odd(ReferenceImplementation):
        def embedding(self, *a, **k):
            raise BadMessage()

    cases = [golden.BY_ID[c] for c in ("gru.recurrence/0", "lstm.recurrence/0",
                                       "embedding.lookup/0")]
    rec = golden.record(Hanging(), cases, time_limit=0.5)
    assert rec["cases"]["gru.recurrence/0"]["error"]["type"] == "CaseTimeout"
    assert rec["cases"]["lstm.recurrence/0"]["error"]["type"] == "SystemExit"
    rec = golden.record(Odd(), cases[2:])
    assert rec["cases"]["embedding.lookup/0"]["error"]["type"] == "BadMessage"
    assert "could not be read" in rec["cases"]["embedding.lookup/0"]["error"]["message"]


def test_infinities_must_be_the_same_on_both_sides(recording):
    a, b = fresh(recording), fresh(recording)
    arr = golden.decode_array(output(a, "lstm.recurrence/0"))
    for first, second in ((np.inf, 0.25), (np.inf, -np.inf), (np.inf, np.inf)):
        x, y = arr.copy(), arr.copy()
        x.flat[0], y.flat[0] = first, second
        set_output(a, "lstm.recurrence/0", x)
        set_output(b, "lstm.recurrence/0", y)
        result = golden.diff(a, b, changes=[])
        assert result.exit_status == (0 if first == second else 1), (first, second)


def test_the_tolerance_depth_comes_from_the_case_not_the_file(recording):
    a, b = fresh(recording), fresh(recording)
    a["cases"]["lstm.recurrence/0"]["depth"] = 10 ** 9
    arr = golden.decode_array(output(b, "lstm.recurrence/0"))
    set_output(b, "lstm.recurrence/0", arr + 0.3)
    for x, y in ((a, b), (b, a)):
        (changed,) = only(golden.diff(x, y, changes=[]), golden.CHANGED)
        assert changed.case == "lstm.recurrence/0"


def test_default_path_names_the_key_versions(recording):
    rec = {"implementation": "keras-tensorflow",
           "versions": {"keras": "3.15.1", "backend": "tensorflow", "python": "3.11",
                        "tensorflow": "2.21.0"}}
    assert str(golden.default_path(rec)) == os.path.join(
        "goldens", "keras-tensorflow-keras3.15.1-tensorflow2.21.0.json")
    assert golden.default_path({"implementation": "my.mod:Adapter", "versions": {}}).name == \
        "my.mod-Adapter.json"


def test_validation_rejects_what_is_not_a_recording(tmp_path):
    (tmp_path / "x.json").write_text('{"cases": {}}')
    with pytest.raises(golden.NotARecording):
        golden.read(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("not json")
    with pytest.raises(golden.NotARecording):
        golden.read(tmp_path / "y.json")
    rec = {"format": golden.FORMAT, "format_version": golden.FORMAT_VERSION, "cases": {}}
    for field in ("packages", "versions"):
        with pytest.raises(golden.NotARecording, match=field):
            golden.validate({**rec, field: "x"})


def test_an_error_that_no_longer_happens_is_caught(recording):
    b = fresh(recording)
    case = b["cases"]["onehot.out_of_range/0"]
    a = fresh(recording)
    # A raised (as an implementation that rejects out-of-range ids would); B answers
    a["cases"]["onehot.out_of_range/0"] = {**{k: v for k, v in case.items() if k != "outputs"},
                                          "result": "error",
                                          "error": {"type": "IndexError", "message": "no"}}
    result = golden.diff(a, b, changes=[])
    (changed,) = only(result, golden.CHANGED)
    assert changed.case == "onehot.out_of_range/0" and result.exit_status == 1
    assert changed.details[0].startswith("error -> values: A gave error IndexError")


def test_a_removed_claim_is_listed_as_on_one_side_only(recording):
    b = fresh(recording)
    gone = [cid for cid in b["cases"] if cid.startswith("rnn.go_backwards/")]
    assert len(gone) == 4
    for cid in gone:
        del b["cases"][cid]
    result = golden.diff(recording, b, changes=[])
    assert {c.case for c in only(result, golden.CHANGED)} == set(gone)
    assert result.exit_status == 1
    text = result.render()
    assert "rnn.go_backwards: CHANGED  4 changed, claim only in recording A" in text
    back = golden.diff(b, recording, changes=[]).render()
    assert "rnn.go_backwards: CHANGED  4 changed, claim only in recording B" in back


def test_within_tolerance_figures_are_reported_per_claim(recording):
    b = fresh(recording)
    arr = golden.decode_array(output(b, "lstm.recurrence/0"))
    set_output(b, "lstm.recurrence/0", arr.astype(np.float32))  # float32 rounding only
    result = golden.diff(recording, b, changes=[])
    (within,) = [c for c in result.cases if c.case == "lstm.recurrence/0"]
    assert within.status == golden.WITHIN and within.max_abs > 0 and within.max_rel > 0
    line = [ln for ln in result.render().splitlines() if ln.startswith("lstm.recurrence:")][0]
    assert "max |diff|" in line and "max relative" in line and "of the tolerance" in line
    assert "lstm.recurrence/0" in result.render(verbose=True).split(line)[1]


def test_a_changed_error_message_is_a_note_not_a_change(recording):
    b = fresh(recording)
    b["cases"]["embedding.invalid_ids/0"]["error"]["message"] = "worded differently"
    result = golden.diff(recording, b, changes=[])
    (case,) = [c for c in result.cases if c.case == "embedding.invalid_ids/0"]
    assert case.status == golden.SAME and "worded differently" in case.notes[0]
    assert "worded differently" not in result.render()
    assert "worded differently" in result.render(verbose=True)


def test_reference_recording_marks_what_it_cannot_express_as_na(recording):
    na = {cid for cid, c in recording["cases"].items() if c["result"] == "n/a"}
    assert na == {"rnn.compiled_equals_eager/0", "rnn.compiled_equals_eager/1",
                  "rnn.dtype/1", "rnn.dtype/2", "layer.config_roundtrip/0",
                  "layer.config_roundtrip/1"}
    assert recording["cases"]["rnn.dtype/0"]["result"] == "values"  # float64 is its own
    assert recording["packages"]["numpy"] == np.__version__


def test_stateful_and_mask_cases_hold_what_the_claims_say(recording):
    """The new kinds of case call what they claim to call: the stateful halves join into
    one run, a fully masked row keeps its initial state."""
    prep = golden.BY_ID["rnn.stateful/0"].prepare()
    outs = {o["name"]: golden.decode_array(o)
            for o in recording["cases"]["rnn.stateful/0"]["outputs"]}
    w = {k: prep.inputs[k] for k in ("kernel", "recurrent_kernel", "bias")}
    whole = ref.rnn("lstm", prep.inputs["x"], w, return_sequences=True)
    joined = np.concatenate([outs["steps 0-2: output"], outs["then steps 3-5: output"]], axis=1)
    np.testing.assert_allclose(joined, whole.sequence, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(outs["after reset, steps 0-2: output"],
                                  outs["steps 0-2: output"])
    prep = golden.BY_ID["rnn.mask/4"].prepare()
    h = golden.decode_array(recording["cases"]["rnn.mask/4"]["outputs"][1])
    assert not prep.inputs["mask"][1].any()
    np.testing.assert_array_equal(h[1], prep.inputs["initial_state[0]"][1])


def test_tensorflow_op_names_are_dropped_from_error_messages():
    exc = ValueError("{{function_node __wrapped__X}} slice index 0 of dimension 1 out of "
                     "bounds. [Op:StridedSlice] name: lstm_10/strided_slice/\nmore")
    assert golden._first_line(exc) == ("slice index 0 of dimension 1 out of bounds. "
                                       "[Op:StridedSlice]")


# --------------------------------------------------------------------------- corrupted files


def _corrupt(recording, how):
    rec = fresh(recording)
    o = output(rec, "rnn.recurrence/0")
    if how == "bad base64":
        o["data"] = o["data"][:-5] + "!!!!!"
    elif how == "not zlib":
        o["data"] = "aGVsbG8gd29ybGQ="
    elif how == "wrong size":
        o["shape"] = [3, 5, 5]
    elif how == "no dtype":
        del o["dtype"]
    elif how == "unknown result":
        rec["cases"]["rnn.recurrence/0"]["result"] = "maybe"
    elif how == "values without outputs":
        del rec["cases"]["rnn.recurrence/0"]["outputs"]
    elif how == "depth not a count":
        rec["cases"]["rnn.recurrence/0"]["depth"] = "abc"
    return rec


@pytest.mark.parametrize("how", ["bad base64", "not zlib", "wrong size", "no dtype",
                                 "unknown result", "values without outputs",
                                 "depth not a count"])
def test_a_corrupted_recording_is_refused_saying_where(recording, how):
    with pytest.raises(golden.NotARecording, match=r"rnn\.recurrence/0"):
        golden.validate(_corrupt(recording, how))


def test_bfloat16_is_recorded_as_its_bit_patterns():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a = np.array([[1.5, -0.0078125, 3.0e38], [np.inf, -2.0, 0.3]], dtype=ml_dtypes.bfloat16)
    entry = json.loads(json.dumps(golden.encode_array(a)))
    assert entry["dtype"] == "bfloat16"
    back = golden.decode_array(entry)
    assert back.dtype == a.dtype and back.tobytes() == a.tobytes()
    np.testing.assert_array_equal(golden.as_float64(entry), a.astype(np.float64))
    golden._check_output("x/0", {"name": "output", **entry})


# --------------------------------------------------------------------------- commands


def conformance(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=600)


def test_record_and_diff_commands(tmp_path):
    one = conformance("record", "--impl", "reference", "--out", "one.json", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert "recorded" in one.stdout and (tmp_path / "one.json").exists()
    two = conformance("record", "--impl", "reference", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    (default,) = (tmp_path / "goldens").glob("reference-numpy*.json")

    same = conformance("diff", "one.json", str(default), cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    assert f"{len(golden.CASES)} cases: {len(golden.CASES)} same" in same.stdout
    assert "lstm.recurrence: 2 same" in same.stdout

    now = conformance("diff", "one.json", "--impl", "reference", cwd=tmp_path)
    assert now.returncode == 0, now.stdout + now.stderr
    assert now.stdout.startswith("A: reference"), now.stdout  # the recording's note: stderr
    assert "recorded" in now.stderr

    rec = golden.read(tmp_path / "one.json")
    arr = golden.decode_array(output(rec, "rnn.mask/1"))
    arr[2, 4, 0] += 0.5
    set_output(rec, "rnn.mask/1", arr)
    golden.write(rec, tmp_path / "planted.json")
    planted = conformance("diff", "one.json", "planted.json", cwd=tmp_path)
    assert planted.returncode == 1
    assert "rnn.mask: CHANGED" in planted.stdout and "rnn.mask/1: CHANGED" in planted.stdout
    (tmp_path / "known.txt").write_text("rnn.mask/1 | planted on purpose | https://example.org\n")
    known = conformance("diff", "one.json", "planted.json", "--changes", "known.txt",
                        cwd=tmp_path)
    assert known.returncode == 0 and "planted on purpose" in known.stdout


def test_command_usage_errors(tmp_path):
    unknown = conformance("record", "--impl", "no-such-impl", cwd=tmp_path)
    assert unknown.returncode == 2
    assert len(unknown.stderr.strip().splitlines()) == 1, unknown.stderr
    assert "unknown implementation 'no-such-impl'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    missing = conformance("diff", "nothing.json", "nothing.json", cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read nothing.json" in missing.stderr
    (tmp_path / "other.json").write_text('{"format": "something-else"}')
    wrong = conformance("diff", "other.json", "other.json", cwd=tmp_path)
    assert wrong.returncode == 2 and "not a golden recording" in wrong.stderr
    neither = conformance("diff", "other.json", cwd=tmp_path)
    assert neither.returncode == 2


def test_corrupted_files_give_exit_2_and_one_readable_line(recording, tmp_path):
    good = golden.write(recording, tmp_path / "good.json")
    text = good.read_text()
    (tmp_path / "truncated.json").write_text(text[: len(text) // 2])
    golden.write(_corrupt(recording, "bad base64"), tmp_path / "damaged.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    for name, words in [("truncated.json", "not JSON"),
                        ("damaged.json", "case rnn.recurrence/0, output 'output': unreadable"),
                        ("binary.json", "not UTF-8")]:
        for args in (("diff", "good.json", name), ("diff", name, "good.json"),
                     ("diff", name, "--impl", "reference")):
            proc = conformance(*args, cwd=tmp_path)
            assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
            assert proc.stderr.startswith(f"conformance diff: {name}: "), proc.stderr
            assert words in proc.stderr and "Traceback" not in proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    bad_changes = tmp_path / "changes.txt"
    bad_changes.write_text("only a key\n")
    proc = conformance("diff", "good.json", "good.json", "--changes", "changes.txt",
                       cwd=tmp_path)
    assert proc.returncode == 2 and "changes.txt:1" in proc.stderr


# --------------------------------------------------------------------------- committed files


GOLDENS = ROOT / "conformance" / "goldens"
COMMITTED = sorted(GOLDENS.glob("*.json"))


def test_committed_recordings_are_small_current_and_agree():
    """The recordings in conformance/goldens/ are valid, small, and hold every case with the inputs this
    module generates now (a changed case needs new recordings); their diff is the one
    committed beside them and has nothing unexplained."""
    if len(COMMITTED) < 2:
        pytest.skip("no committed recordings")
    sizes = {p.name: p.stat().st_size for p in COMMITTED}
    assert sum(sizes.values()) < 1_000_000 and max(sizes.values()) < 300_000, sizes
    hashes = {c.id: c.prepare().input_hash() for c in golden.CASES}
    recs = {p.name: golden.read(p) for p in COMMITTED}
    for name, rec in recs.items():
        assert {cid: c["inputs"] for cid, c in rec["cases"].items()} == hashes, name
    old, new = recs["tf215-keras2.json"], recs["tf221-keras3.json"]
    assert old["versions"]["keras"].startswith("2.") and new["versions"]["keras"][0] == "3"
    result = golden.diff(old, new)
    assert result.exit_status == 0, result.render()
    changed = {c.case for c in result.cases if c.status == golden.CHANGED}
    assert changed == {"embedding.invalid_ids/1"}  # negative ids: raised, now wrap
    saved = (GOLDENS / "tf215-vs-tf221.txt").read_text()
    assert saved == result.render() + "\n", "the committed diff is not what diff prints now"


def test_version_bands_compare_package_names_as_pip_does():
    (entry,) = exp.parse("k | why | https://example.org | TF_Keras>=2.21; NumPy<3\n",
                         impl="x", origin="t.txt")
    assert entry.applies_to({"tf-keras": "2.21.0", "numpy": "2.4.6"})
    assert not entry.applies_to({"tf-keras": "2.20.0", "numpy": "2.4.6"})
    assert not entry.applies_to({"keras": "3.15.1", "numpy": "2.4.6"})  # tf-keras absent
