"""Outcomes per claim and implementation: collection, merging, rendering.

``report.json`` format (``"format": "conformance-report"``, ``"format_version": 1``)::

    {
      "format": "conformance-report", "format_version": 1,
      "created": "<UTC ISO 8601>",
      "profile": "<hypothesis profile>",
      "implementations": {
        "<name>": {"status": "ok" | "unavailable", "versions": {...}, "error": "<why>",
                   "seconds_inside": <float>}
      },
      "claims": [
        {"id", "kind", "section", "source", "statement",
         "results": {"<impl>": {"outcome": OUTCOME, "reason": "<one line>",
                                "tests": [{"test", "outcome", "reason",
                                           "falsifying_example", "replay",
                                           "reproduce"}]}}}
      ],
      "unspecified_claims": ["<catalogue ids no collected test names>"],
      "unmatched_expectations": ["<file:line key>"],
      "incomplete": ["<why>"],          (only when a process stopped early)
      "summary": {"<impl>": {OUTCOME: count}}
    }

``replay`` is a command that reruns one failed test (run it from the folder the suite ran
in); ``reproduce`` is the ``@reproduce_failure(...)`` decorator Hypothesis printed, which pins
the exact failing example.

OUTCOME is one of ``passed``, ``failed``, ``expected-failure``, ``n/a``, ``skipped``.
A claim's outcome for one implementation is the worst of its tests' outcomes in the order
failed > expected-failure > passed > n/a > skipped.  New keys may be added in a later
format version; existing keys keep their meaning.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Iterable

from . import claims as _claims

OUTCOMES = ("passed", "failed", "expected-failure", "n/a", "skipped")
_RANK = {"failed": 0, "expected-failure": 1, "passed": 2, "n/a": 3, "skipped": 4}
_SYMBOL = {"passed": "pass", "failed": "FAIL", "expected-failure": "xfail", "n/a": "n/a",
           "skipped": "skip", None: "-"}
FORMAT = "conformance-report"
FORMAT_VERSION = 1


def one_line(text: str, limit: int = 1000) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build(records: Iterable[dict], implementations: dict, *, profile: str = "",
          unmatched: Iterable[str] = ()) -> dict:
    """Fold test records into the report structure.

    Each record: {"claim", "impl", "test", "outcome", "reason", "falsifying_example",
    "replay", "impl_seconds"}."""
    per_claim: dict[str, dict[str, list]] = {}
    impls = {k: dict(v) for k, v in implementations.items()}
    for rec in records:
        per_claim.setdefault(rec["claim"], {}).setdefault(rec["impl"], []).append(rec)
        info = impls.setdefault(rec["impl"], {"status": "ok", "versions": {}})
        info["seconds_inside"] = info.get("seconds_inside", 0.0) + rec.get("impl_seconds", 0.0)
    claims = []
    for cid in sorted(per_claim, key=_claim_order):
        c = _claims.CLAIMS.get(cid)
        entry = c.as_dict() if c else {"id": cid, "kind": "?", "section": "?", "source": "?",
                                       "statement": "(not in the catalogue)"}
        entry["results"] = {impl: _fold(tests) for impl, tests in
                            sorted(per_claim[cid].items())}
        claims.append(entry)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "profile": profile,
        "implementations": impls,
        "claims": claims,
        "unspecified_claims": [c for c in _claims.CLAIMS if c not in per_claim],
        "unmatched_expectations": sorted(set(unmatched)),
        "summary": summarize(claims, impls),
    }


def _claim_order(cid: str):
    ids = list(_claims.CLAIMS)
    return (ids.index(cid) if cid in ids else len(ids), cid)


def _fold(tests: list[dict]) -> dict:
    tests = sorted(tests, key=lambda r: (_RANK[r["outcome"]], r["test"]))
    worst = tests[0]
    fields = ("test", "outcome", "reason", "falsifying_example", "replay", "reproduce")
    return {
        "outcome": worst["outcome"],
        "reason": worst.get("reason", ""),
        "tests": [{k: t.get(k, "") for k in fields} for t in tests],
    }


def summarize(claims: list[dict], impls: dict) -> dict:
    summary = {name: {o: 0 for o in OUTCOMES} for name in impls}
    for c in claims:
        for impl, res in c["results"].items():
            summary.setdefault(impl, {o: 0 for o in OUTCOMES})[res["outcome"]] += 1
    return summary


def merge(reports: Iterable[dict]) -> dict:
    """Merge reports of separate runs (one per process) into one matrix."""
    reports = list(reports)
    records, impls, unmatched, profile = [], {}, set(), ""
    for rep in reports:
        if rep.get("format") != FORMAT:
            raise ValueError("not a conformance report")
        profile = profile or rep.get("profile", "")
        unmatched.update(rep.get("unmatched_expectations", []))
        for name, info in rep["implementations"].items():
            if name not in impls or impls[name].get("status") != "ok":
                impls[name] = dict(info, seconds_inside=0.0)
        for c in rep["claims"]:
            for impl, res in c["results"].items():
                for t in res["tests"]:
                    records.append(dict(t, claim=c["id"], impl=impl))
        for name, info in rep["implementations"].items():
            impls[name]["seconds_inside"] += info.get("seconds_inside", 0.0)
    incomplete = [line for rep in reports for line in rep.get("incomplete", [])]
    merged = build(records, impls, profile=profile, unmatched=unmatched)
    if incomplete:
        merged["incomplete"] = incomplete
    for name in merged["implementations"]:
        merged["implementations"][name]["seconds_inside"] = impls.get(name, {}).get(
            "seconds_inside", 0.0)
    return merged


def exit_failed(report: dict) -> bool:
    """Whether anything failed unexpectedly (a failed claim or an unloadable impl)."""
    if report.get("incomplete"):
        return True
    if any(i.get("status") != "ok" for i in report["implementations"].values()):
        return True
    return any(r["outcome"] == "failed" for c in report["claims"]
               for r in c["results"].values())


# --------------------------------------------------------------------------- rendering


def _version_line(info: dict) -> str:
    if info.get("status") != "ok":
        return f"unavailable: {info.get('error', '')}"
    v = info.get("versions", {})
    return ", ".join(f"{k} {val}" for k, val in v.items()) or "-"


def render_terminal(report: dict) -> str:
    impls = list(report["implementations"])
    if not report["claims"]:
        lines = ["conformance: no claim was checked"]
        lines += [f"  {n}: {_version_line(i)}" for n, i in report["implementations"].items()]
        lines += [f"  incomplete: {x}" for x in report.get("incomplete", [])]
        return "\n".join(lines)
    width = max(len(c["id"]) for c in report["claims"]) + 2
    cols = [max(len(n), 5) + 2 for n in impls]
    lines = ["conformance matrix (claim x implementation)"]
    lines.append("".ljust(width) + "".join(n.ljust(w) for n, w in zip(impls, cols)))
    for c in report["claims"]:
        row = c["id"].ljust(width)
        for n, w in zip(impls, cols):
            if report["implementations"][n].get("status") != "ok":
                row += "unavail".ljust(w)
                continue
            row += _SYMBOL[c["results"].get(n, {}).get("outcome")].ljust(w)
        lines.append(row)
    for n in impls:
        counts = report["summary"].get(n, {})
        part = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts.get(o))
        lines.append(f"{n}: {part or 'nothing run'} ({_version_line(report['implementations'][n])})")
    notes = _departures(report)
    if notes:
        lines.append("departures and gaps:")
        lines += [f"  {n}" for n in notes]
    for u in report.get("unmatched_expectations", []):
        lines.append(f"  warning: expectation entry matched nothing: {u}")
    for x in report.get("incomplete", []):
        lines.append(f"INCOMPLETE RUN: {x}")
    return "\n".join(lines)


def _departures(report: dict) -> list[str]:
    out = []
    for c in report["claims"]:
        for impl, res in c["results"].items():
            if res["outcome"] in ("failed", "expected-failure", "n/a"):
                out.append(f"{c['id']} [{impl}] {res['outcome']}: {one_line(res['reason'], 160)}")
            stale = [t for t in res["tests"] if "expected departure did not occur" in
                     t.get("reason", "")]
            if stale:
                out.append(f"{c['id']} [{impl}] stale expectation: {stale[0]['test']} passed")
    return out


def _md(text: str) -> str:
    return one_line(text).replace("|", "\\|")


def render_markdown(report: dict) -> str:
    impls = list(report["implementations"])
    lines = ["# Conformance report", "",
             f"Created {report['created']}; Hypothesis profile `{report.get('profile') or '-'}`.",
             "", "## Implementations", "", "| implementation | versions | time inside (s) |",
             "|---|---|---|"]
    for n, info in report["implementations"].items():
        lines.append(f"| `{n}` | {_md(_version_line(info))} | "
                     f"{info.get('seconds_inside', 0.0):.1f} |")
    lines += ["", "## Matrix", "",
              "| claim | kind | " + " | ".join(f"`{n}`" for n in impls) + " |",
              "|---|---|" + "---|" * len(impls)]
    for c in report["claims"]:
        cells = [_SYMBOL[c["results"].get(n, {}).get("outcome")] for n in impls]
        lines.append(f"| `{c['id']}` | {c['kind']} | " + " | ".join(cells) + " |")
    lines += ["", "## Details", ""]
    for c in report["claims"]:
        lines.append(f"### `{c['id']}` ({c['kind']})")
        lines.append("")
        lines.append(f"{c['statement']} Source: {c['source']}.")
        lines.append("")
        for impl, res in c["results"].items():
            lines.append(f"- **{impl}**: {res['outcome']}")
            for t in res["tests"]:
                lines.append(f"  - `{t['test']}`: {t['outcome']}"
                             + (f": {_md(t['reason'])}" if t.get("reason") else ""))
                if t["outcome"] == "failed":
                    if t.get("falsifying_example"):
                        lines.append("  - falsifying example:")
                        lines.append("")
                        lines.append("    ```")
                        lines += [f"    {x}" for x in t["falsifying_example"].splitlines()]
                        lines.append("    ```")
                    if t.get("replay"):
                        lines.append(f"  - replay: `{t['replay']}`")
                    if t.get("reproduce"):
                        lines.append(f"  - pin the example: decorate the test with "
                                     f"`{t['reproduce']}`")
        lines.append("")
    if report.get("unspecified_claims"):
        lines += ["## Catalogue claims not checked in this run", "",
                  ", ".join(f"`{c}`" for c in report["unspecified_claims"]), ""]
    if report.get("incomplete"):
        lines += ["## INCOMPLETE RUN", ""] + [f"- {x}" for x in report["incomplete"]] + [""]
    if report.get("unmatched_expectations"):
        lines += ["## Expectation entries that matched nothing", ""]
        lines += [f"- {u}" for u in report["unmatched_expectations"]]
        lines.append("")
    return "\n".join(lines)


def write(report: dict, folder) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    js = folder / "report.json"
    md = folder / "report.md"
    js.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    md.write_text(render_markdown(report), encoding="utf-8")
    return [md, js]


def read(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- across versions


def _column_label(info: dict) -> str:
    v = info.get("versions", {})
    parts = []
    if "tensorflow" in v:
        parts.append(f"TF {v['tensorflow']}")
    if "keras" in v:
        parts.append(f"Keras {v['keras']}")
    return " / ".join(parts) or _version_line(info)


def check(rep, origin: str = "report") -> dict:
    """``rep`` if it has the structure this module reads, else ValueError naming the field."""
    def need(ok, where, what):
        if not ok:
            raise ValueError(f"{origin}: {where} {what}")

    need(isinstance(rep, dict) and rep.get("format") == FORMAT, "it", "is not a conformance report")
    impls = rep.get("implementations")
    need(isinstance(impls, dict), "'implementations'", "is not an object")
    for name, info in impls.items():
        need(isinstance(info, dict) and isinstance(info.get("status"), str),
             f"implementation {name!r}", "has no status")
        need(isinstance(info.get("versions", {}), dict), f"implementation {name!r}",
             "has versions that are not an object")
    claims = rep.get("claims")
    need(isinstance(claims, list), "'claims'", "is not a list")
    seen = set()
    for i, c in enumerate(claims):
        need(isinstance(c, dict) and isinstance(c.get("id"), str), f"claim {i}", "has no id")
        need(c["id"] not in seen, f"claim {c['id']}", "appears twice")
        seen.add(c["id"])
        need(isinstance(c.get("results"), dict), f"claim {c['id']}", "has no results")
        for name, res in c["results"].items():
            where = f"claim {c['id']}, implementation {name!r},"
            need(isinstance(res, dict) and res.get("outcome") in OUTCOMES, where,
                 "has no known outcome")
            need(isinstance(res.get("tests"), list) and all(
                isinstance(t, dict) and isinstance(t.get("test"), str)
                and t.get("outcome") in OUTCOMES and isinstance(t.get("reason", ""), str)
                for t in res["tests"]), where,
                "has tests without a name, a known outcome or a textual reason")
    return rep


def render_versions(reports: list[tuple[str, dict]], impl: str) -> str:
    """One implementation's outcomes across several runs (one report per version) as a
    Markdown table: a row per claim, a column per run.  A cell that is not a plain pass
    carries a numbered note with the tests concerned and their reasons; equal notes share
    a number, so a departure that holds on several versions reads as one line."""
    columns = []  # (label, report)
    notes: dict[str, int] = {}
    for origin, rep in reports:
        check(rep, origin)
        info = rep["implementations"].get(impl)
        if info is None:
            raise ValueError(f"{origin}: the report has no implementation {impl!r}")
        if info.get("status") == "ok":
            label = _md(_column_label(info))
        else:
            why = _md(f"{origin}: {impl} unavailable: {info.get('error', '')}")
            label = f"{_md(origin)} (unavailable) [{notes.setdefault(why, len(notes) + 1)}]"
        columns.append((label, rep))
    labels = [label for label, _ in columns]
    if len(set(labels)) < len(labels):  # the same versions twice: tell the columns apart
        columns = [(f"{label} ({_md(origin)})", rep)
                   for (label, rep), (origin, _) in zip(columns, reports)]
    ids = []
    for _, rep in columns:
        ids += [c["id"] for c in rep["claims"] if c["id"] not in ids]
    ids.sort(key=_claim_order)
    lines = ["| claim | " + " | ".join(label for label, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for cid in ids:
        cells = []
        for _, rep in columns:
            if rep["implementations"][impl].get("status") != "ok":
                cells.append("unavail")
                continue
            c = next((c for c in rep["claims"] if c["id"] == cid), None)
            res = (c or {}).get("results", {}).get(impl)
            if res is None:
                cells.append("-")
                continue
            cell = _SYMBOL[res["outcome"]]
            odd = [t for t in res["tests"] if "did not occur" in t.get("reason", "")]
            if res["outcome"] != "passed":
                odd = [t for t in res["tests"] if t["outcome"] == res["outcome"]] + odd
            if odd:
                text = "; ".join(f"`{t['test']}` {t['outcome']}: {one_line(t['reason'], 300)}"
                                 for t in odd)
                n = notes.setdefault(_md(text), len(notes) + 1)
                cell += f" [{n}]"
            cells.append(cell)
        lines.append(f"| `{cid}` | " + " | ".join(cells) + " |")
    if notes:
        lines.append("")
        lines += [f"{n}. {text}" for text, n in notes.items()]
    return "\n".join(lines)
