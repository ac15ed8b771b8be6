"""The pytest plugin, driven through pytester in separate processes."""

import json

import pytest

ADAPTERS = '''
import numpy as np
from conformance.implementations import Unsupported
from conformance.implementations.reference import ReferenceImplementation

class Raises(ReferenceImplementation):
    name = "raises"
    def embedding(self, layer, weights, ids):
        raise RuntimeError("adapter blew up")

class ReturnsNaN(ReferenceImplementation):
    name = "nan"
    def embedding(self, layer, weights, ids):
        return super().embedding(layer, weights, ids) * np.nan

class WrongShape(ReferenceImplementation):
    name = "wrongshape"
    def embedding(self, layer, weights, ids):
        return super().embedding(layer, weights, ids)[..., :1, :]

class NoEmbedding(ReferenceImplementation):
    name = "noembedding"
    def embedding(self, layer, weights, ids):
        raise Unsupported("this framework has no embedding layer")

class BadVersions(ReferenceImplementation):
    name = "badversions"
    def versions(self):
        raise RuntimeError("no versions here")

def factory():
    return ReferenceImplementation()

class Mutates(ReferenceImplementation):
    name = "mutates"
    def embedding(self, layer, weights, ids):
        out = super().embedding(layer, weights, ids) + 1.0
        weights["embeddings"] += 1.0  # writes into the caller's table
        return out

class Sleeps(ReferenceImplementation):
    def one_hot(self, ids, depth):
        import time
        time.sleep(30)

    def embedding(self, layer, weights, ids):
        import time
        time.sleep(30)

class OneHotOnly:
    """Implements one_hot only; every other method raises Unsupported."""
    name = "onehotonly"
    def one_hot(self, ids, depth):
        from conformance import reference
        return reference.one_hot(ids, depth)
    def embedding(self, *a, **k):
        raise Unsupported("no embedding here")
    def rnn(self, *a, **k):
        raise Unsupported("no rnn here")
'''

SPEC = '''
import numpy as np
from hypothesis import given
from conformance import strategies as cst, tolerances as tol
from conformance.claims import claim

@claim("embedding.lookup")
@given(case=cst.embedding_cases())
def test_lookup(impl, case):
    out = impl.embedding(case.layer, case.weights, case.ids)
    tol.assert_exact(out, case.embeddings.astype(np.asarray(out).dtype)[case.ids], "lookup", case)

@claim("embedding.invalid_ids")
def test_probe(impl):
    from conformance.plugin import is_control_exception
    try:
        impl.embedding(None, {"embeddings": np.zeros((2, 2))}, np.array([5]))
    except Exception as exc:
        if is_control_exception(exc):
            raise
        return
    raise AssertionError("answered an invalid id")

@claim("onehot.shape")
@given(depth=cst.st.integers(1, 5))
def test_onehot(impl, depth):
    assert np.asarray(impl.one_hot(np.arange(depth), depth)).shape == (depth, depth)
'''


@pytest.fixture
def project(pytester):
    pytester.makepyfile(adapters=ADAPTERS, test_spec=SPEC)
    pytester.syspathinsert()
    return pytester


def run(pytester, *impls, extra=()):
    args = ["--report", "rep", "--hypothesis-profile", "ci", "-p", "no:cacheprovider"]
    for i in impls:
        args += ["--impl", i]
    result = pytester.runpytest_subprocess(*args, *extra)
    rep_path = pytester.path / "rep" / "report.json"
    rep = json.loads(rep_path.read_text()) if rep_path.exists() else None
    return result, rep


def outcome(rep, claim, impl):
    return next(c for c in rep["claims"] if c["id"] == claim)["results"][impl]


def test_bad_adapters_become_readable_failures_not_crashes(project):
    result, rep = run(project, "reference", "adapters:Raises", "adapters:ReturnsNaN",
                      "adapters:WrongShape", "adapters:NoEmbedding")
    assert result.ret == 1
    assert outcome(rep, "embedding.lookup", "reference")["outcome"] == "passed"
    raised = outcome(rep, "embedding.lookup", "adapters:Raises")
    assert raised["outcome"] == "failed" and "adapter blew up" in raised["reason"]
    assert raised["tests"][0]["falsifying_example"]
    assert "--impl adapters:Raises" in raised["tests"][0]["replay"]
    nan = outcome(rep, "embedding.lookup", "adapters:ReturnsNaN")
    assert nan["outcome"] == "failed" and "nan" in nan["reason"].lower()
    shape = outcome(rep, "embedding.lookup", "adapters:WrongShape")
    assert shape["outcome"] == "failed" and "shape" in shape["reason"]
    na = outcome(rep, "embedding.lookup", "adapters:NoEmbedding")
    assert na["outcome"] == "n/a"
    assert na["reason"] == "this framework has no embedding layer"
    # the other claim is untouched by the broken embedding
    for impl in ("adapters:Raises", "adapters:ReturnsNaN", "adapters:WrongShape"):
        assert outcome(rep, "onehot.shape", impl)["outcome"] == "passed"
    # the probe sees the adapter's error as "raised": that is what it asks
    assert outcome(rep, "embedding.invalid_ids", "adapters:NoEmbedding")["outcome"] == "n/a"
    result.stdout.fnmatch_lines(["*conformance matrix*", "*embedding.lookup*FAIL*"])


def test_unknown_and_unloadable_implementations_get_one_line(project):
    result, rep = run(project, "reference", "no-such-impl", "adapters:Missing",
                      "nomodule_xyz:thing")
    assert result.ret == 1
    impls = rep["implementations"]
    assert impls["reference"]["status"] == "ok"
    assert "unknown implementation 'no-such-impl'" in impls["no-such-impl"]["error"]
    assert "has no attribute 'Missing'" in impls["adapters:Missing"]["error"]
    assert "cannot import 'nomodule_xyz'" in impls["nomodule_xyz:thing"]["error"]
    result.stdout.fnmatch_lines(["*implementation no-such-impl could not be loaded*"])
    assert outcome(rep, "embedding.lookup", "reference")["outcome"] == "passed"


def test_factory_functions_and_broken_versions_are_accepted(project):
    result, rep = run(project, "adapters:factory", "adapters:BadVersions")
    assert result.ret == 0, result.stdout.str()
    assert "error" in rep["implementations"]["adapters:BadVersions"]["versions"]


def test_expectations_turn_departures_into_expected_failures(project):
    exp = project.path / "departures.txt"
    exp.write_text("@impl adapters:Raises\n"
                   "embedding.lookup | the adapter cannot embed | https://example.org/1\n"
                   "onehot.exactly_one | matches nothing collected here | https://example.org/2\n")
    result, rep = run(project, "adapters:Raises", extra=["--expectations", str(exp)])
    assert result.ret == 0, result.stdout.str()
    res = outcome(rep, "embedding.lookup", "adapters:Raises")
    assert res["outcome"] == "expected-failure"
    assert "the adapter cannot embed" in res["reason"] and "adapter blew up" in res["reason"]
    assert any("onehot.exactly_one" in u for u in rep["unmatched_expectations"])
    result.stdout.fnmatch_lines(["*expectation entry matched nothing*onehot.exactly_one*"])
    # skip mode: not run at all, reported as skipped
    result, rep = run(project, "adapters:Raises",
                      extra=["--expectations", str(exp), "--expectations-mode", "skip"])
    assert outcome(rep, "embedding.lookup", "adapters:Raises")["outcome"] == "skipped"


def test_stale_expectation_shows_as_passed_with_note(project):
    exp = project.path / "stale.txt"
    exp.write_text("@impl reference\nembedding.lookup | once broken | https://example.org/3\n")
    result, rep = run(project, "reference", extra=["--expectations", str(exp)])
    assert result.ret == 0
    res = outcome(rep, "embedding.lookup", "reference")
    assert res["outcome"] == "passed" and "did not occur" in res["reason"]


def test_report_header_names_implementations_and_versions(project):
    result, _ = run(project, "reference")
    result.stdout.fnmatch_lines(["conformance: implementations under test: reference",
                                 "  reference: numpy *"])


def test_xdist_workers_report_to_the_controller(project):
    pytest.importorskip("xdist")
    result, rep = run(project, "reference", "adapters:Raises", extra=["-n", "2"])
    assert result.ret == 1
    assert outcome(rep, "embedding.lookup", "adapters:Raises")["outcome"] == "failed"
    assert outcome(rep, "onehot.shape", "reference")["outcome"] == "passed"


def test_bad_max_examples_is_a_usage_error(project):
    result = project.runpytest_subprocess("--max-examples", "0")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--max-examples must be >= 1*"])


def test_adapter_writing_into_its_inputs_cannot_fool_the_spec(project):
    result, rep = run(project, "adapters:Mutates")
    assert outcome(rep, "embedding.lookup", "adapters:Mutates")["outcome"] == "failed"


def test_a_hanging_call_is_stopped_and_reported(project):
    result, rep = run(project, "adapters:Sleeps", extra=["--call-timeout", "1",
                                                         "--max-examples", "5"])
    first = outcome(rep, "embedding.lookup", "adapters:Sleeps")
    assert first["outcome"] == "failed" and "--call-timeout" in first["reason"]
    # after one call ran past the limit the implementation is not called again, so
    # Hypothesis cannot shrink through one timeout after another
    for later in ("embedding.invalid_ids", "onehot.shape"):
        res = outcome(rep, later, "adapters:Sleeps")
        assert res["outcome"] == "failed" and "an earlier call" in res["reason"], res


def test_unsupported_inside_a_probe_is_na_not_a_pass(project):
    result, rep = run(project, "adapters:OneHotOnly")
    assert outcome(rep, "embedding.invalid_ids", "adapters:OneHotOnly")["outcome"] == "n/a"
    assert outcome(rep, "onehot.shape", "adapters:OneHotOnly")["outcome"] == "passed"
    # the name the user gave is used in messages
    assert outcome(rep, "embedding.lookup", "adapters:OneHotOnly")["outcome"] == "n/a"


@pytest.mark.parametrize("text", ["embedding.lookup | no link\n", "@impl\n", "@implfoo x\n"])
def test_malformed_expectation_files_are_usage_errors(project, text):
    bad = project.path / "bad.txt"
    bad.write_text(text)
    result = project.runpytest_subprocess("--expectations", str(bad))
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*cannot read expectations*"])
    assert "Traceback" not in result.stderr.str()


def test_missing_expectation_file_is_a_usage_error(project):
    result = project.runpytest_subprocess("--expectations", "nope.txt")
    assert result.ret == 4 and "Traceback" not in result.stderr.str()


def test_replay_names_a_registered_profile_and_the_example_count(project):
    result, rep = run(project, "adapters:Raises", extra=["--max-examples", "3"])
    t = outcome(rep, "embedding.lookup", "adapters:Raises")["tests"][0]
    assert "--hypothesis-profile ci --max-examples 3" in t["replay"]
    assert t["replay"].startswith("python -m pytest '/")
    assert t["reproduce"].startswith("@reproduce_failure(")


def test_expectations_matched_on_workers_are_not_reported_unmatched(project):
    pytest.importorskip("xdist")
    exp = project.path / "departures.txt"
    exp.write_text("@impl adapters:Raises\n"
                   "embedding.lookup | the adapter cannot embed | https://example.org/1\n")
    result, rep = run(project, "adapters:Raises", extra=["-n", "2", "--expectations", str(exp)])
    assert outcome(rep, "embedding.lookup", "adapters:Raises")["outcome"] == "expected-failure"
    assert rep["unmatched_expectations"] == []


def test_version_bands_limit_expectations(project):
    import numpy

    exp = project.path / "bands.txt"
    exp.write_text(
        "@impl adapters:Raises\n"
        f"embedding.lookup | only on this numpy | https://example.org/4 | numpy=={numpy.__version__}\n"
        "onehot.shape | never on numpy 1.0 | https://example.org/5 | numpy<1.1\n")
    result, rep = run(project, "adapters:Raises", extra=["--expectations", str(exp)])
    assert outcome(rep, "embedding.lookup", "adapters:Raises")["outcome"] == "expected-failure"
    assert outcome(rep, "onehot.shape", "adapters:Raises")["outcome"] == "passed"
    assert not any("onehot.shape" in u for u in rep["unmatched_expectations"])
    bad = project.path / "badband.txt"
    bad.write_text("@impl adapters:Raises\nembedding.lookup | r | l | numpy\n")
    assert project.runpytest_subprocess("--expectations", str(bad)).ret == 4
    bad.write_text("@impl adapters:Raises\nembedding.lookup | r | l | >=3\n")  # no package
    res = project.runpytest_subprocess("--expectations", str(bad))
    assert res.ret == 4 and "names no package" in res.stderr.str()


def test_golden_option_refuses_what_is_not_a_recording(project):
    for value, says in (("", "the file name is empty"), (str(project.path / "none.json"),
                                                          "cannot read")):
        res = project.runpytest_subprocess("--golden", value)
        assert res.ret == 4 and says in res.stderr.str()
