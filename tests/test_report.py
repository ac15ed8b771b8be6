"""Report building, merging and rendering."""

from conformance import report


def rec(claim, impl, outcome, test="t", reason=""):
    return {"claim": claim, "impl": impl, "test": test, "outcome": outcome, "reason": reason,
            "falsifying_example": "", "replay": "", "impl_seconds": 0.5}


def test_claim_outcome_is_the_worst_of_its_tests():
    r = report.build([rec("embedding.invalid_ids", "a", "passed", "t1"),
                      rec("embedding.invalid_ids", "a", "expected-failure", "t2", "why")],
                     {"a": {"status": "ok", "versions": {"x": "1"}}})
    res = r["claims"][0]["results"]["a"]
    assert res["outcome"] == "expected-failure" and res["reason"] == "why"
    assert r["summary"]["a"]["expected-failure"] == 1
    assert "onehot.shape" in r["unspecified_claims"]
    assert not report.exit_failed(r)


def test_merge_puts_columns_from_separate_processes_side_by_side():
    a = report.build([rec("rnn.causal", "reference", "passed")],
                     {"reference": {"status": "ok", "versions": {}}})
    b = report.build([rec("rnn.causal", "keras-jax", "failed", reason="boom")],
                     {"keras-jax": {"status": "ok", "versions": {}}})
    m = report.merge([a, b])
    assert list(m["claims"][0]["results"]) == ["keras-jax", "reference"]
    assert m["implementations"]["reference"]["seconds_inside"] == 0.5
    assert report.exit_failed(m)
    text = report.render_terminal(m)
    assert "rnn.causal" in text and "FAIL" in text and "boom" in text
    md = report.render_markdown(m)
    assert "| `rnn.causal` | exact |" in md


def test_unavailable_implementation_makes_the_run_fail():
    r = report.build([], {"x": {"status": "unavailable", "error": "no torch"}})
    assert report.exit_failed(r)
    assert "unavailable: no torch" in report.render_terminal(r) or r["claims"] == []


def _run(tf, keras, outcomes):
    """A report of keras-tensorflow on one TensorFlow: outcomes is {claim: (outcome, reason)}."""
    return report.build([rec(c, "keras-tensorflow", o, f"test_{c.replace('.', '_')}", why)
                         for c, (o, why) in outcomes.items()],
                        {"keras-tensorflow": {"status": "ok", "versions": {
                            "keras": keras, "backend": "tensorflow", "tensorflow": tf}}})


def test_version_table_puts_one_column_per_run_and_numbers_each_departure_once():
    old = _run("2.15.1", "2.15.0", {"rnn.causal": ("passed", ""),
                                    "embedding.invalid_ids": ("passed", ""),
                                    "rnn.dtype": ("expected-failure", "no bfloat16 QR")})
    new = _run("2.21.0", "3.15.1", {"rnn.causal": ("failed", "step 3 moved"),
                                    "embedding.invalid_ids": ("expected-failure", "wraps"),
                                    "rnn.dtype": ("expected-failure", "no bfloat16 QR")})
    table = report.render_versions([("a", old), ("b", new)], "keras-tensorflow")
    lines = table.splitlines()
    assert lines[0] == "| claim | TF 2.15.1 / Keras 2.15.0 | TF 2.21.0 / Keras 3.15.1 |"
    rows = {ln.split(" | ")[0].strip("| `"): ln for ln in lines[2:] if ln.startswith("| `")}
    # claims in catalogue order; a departure that holds on both sides shares one note
    assert list(rows) == ["embedding.invalid_ids", "rnn.causal", "rnn.dtype"]
    assert rows["rnn.causal"].endswith("| pass | FAIL [2] |")
    assert rows["rnn.dtype"].endswith("| xfail [3] | xfail [3] |")
    assert "1. `test_embedding_invalid_ids` expected-failure: wraps" in lines
    assert "2. `test_rnn_causal` failed: step 3 moved" in lines


def test_version_table_refuses_a_report_without_the_implementation():
    import pytest

    r = report.build([rec("rnn.causal", "torch", "passed")],
                     {"torch": {"status": "ok", "versions": {}}})
    with pytest.raises(ValueError, match="no implementation 'keras-tensorflow'"):
        report.render_versions([("x/report.json", r)], "keras-tensorflow")
