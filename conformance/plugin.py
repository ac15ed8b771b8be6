"""The pytest plugin (entry point ``pytest11``: ``conformance``).

* ``--impl NAME`` (repeatable) parametrises every test that takes the ``impl`` fixture.
* Outcomes are recorded per claim and implementation from the test reports, so they reach
  the controller under pytest-xdist too; the controller writes the report.
* Known departures come from expectation files and become non-strict xfails (or skips).
* ``Unsupported`` raised by an adapter becomes a skip whose reason starts with ``n/a:``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path

import hypothesis
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import UnsatisfiedAssumption, Unsatisfiable

from . import claims as _claims
from . import expectations as _exp
from . import implementations as _impls
from . import report as _report

PROFILES = {
    # quick feedback while developing: random, few examples
    "dev": dict(max_examples=20),
    # CI: derandomised, so a run is reproducible from the command line alone
    "ci": dict(max_examples=40, derandomize=True, database=None),
    # nightly: many examples
    "thorough": dict(max_examples=400),
}
_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much],
               phases=tuple(Phase))
for _name, _kw in PROFILES.items():
    settings.register_profile(_name, **{**_COMMON, **_kw})

NA_PREFIX = "n/a: "
_STASH_STATE = pytest.StashKey["State"]()
_STASH_REPORT = pytest.StashKey[dict]()


class _Notes:
    items: list[str] = []
    unsupported: list[str] = []


def note(text: str) -> None:
    """Record an observation for the current test (shown in the report, e.g. what an
    implementation does with invalid input)."""
    if text not in _Notes.items:
        _Notes.items.append(text)


def not_applicable(reason: str) -> None:
    """End this example (and, if no example applies, the test) as n/a: for a spec that finds
    out by itself that the implementation cannot express what it checks."""
    if reason not in _Notes.unsupported:
        _Notes.unsupported.append(reason)
    if hypothesis.currently_in_test_context():
        hypothesis.reject()
    pytest.skip(NA_PREFIX + reason)


def _copy(value):
    """A private copy of an argument, so an adapter that writes into its inputs cannot
    change what the spec compares against."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value


class CallTimeout(Exception):
    """An implementation call ran past the per-call time limit."""


def _timeout(message: str):
    # one place that raises: Hypothesis tells failures apart by where they were raised,
    # and a timed-out call and the later calls refused because of it are one failure
    raise CallTimeout(message)


def _on_alarm():
    _timeout(f"the call ran past the limit of {Guard.time_limit:g} s (--call-timeout)")


def is_control_exception(exc: BaseException) -> bool:
    """Exceptions that steer the run (n/a, Hypothesis rejections, timeouts) and that a spec
    probing for 'does it raise?' must let through."""
    return isinstance(exc, (_impls.Unsupported, UnsatisfiedAssumption, CallTimeout))


class Guard:
    """Wraps an implementation: hands it copies of its inputs, times its calls, stops a
    call that runs past the time limit, turns Unsupported into n/a."""

    seconds = 0.0
    time_limit = 0.0  # seconds; 0 disables the limit
    unsupported_passes = 0  # > 0: Unsupported reaches the caller (see unsupported_passes_through)
    # implementations with a call that ran past the limit, and which call: they are not
    # called again in this process (Hypothesis would otherwise replay and shrink through
    # one timed-out call after another, and a hanging adapter would hold the run for hours)
    timed_out: dict = {}

    def __init__(self, impl, name: str):
        self._impl = impl
        self.name = name

    def __getattr__(self, attr):
        value = getattr(self._impl, attr)
        if not callable(value) or attr.startswith("_"):
            return value

        def call(*args, **kwargs):
            if self.name in Guard.timed_out:
                _timeout(f"{attr} not called: an earlier call of {self.name} "
                         f"({Guard.timed_out[self.name]}) ran past the limit of "
                         f"{Guard.time_limit:g} s (--call-timeout)")
            args, kwargs = _copy(args), _copy(kwargs)
            t0 = time.perf_counter()
            try:
                with _impls.time_limit(Guard.time_limit, _on_alarm):
                    return value(*args, **kwargs)
            except CallTimeout:
                Guard.timed_out.setdefault(self.name, attr)
                raise
            except _impls.Unsupported as exc:
                if Guard.unsupported_passes:
                    raise
                if exc.reason not in _Notes.unsupported:
                    _Notes.unsupported.append(exc.reason)
                if hypothesis.currently_in_test_context():
                    # this configuration only: Hypothesis draws others; if none is
                    # supported the test ends Unsatisfiable, which the report shows as n/a
                    hypothesis.reject()
                pytest.skip(NA_PREFIX + exc.reason)
            finally:
                Guard.seconds += time.perf_counter() - t0

        return call

    def __repr__(self):
        return f"<implementation {self.name}>"


@contextlib.contextmanager
def unsupported_passes_through():
    """Within this block an implementation's ``Unsupported`` reaches the caller instead of
    making the test n/a: for specs that sweep many configurations and record what cannot be
    expressed as a result of its own (the golden cases)."""
    Guard.unsupported_passes += 1
    try:
        yield
    finally:
        Guard.unsupported_passes -= 1


class State:
    def __init__(self, config):
        self.config = config
        requested = config.getoption("conformance_impl") or ["reference"]
        self.max_examples = config.getoption("conformance_max_examples")
        self.profile = ""
        names = []
        for n in requested:
            for part in n.split(","):
                part = _impls.canonical_name(part.strip())
                if part and part not in names:
                    names.append(part)
        self.names = names
        self.loaded: dict = {}
        self.errors: dict[str, str] = {}
        self.records: list[dict] = []
        self.expectations: list[_exp.Expectation] = []
        self.used: set[str] = set()
        self.mode = config.getoption("conformance_expectations_mode")
        for n in names:
            self.expectations += _exp.builtin(n)
        for f in config.getoption("conformance_expectations") or []:
            self.expectations += _exp.load_file(f, user=True)

    def get(self, name: str):
        if name not in self.loaded and name not in self.errors:
            try:
                self.loaded[name] = Guard(_impls.load(name), name)
            except _impls.ImplementationUnavailable as exc:
                self.errors[name] = str(exc)
        if name in self.errors:
            return None
        return self.loaded[name]

    def versions(self, name: str) -> dict:
        impl = self.get(name)
        if impl is None:
            return {}
        try:
            return {str(k): str(v) for k, v in dict(impl._impl.versions()).items()}
        except Exception as exc:  # never let a broken adapter take the run down
            return {"error": f"versions() raised {type(exc).__name__}: {exc}"}


def _state(config) -> State:
    return config.stash[_STASH_STATE]


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


# --------------------------------------------------------------------------- options


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "sequence-layer conformance suite")
    group.addoption("--impl", action="append", dest="conformance_impl", metavar="NAME",
                    help="implementation under test (repeatable; registered name, "
                         "'keras' for this process's backend, or package.module:attr); "
                         "default: reference")
    group.addoption("--report", dest="conformance_report", metavar="DIR",
                    help="write report.md and report.json into DIR")
    group.addoption("--max-examples", dest="conformance_max_examples", type=int,
                    metavar="N", help="override the Hypothesis profile's max_examples")
    group.addoption("--expectations", action="append", dest="conformance_expectations",
                    metavar="FILE", help="extra expectation file (repeatable)")
    group.addoption("--expectations-mode", dest="conformance_expectations_mode",
                    choices=("xfail", "skip", "ignore"), default="xfail",
                    help="how expected departures run: xfail (run, non-strict; default), "
                         "skip (do not run), ignore (treat as ordinary tests)")
    group.addoption("--call-timeout", dest="conformance_call_timeout", type=float,
                    default=120.0, metavar="SECONDS",
                    help="fail a call into an implementation that runs longer than this "
                         "(default 120; 0 disables; Python code only, main thread only)")
    group.addoption("--golden", dest="conformance_golden", metavar="FILE",
                    help="a golden recording (conformance record) to compare every "
                         "implementation under test with in claim version.golden, instead "
                         "of the committed recording of the same implementation")
    group.addoption("--no-matrix", dest="conformance_no_matrix", action="store_true",
                    help="do not print the matrix at the end (the report is still written)")


def pytest_configure(config):
    config.addinivalue_line("markers", f"{_claims.MARKER}(id): the claim a test checks")
    if config.getoption("conformance_max_examples") is not None and \
            config.getoption("conformance_max_examples") < 1:
        raise pytest.UsageError("--max-examples must be >= 1")
    timeout = config.getoption("conformance_call_timeout")
    if timeout is not None and timeout < 0:
        raise pytest.UsageError("--call-timeout must be >= 0")
    Guard.time_limit = timeout or 0.0
    try:
        config.stash[_STASH_STATE] = State(config)
    except (OSError, UnicodeDecodeError, _exp.ExpectationError) as exc:
        raise pytest.UsageError(f"conformance: cannot read expectations: {exc}") from None
    if not config.stash[_STASH_STATE].names:
        raise pytest.UsageError("--impl: no implementation named")
    golden_file = config.getoption("conformance_golden")
    if golden_file is not None:
        if not golden_file.strip():
            raise pytest.UsageError("--golden: the file name is empty")
        from . import golden

        try:
            golden.read(golden_file)
        except OSError as exc:
            raise pytest.UsageError(f"--golden: cannot read {golden_file}: "
                                    f"{exc.strerror or exc}") from None
        except (golden.NotARecording, UnicodeDecodeError) as exc:
            raise pytest.UsageError(f"--golden: {golden_file}: {exc}") from None
    config.pluginmanager.register(Recorder(config), "conformance-recorder")


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    config = session.config
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile("ci" if os.environ.get("CI") else "dev")
    _state(config).profile = current_profile_name()
    n = config.getoption("conformance_max_examples")
    if n is not None:
        settings.register_profile("conformance-override", settings(max_examples=n))
        settings.load_profile("conformance-override")


def current_profile_name() -> str:
    return getattr(settings, "_current_profile", "") or ""


def pytest_report_header(config):
    if _is_worker(config) or not config.getoption("conformance_impl"):
        return None
    st = _state(config)
    lines = [f"conformance: implementations under test: {', '.join(st.names)}"]
    for n in st.names:
        v = st.versions(n)
        if n in st.errors:
            lines.append(f"  {n}: UNAVAILABLE: {st.errors[n]}")
        else:
            lines.append(f"  {n}: " + (", ".join(f"{k} {x}" for k, x in v.items()) or "-"))
    return lines


# --------------------------------------------------------------------------- parametrise


def _parametrizes_impl(metafunc) -> bool:
    for m in metafunc.definition.iter_markers("parametrize"):
        names = m.args[0] if m.args else ""
        names = names.split(",") if isinstance(names, str) else list(names)
        if "impl" in (n.strip() for n in names):
            return True
    return False


def pytest_generate_tests(metafunc):
    # a test that parametrizes its own ``impl`` argument keeps it
    if "impl" in metafunc.fixturenames and not _parametrizes_impl(metafunc):
        names = _state(metafunc.config).names
        metafunc.parametrize("impl", names, ids=names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def golden_baseline(request):
    """The recording given with --golden (a path), or None."""
    return request.config.getoption("conformance_golden")


@pytest.fixture(scope="session")
def impl(request):
    """The implementation under test (parametrised by --impl)."""
    st = _state(request.config)
    guard = st.get(request.param)
    if guard is None:
        pytest.skip(f"implementation {request.param} unavailable: {st.errors[request.param]}")
    return guard


def _claim_of(item):
    m = item.get_closest_marker(_claims.MARKER)
    return m.args[0] if m and m.args else None


def _impl_of(item):
    cs = getattr(item, "callspec", None)
    return cs.params.get("impl") if cs else None


def pytest_collection_modifyitems(session, config, items):
    st = _state(config)
    if st.mode == "ignore":
        return
    for item in items:
        cid, name = _claim_of(item), _impl_of(item)
        if not cid or not name:
            continue
        test = getattr(item, "originalname", item.name)
        for e in st.expectations:
            if e.matches(name, cid, test) and e.applies_to(st.versions(name)):
                st.used.add(e.origin)
                item._conformance_expectation = e.origin
                reason = f"expected departure: {e.reason} ({e.link}) [{e.origin}]"
                if st.mode == "skip":
                    item.add_marker(pytest.mark.skip(reason=reason))
                else:
                    item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
                break


def pytest_runtest_setup(item):
    _Notes.items = []
    _Notes.unsupported = []
    item._conformance_t0 = Guard.seconds


_FALSIFYING = re.compile(
    r"((?:Falsifying (?:explicit )?example|Failing test case):.*?)"
    r"(?=\n\s*\n|\nYou can reproduce|\Z)", re.S)
_BLOB = re.compile(r"@reproduce_failure\([^)]*\)")
_E_PREFIX = re.compile(r"^E {0,7}", re.M)


def _failure_details(text: str) -> tuple[str, str]:
    """The falsifying example Hypothesis printed (pytest's 'E' margin removed) and the
    reproduce_failure decorator, if any."""
    clean = _E_PREFIX.sub("", text)
    m = _FALSIFYING.search(clean)
    example = m.group(1).split("\nExplanation:")[0].strip() if m else ""
    b = _BLOB.search(clean)
    return example, (b.group(0) if b else "")


def _reason_line(rep) -> str:
    lr = rep.longrepr
    if lr is None:
        return ""
    if isinstance(lr, tuple):  # skip: (file, line, reason)
        return _report.one_line(lr[2])
    crash = getattr(getattr(lr, "reprcrash", None), "message", None)
    if crash:
        # the first line carries the assertion message; Hypothesis appends its own lines
        return _report.one_line(crash.strip().split("\n")[0])
    return _report.one_line(str(lr).strip().splitlines()[-1] if str(lr).strip() else "")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    cid, name = _claim_of(item), _impl_of(item)
    if not cid or not name:
        return
    if rep.when == "call" and _Notes.unsupported:
        if rep.failed and call.excinfo is not None and \
                call.excinfo.errisinstance(Unsatisfiable):
            # every configuration drawn was one the implementation cannot express
            rep.outcome = "skipped"
            rep.longrepr = (str(item.path), 0, NA_PREFIX + "; ".join(_Notes.unsupported))
        elif rep.passed:
            note("n/a for some configurations: " + "; ".join(_Notes.unsupported))
    if rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed"):
        props = {"claim": cid, "impl": name, "test": getattr(item, "originalname", item.name),
                 "nodeid": item.nodeid, "path": str(item.path), "name": item.name,
                 "expectation": getattr(item, "_conformance_expectation", ""),
                 "notes": list(_Notes.items),
                 "impl_seconds": Guard.seconds - getattr(item, "_conformance_t0", Guard.seconds)}
        if rep.failed:
            text = rep.longreprtext
            props["example"], props["blob"] = _failure_details(text)
        rep.user_properties.append(("conformance", json.dumps(props)))


def _record_from_report(config, rep) -> dict | None:
    props = next((json.loads(v) for k, v in rep.user_properties if k == "conformance"), None)
    if props is None:
        return None
    reason = _reason_line(rep)
    if hasattr(rep, "wasxfail"):
        if rep.skipped:
            outcome, reason = "expected-failure", f"{rep.wasxfail} | observed: {reason}"
        else:
            outcome, reason = "passed", f"expected departure did not occur ({rep.wasxfail})"
    elif rep.skipped:
        if reason.startswith("Skipped: "):
            reason = reason[len("Skipped: "):]
        if reason.startswith(NA_PREFIX):
            outcome, reason = "n/a", reason[len(NA_PREFIX):]
        else:
            outcome = "skipped"
    elif rep.failed:
        outcome = "failed"
    else:
        outcome, reason = "passed", ""
    if props["notes"] and outcome == "passed":
        # notes describe passing behaviour; on a failure the assertion says what happened
        reason = "; ".join(filter(None, [reason] + props["notes"]))
    st = _state(config)
    if props.get("expectation"):
        st.used.add(props["expectation"])  # under xdist, matching happened on a worker
    replay = ""
    if outcome == "failed":
        replay = (f"python -m pytest '{props['path']}::{props['name']}' --impl {props['impl']} "
                  f"--hypothesis-profile {st.profile or 'ci'}")
        if st.max_examples:
            replay += f" --max-examples {st.max_examples}"
    return {"claim": props["claim"], "impl": props["impl"], "test": props["test"],
            "outcome": outcome, "reason": reason,
            "falsifying_example": props.get("example", ""), "replay": replay,
            "reproduce": props.get("blob", "") if outcome == "failed" else "",
            "impl_seconds": props.get("impl_seconds", 0.0)}


def build_report(config) -> dict:
    st = _state(config)
    seen = {r["impl"] for r in st.records}
    impls = {}
    for n in st.names:
        if n in st.errors or st.get(n) is None:
            impls[n] = {"status": "unavailable", "versions": {}, "error": st.errors.get(n, "")}
        else:
            impls[n] = {"status": "ok", "versions": st.versions(n)}
    for n in seen - set(impls):
        impls[n] = {"status": "ok", "versions": {}}
    unmatched = [f"{e.origin} {e.key}" + ("" if e.impl in st.names else
                                          f" (for {e.impl}, which is not under test)")
                 for e in st.expectations
                 if e.origin not in st.used and (e.impl in st.names or e.user)
                 and (e.impl not in st.names or e.applies_to(st.versions(e.impl)))]
    if not st.records:
        unmatched = []  # nothing collected (e.g. a run over tests/ only): nothing to judge
    return _report.build(st.records, impls, profile=current_profile_name(),
                         unmatched=unmatched)


class Recorder:
    """Per-config hooks: collect records on the controller, write and print the report."""

    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report):
        if _is_worker(self.config):
            return
        rec = _record_from_report(self.config, report)
        if rec is not None:
            _state(self.config).records.append(rec)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        config = self.config
        if _is_worker(config):
            return
        st = _state(config)
        if not st.records and not st.errors:
            return
        rep = build_report(config)
        if int(exitstatus) not in (0, 1):
            rep["incomplete"] = [f"pytest stopped with exit status {int(exitstatus)} "
                                 f"before every test had run"]
        config.stash[_STASH_REPORT] = rep
        folder = config.getoption("conformance_report")
        if folder:
            _report.write(rep, folder)
        if st.errors and session.exitstatus == 0:
            session.exitstatus = 1

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        rep = config.stash.get(_STASH_REPORT, None)
        if rep is None or config.getoption("conformance_no_matrix"):
            return
        terminalreporter.section("conformance")
        for line in _report.render_terminal(rep).splitlines():
            terminalreporter.write_line(line)
        for n, err in _state(config).errors.items():
            terminalreporter.write_line(f"implementation {n} could not be loaded: {err}")
        folder = config.getoption("conformance_report")
        if folder:
            terminalreporter.write_line(f"report written to {Path(folder) / 'report.md'} "
                                        f"and report.json")
