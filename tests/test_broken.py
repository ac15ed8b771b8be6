"""Every broken implementation in tests/broken.py is caught by the claims it breaks,
within the default (ci) profile.  All run in one pytest-xdist session, which also checks
that outcomes recorded on workers reach the report."""

import json

import pytest

from . import broken


@pytest.fixture(scope="module")
def broken_report(tmp_path_factory):
    from .conftest import run_specs

    from conformance import golden
    from conformance.implementations.reference import ReferenceImplementation

    out = tmp_path_factory.mktemp("broken")
    # every broken implementation is the reference with one bug: the reference's own
    # recording is the "before the upgrade" that claim version.golden compares them with
    baseline = golden.write(golden.record(ReferenceImplementation()), out / "reference.json")
    args = ["-n", "2", "--hypothesis-profile", "ci", "--report", str(out),
            "--golden", str(baseline)]
    for name in broken.CATCHES:
        args += ["--impl", f"tests.broken:{name}"]
    proc = run_specs(*args)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("name", sorted(broken.CATCHES))
def test_broken_implementation_is_caught(broken_report, name):
    impl = f"tests.broken:{name}"
    assert broken_report["implementations"][impl]["status"] == "ok"
    failed = {c["id"] for c in broken_report["claims"]
              if c["results"].get(impl, {}).get("outcome") == "failed"}
    missing = broken.CATCHES[name] - failed
    assert not missing, f"{name} was not caught by {sorted(missing)}; it failed {sorted(failed)}"
    if name in broken.TARGETED:
        stray = failed - broken.CATCHES[name] - broken.ANYWHERE
        assert not stray, f"{name}, a bug of one option, also failed {sorted(stray)}"
    for c in broken_report["claims"]:
        res = c["results"].get(impl)
        if res and res["outcome"] == "failed":
            t = next(t for t in res["tests"] if t["outcome"] == "failed")
            assert t["replay"].startswith("python -m pytest ") and "--impl" in t["replay"]


def test_every_claim_in_scope_has_a_broken_implementation():
    caught = set().union(*broken.CATCHES.values())
    from conformance.claims import CLAIMS

    from conformance.cli import _tests_for

    specified = {c for c in CLAIMS if _tests_for(c)}
    assert specified - caught == set(), "claims with specs but no broken implementation"


@pytest.mark.parametrize("name", sorted(__import__("tests.broken_adapters",
                                                   fromlist=["CATCHES"]).CATCHES))
def test_broken_weight_conversion_is_caught(name, tmp_path):
    """Adapters for real frameworks with one conversion bug (gate order, transpose)."""
    from . import broken_adapters
    from .conftest import run_specs

    framework, expected = broken_adapters.CATCHES[name]
    pytest.importorskip(framework)
    modules = {"gru": "test_gru.py", "lstm": "test_lstm.py", "dense": "test_embedding.py",
               "embedding": "test_embedding.py"}
    files = sorted({modules[c.split(".")[0]] for c in expected})
    from .conftest import ROOT

    proc = run_specs("--impl", f"tests.broken_adapters:{name}", "--hypothesis-profile", "ci",
                     "--report", str(tmp_path), paths=[ROOT / "specs" / f for f in files])
    rep = json.loads((tmp_path / "report.json").read_text())
    impl = f"tests.broken_adapters:{name}"
    failed = {c["id"] for c in rep["claims"] if c["results"][impl]["outcome"] == "failed"}
    assert expected <= failed, (expected - failed, proc.stdout[-2000:])
