"""The ``conformance`` command.

    conformance run [--impl NAME ...] [--profile dev|ci|thorough] [--report DIR]
                    [--max-examples N] [-n N] [-- PYTEST_ARGS...]
    conformance list [--impls]
    conformance show CLAIM_ID
    conformance record --impl NAME [--out FILE]
    conformance diff A (B | --impl NAME) [--expectations FILE ...] [--changes FILE ...]
    conformance versions [--impl NAME] REPORT...

``run`` groups the implementations into processes by the environment they need (Keras
picks its backend once per process), runs the specs in each with pytest, and merges their
reports into one matrix.  Its exit status is 0 when nothing failed unexpectedly, 1 when a
claim failed or an implementation could not be loaded, 2 on a usage or internal error.

``record`` runs the golden cases of :mod:`conformance.golden` on one implementation, in a
child process with the environment that implementation needs, and writes the recording.
``diff`` compares two recordings (or a recording with the installed implementation, recorded
on the spot) claim by claim: exit 0 when nothing changed or every change is explained, 1 when
a change is unexplained, 2 on a usage error.
``versions`` lays the reports of several runs side by side for one implementation: the
version table of the README comes from the reports that ``tox -m tensorflow`` writes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from . import claims as _claims
from . import implementations as _impls
from . import report as _report


def specs_dir() -> Path:
    spec = importlib.util.find_spec("conformance.specs")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    here = Path(__file__).resolve().parent.parent / "specs"
    if here.is_dir():
        return here
    raise SystemExit("conformance: cannot find the specs (is the package installed?)")


def group_by_process(names: list[str]) -> list[tuple[dict, list[str]]]:
    """Implementations that need the same environment share a process; those that need
    none join the first group."""
    groups: list[tuple[dict, list[str]]] = []
    free = []
    for n in names:
        env = _impls.process_env(n)
        if not env:
            free.append(n)
            continue
        for g_env, members in groups:
            if g_env == env:
                members.append(n)
                break
        else:
            groups.append((env, [n]))
    if not groups:
        return [({}, free)] if free else []
    groups[0][1][:0] = free
    return groups


def _pytest_cmd(names, args, report_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", str(specs_dir()), "-q", "-p", "no:cacheprovider",
           "--hypothesis-profile", args.profile, "--report", str(report_dir), "--no-matrix",
           "--rootdir", str(specs_dir().parent)]
    for n in names:
        cmd += ["--impl", n]
    if args.max_examples:
        cmd += ["--max-examples", str(args.max_examples)]
    if args.workers:
        cmd += ["-n", str(args.workers)]
    return cmd + list(args.pytest_args)


def cmd_run(args) -> int:
    names = []
    for n in args.impl or []:
        names += [p.strip() for p in n.split(",") if p.strip()]
    if args.impl and not names:
        print("conformance: --impl names no implementation", file=sys.stderr)
        return 2
    if not names or "all" in names:
        names = [n for n in names if n != "all"]
        names += [n for n in _impls.installed() if n not in names]
    folder = Path(args.report)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".conformance-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        print(f"conformance: cannot write the report folder {folder}: {exc}", file=sys.stderr)
        return 2
    names = list(dict.fromkeys(_impls.canonical_name(n) for n in names))
    groups = group_by_process(names)
    print(f"conformance: running {', '.join(names)} in {len(groups)} process(es), "
          f"profile {args.profile}", flush=True)
    reports = []
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        for i, (env, members) in enumerate(groups):
            out = Path(tmp) / f"group{i}"
            cmd = _pytest_cmd(members, args, out)
            proc_env = dict(os.environ, **env)
            label = " ".join(f"{k}={v}" for k, v in env.items())
            print(f"conformance: process {i + 1}: {', '.join(members)}"
                  + (f" ({label})" if label else ""), flush=True)
            rc = subprocess.call(cmd, env=proc_env)
            js = out / "report.json"
            if js.exists():
                rep = _report.read(js)
                if rc not in (0, 1):
                    # interrupted, internal error or usage error: what ran is kept, but the
                    # run is incomplete and must not pass
                    rep.setdefault("incomplete", []).append(
                        f"process {i + 1} ({', '.join(members)}) stopped with pytest exit "
                        f"status {rc}")
                reports.append(rep)
            else:
                reports.append(_unavailable_report(
                    members, f"the pytest process exited with status {rc} without a report "
                             f"(see its output above)"))
    merged = _report.merge(reports)
    paths = _report.write(merged, folder)
    print()
    print(_report.render_terminal(merged))
    print(f"\nreport: {paths[0]} and {paths[1]}")
    return 1 if _report.exit_failed(merged) else 0


def _unavailable_report(names, why) -> dict:
    impls = {n: {"status": "unavailable", "versions": {}, "error": why} for n in names}
    return _report.build([], impls)


def cmd_list(args) -> int:
    if args.impls:
        have = set(_impls.installed())
        for name, reg in _impls.REGISTRY.items():
            status = "installed" if name in have else \
                f"not installed: needs {', '.join(_impls.missing_requirements(name))}" \
                f" ({reg.install})"
            print(f"{name:20} {reg.description} [{status}]")
        for name, target in _impls.entry_points().items():
            print(f"{name:20} entry point {target}")
        return 0
    width = max(len(c) for c in _claims.CLAIMS)
    specified = {c for c in _claims.CLAIMS if _tests_for(c)}
    print(f"{'claim':{width}}  {'kind':12} sec  tested  source")
    for c in _claims.CLAIMS.values():
        mark = "yes" if c.id in specified else "-"
        print(f"{c.id:{width}}  {c.kind:12} {c.section}    {mark:6}  {c.source}")
    print("\nsections: " + "; ".join(f"{k} {v}" for k, v in _claims.SECTIONS.items()))
    print(f"{len(specified)} of {len(_claims.CLAIMS)} claims have tests.  A source says "
          f"whether a claim comes from the tutorial the project grew from (tutorial: its "
          f"section) or from documented Keras behaviour (keras: the argument).")
    return 0


def _tests_for(claim_id: str) -> list[str]:
    found = []
    for path in sorted(specs_dir().glob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        # decorators may span lines: look for the first def after each claim marker
        for m in re.finditer(r'@claim\("' + re.escape(claim_id) + r'"\)', text):
            d = re.search(r"^def (\w+)", text[m.end():], re.M)
            if d:
                found.append(f"{path.name}::{d.group(1)}")
    return found


def cmd_show(args) -> int:
    try:
        c = _claims.get(args.claim)
    except KeyError as exc:
        print(f"conformance: {exc.args[0]}", file=sys.stderr)
        return 2
    print(f"{c.id} ({c.kind}, section {c.section}: {_claims.SECTIONS[c.section]})")
    print(f"  {c.statement}")
    print(f"  source: {c.source}")
    tests = _tests_for(c.id)
    print("  tests: " + (", ".join(tests) if tests else "none yet"))
    return 0


def _record_to(name: str, out: Path | None, *, quiet: bool = False) -> int:
    """Record ``name`` in a child process with the environment it needs (Keras picks its
    backend once per process; tf-keras needs TF_USE_LEGACY_KERAS=1).  Without ``out`` the
    child picks the default name, which holds versions only it knows.  ``quiet``: the
    child's own output goes to stderr (``diff --impl`` keeps stdout for the diff)."""
    name = _impls.canonical_name(name)
    env = dict(os.environ, **_impls.process_env(name))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [sys.executable, "-m", "conformance.golden", "--impl", name]
    if out is not None:
        cmd += ["--out", str(out)]
    sys.stdout.flush()
    if not quiet:
        return subprocess.call(cmd, env=env)
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    sys.stderr.write(proc.stdout)
    return proc.returncode


def cmd_record(args) -> int:
    return _record_to(args.impl, Path(args.out) if args.out else None)


def _read_recording(path: str):
    from . import golden

    try:
        return golden.read(path)
    except OSError as exc:
        print(f"conformance diff: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
    except (golden.NotARecording, UnicodeDecodeError) as exc:
        print(f"conformance diff: {path}: {exc}", file=sys.stderr)
    return None


def cmd_diff(args) -> int:
    from . import expectations as _exp
    from . import golden

    if (args.b is None) == (args.impl is None):
        print("conformance diff: give a second recording B or --impl NAME (one of them)",
              file=sys.stderr)
        return 2
    a = _read_recording(args.a)
    if a is None:
        return 2
    try:
        extra = [e for f in args.expectations or [] for e in _exp.load_file(f, user=True)]
        changes = golden.builtin_changes() + [e for f in args.changes or []
                                              for e in golden.load_changes(f)]
    except (OSError, UnicodeDecodeError, _exp.ExpectationError) as exc:
        print(f"conformance diff: cannot read expectations: {exc}", file=sys.stderr)
        return 2
    if args.b is not None:
        b = _read_recording(args.b)
        if b is None:
            return 2
    else:
        with tempfile.TemporaryDirectory(prefix="conformance-golden-") as tmp:
            out = Path(tmp) / "recording.json"
            rc = _record_to(args.impl, out, quiet=True)
            if rc != 0 or not out.exists():
                print(f"conformance diff: recording {args.impl} failed (exit status {rc})",
                      file=sys.stderr)
                return 2
            b = _read_recording(str(out))
            if b is None:
                return 2
    departures = golden.builtin_expectations(a, b) + extra
    result = golden.diff(a, b, departures, changes=changes)
    print(result.render(verbose=args.verbose))
    return result.exit_status


def cmd_versions(args) -> int:
    """One implementation across the reports of several runs (e.g. one per TensorFlow)."""
    reports = []
    for p in args.reports:
        path = Path(p)
        if path.is_dir():
            path = path / "report.json"
        try:
            rep = _report.read(path)
        except OSError as exc:
            print(f"conformance versions: cannot read {path}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError among them
            print(f"conformance versions: {path} is not JSON: {exc}", file=sys.stderr)
            return 2
        try:
            _report.check(rep, str(path))
        except ValueError as exc:
            print(f"conformance versions: {exc}", file=sys.stderr)
            return 2
        reports.append((p, rep))
    try:
        print(_report.render_versions(reports, args.impl))
    except ValueError as exc:
        print(f"conformance versions: {exc}", file=sys.stderr)
        return 2
    return 0


def _workers(text: str) -> str:
    if text in ("auto", "logical") or (text.isdigit() and int(text) >= 0):
        return text
    raise argparse.ArgumentTypeError(f"expected a number of workers or 'auto', got {text!r}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="conformance",
        description="Run the conformance specs on implementations of one-hot, Dense, "
                    "Embedding, SimpleRNN, LSTM and GRU layers, and report claim by claim.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the specs on implementations and write the report")
    r.add_argument("--impl", action="append", metavar="NAME",
                   help="implementation (repeatable; default: every installed one; 'all')")
    r.add_argument("--profile", default="ci", choices=("dev", "ci", "thorough"),
                   help="Hypothesis profile (default: ci, derandomised)")
    r.add_argument("--report", default="conformance-report", metavar="DIR",
                   help="report folder (default: conformance-report)")
    r.add_argument("--max-examples", type=int, metavar="N",
                   help="override the profile's number of examples per property")
    r.add_argument("-n", dest="workers", metavar="N", type=_workers,
                   help="pytest-xdist workers per process (needs pytest-xdist)")
    r.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")
    r.set_defaults(func=cmd_run)
    li = sub.add_parser("list", help="list the claims (or, with --impls, implementations)")
    li.add_argument("--impls", action="store_true")
    li.set_defaults(func=cmd_list)
    s = sub.add_parser("show", help="show one claim and the tests that check it")
    s.add_argument("claim")
    s.set_defaults(func=cmd_show)
    rec = sub.add_parser("record", help="record the golden cases of one implementation")
    rec.add_argument("--impl", required=True, metavar="NAME", help="implementation to record")
    rec.add_argument("--out", metavar="FILE",
                     help="where to write (default: goldens/<impl>-<key versions>.json)")
    rec.set_defaults(func=cmd_record)
    d = sub.add_parser("diff", help="compare two golden recordings claim by claim",
                       description="Compare recording B (or the installed implementation "
                                   "NAME, recorded now) with recording A.")
    d.add_argument("a", metavar="A", help="the baseline recording")
    d.add_argument("b", metavar="B", nargs="?", help="the recording to compare with A")
    d.add_argument("--impl", metavar="NAME",
                   help="instead of B: record the installed implementation NAME now")
    d.add_argument("--expectations", action="append", metavar="FILE",
                   help="extra expectation file of departures (repeatable)")
    d.add_argument("--changes", action="append", metavar="FILE",
                   help="extra file of known version-to-version changes (repeatable)")
    d.add_argument("-v", "--verbose", action="store_true",
                   help="list every case within tolerance with its differences")
    d.set_defaults(func=cmd_diff)
    v = sub.add_parser("versions", help="one implementation's outcomes across several reports",
                       description="Print a Markdown table, a row per claim and a column per "
                                   "report (e.g. one per TensorFlow release), with the "
                                   "reasons of every departure.")
    v.add_argument("reports", nargs="+", metavar="REPORT",
                   help="a report folder or its report.json, in column order")
    v.add_argument("--impl", default="keras-tensorflow", metavar="NAME",
                   help="the implementation to compare (default: keras-tensorflow)")
    v.set_defaults(func=cmd_versions)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "max_examples", None) is not None and args.max_examples < 1:
        parser().error("--max-examples must be >= 1")
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
