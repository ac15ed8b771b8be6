"""Known departures of implementations from claims, kept as data.

One file per implementation, named ``<implementation>.txt`` (this folder holds the ones for
the built-in implementations; ``--expectations FILE`` adds more).  One entry per line::

    <key> | <reason> | <link>

``key`` is a claim id (every test of that claim) or a test function name (that test only).
Blank lines and lines starting with ``#`` are ignored.  A file may also name the
implementation it is for on a line ``@impl <name>`` (default: the file's stem).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Expectation:
    impl: str
    key: str
    reason: str
    link: str
    origin: str  # file:line
    user: bool = False  # from a file given on the command line

    def matches(self, impl: str, claim_id: str, test_name: str) -> bool:
        return impl == self.impl and self.key in (claim_id, test_name)


class ExpectationError(ValueError):
    pass


def parse(text: str, *, impl: str, origin: str, user: bool = False) -> list[Expectation]:
    entries = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@impl"):
            parts = line.split(None, 1)
            if parts[0] != "@impl" or len(parts) != 2:
                raise ExpectationError(f"{origin}:{lineno}: expected '@impl NAME', got {raw!r}")
            impl = parts[1].strip()
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) != 3 or not all(fields):
            raise ExpectationError(
                f"{origin}:{lineno}: expected 'key | reason | link', got {raw!r}")
        entries.append(Expectation(impl, fields[0], fields[1], fields[2],
                                   f"{origin}:{lineno}", user))
    return entries


def load_file(path, *, user: bool = False) -> list[Expectation]:
    path = Path(path)
    return parse(path.read_text(encoding="utf-8"), impl=path.stem, origin=path.name,
                 user=user)


def builtin(impl: str) -> list[Expectation]:
    path = HERE / f"{impl}.txt"
    return load_file(path) if path.exists() else []
