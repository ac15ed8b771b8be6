"""Section H (part): the golden cases give, on the installed versions, what the committed
recording of the same implementation and Keras generation gave, or the difference is a
known, explained change (``conformance/expectations/changes.txt`` or a departure that holds
on one side only).  ``--golden FILE`` names the recording to compare with instead, for any
implementation (e.g. your own adapter, recorded before a change)."""

from pathlib import Path

from conformance.claims import claim

GOLDENS = Path(__file__).resolve().parent.parent / "conformance" / "goldens"


def _generation(versions) -> str:
    return str(versions.get("keras", "")).split(".")[0]


def _recording_for(impl):
    """The committed recording of this implementation made with the same major Keras
    version as the one installed (Keras 2 and 3 differ on purpose), or None."""
    from conformance import golden

    mine = dict(impl.versions())
    found = []
    for path in sorted(GOLDENS.glob("*.json")):
        rec = golden.read(path)
        if rec.get("implementation") == impl.name and \
                _generation(rec.get("versions", {})) == _generation(mine):
            found.append((path, rec))
    # the newest recording of that generation is the one to compare with
    return max(found, key=lambda pr: pr[1].get("created", ""), default=(None, None))


@claim("version.golden")
def test_golden_cases_match_the_recording(impl, golden_baseline):
    from conformance import golden
    from conformance.plugin import not_applicable, unsupported_passes_through

    if golden_baseline:
        path = Path(golden_baseline)
        recorded = golden.read(path)
    else:
        path, recorded = _recording_for(impl)
    if recorded is None:
        not_applicable(f"no golden recording of {impl.name} with Keras "
                       f"{_generation(dict(impl.versions())) or '(none)'} in "
                       f"conformance/goldens/")
    with unsupported_passes_through():  # a case it cannot express is recorded as n/a
        now = golden.record(impl)
    # departures and known changes explain a change only between recordings of one
    # implementation: against a recording of another (--golden), what is known of that one
    # must not excuse this one
    same = recorded.get("implementation") == now["implementation"]
    result = golden.diff(recorded, now, None if same else [], changes=None if same else [])
    assert not result.unexplained, (
        f"the golden cases changed against {path.name} "
        f"({result.summary()}):\n{result.render()}")
