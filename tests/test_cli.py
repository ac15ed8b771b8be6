"""The conformance command."""

import json
import os
import subprocess
import sys

import pytest

from conformance import cli, report
from conformance.claims import CLAIMS

from .conftest import ROOT


def conformance(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=900)


def test_list_shows_every_claim_with_kind_and_source(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for c in CLAIMS.values():
        assert c.id in out
    assert "rnn.causal" in out and "exact" in out and "tutorial:" in out


def test_list_impls_and_show(capsys):
    assert cli.main(["list", "--impls"]) == 0
    assert "reference" in capsys.readouterr().out
    assert cli.main(["show", "embedding.lookup"]) == 0
    out = capsys.readouterr().out
    assert "test_embedding.py::test_embedding_is_a_row_lookup" in out
    assert cli.main(["show", "no.such.claim"]) == 2


def test_processes_are_grouped_by_keras_backend():
    groups = cli.group_by_process(["reference", "keras-tensorflow", "x.y:z"])
    assert groups == [({"KERAS_BACKEND": "tensorflow"}, ["reference", "x.y:z",
                                                         "keras-tensorflow"])]
    assert cli.group_by_process(["reference"]) == [({}, ["reference"])]
    groups = cli.group_by_process(["keras-tensorflow", "torch", "keras-jax", "flax",
                                   "keras-torch", "onnxruntime", "tf-keras"])
    assert [members for _, members in groups] == [
        ["onnxruntime", "keras-tensorflow"], ["torch", "keras-torch"], ["keras-jax", "flax"],
        ["tf-keras"]]


def test_run_on_an_outside_adapter_writes_the_report(tmp_path):
    (tmp_path / "outside.py").write_text(
        "from conformance.implementations.reference import ReferenceImplementation\n"
        "adapter = ReferenceImplementation()\n")
    env_path = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "run", "--impl", "outside:adapter",
         "--max-examples", "5", "--report", "out"], cwd=tmp_path, capture_output=True,
        text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), env_path])),
        timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rep = report.read(tmp_path / "out" / "report.json")
    assert list(rep["implementations"]) == ["outside:adapter"]
    outcomes = {c["id"]: c["results"]["outside:adapter"] for c in rep["claims"]}
    # the reference has no compiled path and nothing to save, and no recording of it is
    # committed: those three claims are n/a, with the reason; every other claim passes
    not_applicable = {"rnn.compiled_equals_eager", "layer.config_roundtrip", "version.golden"}
    assert {k for k, r in outcomes.items() if r["outcome"] == "n/a"} == not_applicable
    assert all("offers no" in outcomes[k]["reason"] for k in not_applicable - {"version.golden"})
    assert "no golden recording" in outcomes["version.golden"]["reason"]
    assert {r["outcome"] for k, r in outcomes.items() if k not in not_applicable} == {"passed"}
    assert (tmp_path / "out" / "report.md").read_text().startswith("# Conformance report")
    assert "conformance matrix" in proc.stdout


def test_run_with_an_unknown_implementation_fails_readably(tmp_path):
    proc = conformance("run", "--impl", "reference", "--impl", "nonesuch",
                       "--max-examples", "3", cwd=tmp_path)
    assert proc.returncode == 1
    assert "(unavailable: unknown implementation 'nonesuch'" in proc.stdout
    rep = json.loads((tmp_path / "conformance-report" / "report.json").read_text())
    assert rep["implementations"]["reference"]["status"] == "ok"


def test_run_on_a_broken_implementation_exits_1(tmp_path):
    proc = conformance("run", "--impl", "tests.broken:SwappedLSTMGates", "--max-examples",
                       "10", "--report", str(tmp_path / "r"), cwd=ROOT)
    assert proc.returncode == 1
    rep = report.read(tmp_path / "r" / "report.json")
    res = next(c for c in rep["claims"] if c["id"] == "lstm.recurrence")
    assert res["results"]["tests.broken:SwappedLSTMGates"]["outcome"] == "failed"


@pytest.mark.parametrize("name,framework", [("keras-tensorflow", "tensorflow"),
                                             ("torch", "torch"),
                                             ("onnxruntime", "onnxruntime")])
def test_real_framework_end_to_end(tmp_path, name, framework):
    """The main job on a real framework: every claim passes, is an expected departure with
    its reason, or is n/a with its reason (few examples here; `conformance run` uses the
    ci profile)."""
    pytest.importorskip(framework)
    proc = conformance("run", "--impl", name, "--max-examples", "8",
                       "--report", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    rep = report.read(tmp_path / "r" / "report.json")
    outcomes = {c["id"]: c["results"][name] for c in rep["claims"]}
    in_scope = {c.id for c in CLAIMS.values() if c.section in "ABCDE"} - {
        "distributional.context_similarity", "rnn.sequential_cost"}
    assert in_scope <= set(outcomes)
    for cid, res in outcomes.items():
        assert res["outcome"] in ("passed", "expected-failure", "n/a"), (cid, res)
        if res["outcome"] == "expected-failure":
            assert "expected departure:" in res["reason"]
        if res["outcome"] == "n/a":
            assert res["reason"]
    if name == "keras-tensorflow":  # Keras is what the claims are stated against
        assert not [c for c, r in outcomes.items() if r["outcome"] == "n/a"]


def test_versions_command_reads_report_folders_and_refuses_bad_input(tmp_path, capsys):
    for name, tf in (("tf215", "2.15.1"), ("tf221", "2.21.0")):
        rep = report.build([{"claim": "rnn.causal", "impl": "keras-tensorflow",
                             "test": "test_rnn_causal", "outcome": "passed", "reason": ""}],
                           {"keras-tensorflow": {"status": "ok",
                                                 "versions": {"tensorflow": tf}}})
        report.write(rep, tmp_path / name)
    assert cli.main(["versions", str(tmp_path / "tf215"),
                     str(tmp_path / "tf221" / "report.json")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "| claim | TF 2.15.1 | TF 2.21.0 |"
    assert "| `rnn.causal` | pass | pass |" in out
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    good = json.loads((tmp_path / "tf215" / "report.json").read_text())
    damaged = {"no-claims.json": dict(good, claims=None),
               "odd-outcome.json": dict(good, claims=[dict(good["claims"][0], results={
                   "keras-tensorflow": {"outcome": "weird", "tests": []}})]),
               "no-status.json": dict(good, implementations={"keras-tensorflow": "ok"})}
    for name, rep in damaged.items():
        (tmp_path / name).write_text(json.dumps(rep))
    for bad, says in ((tmp_path / "missing", "cannot read"), (tmp_path / "junk.json", "not JSON"),
                      (tmp_path / "other.json", "is not a conformance report"),
                      (tmp_path / "no-claims.json", "'claims' is not a list"),
                      (tmp_path / "odd-outcome.json", "has no known outcome"),
                      (tmp_path / "no-status.json", "has no status")):
        assert cli.main(["versions", str(bad)]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1
    assert cli.main(["versions", "--impl", "torch", str(tmp_path / "tf215")]) == 2
    assert "no implementation 'torch'" in capsys.readouterr().err
