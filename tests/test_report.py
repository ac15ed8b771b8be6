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
