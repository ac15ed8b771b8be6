"""Known departures of implementations from claims, kept as data.

One file per implementation, named ``<implementation>.txt`` (this folder holds the ones for
the built-in implementations; ``--expectations FILE`` adds more).  One entry per line::

    <key> | <reason> | <link> [| <versions>]

``key`` is a claim id (every test of that claim) or a test function name (that test only).
``versions``, optional, limits the entry to a version band of the packages the
implementation reports (its ``versions()``), as comma-separated requirement specifiers joined
by ``;``, e.g. ``tensorflow>=2.16,<2.19; keras>=3``.  An entry whose band does not match the
installed versions is ignored (and not warned about).
Blank lines and lines starting with ``#`` are ignored.  A file may also name the
implementation it is for on a line ``@impl <name>`` (default: the file's stem).
"""

from __future__ import annotations

import re
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
    versions: str = ""  # e.g. "tensorflow>=2.16,<2.19; keras>=3"

    def applies_to(self, versions: dict) -> bool:
        """Whether the installed versions fall in this entry's band."""
        if not self.versions:
            return True
        from packaging.specifiers import SpecifierSet
        from packaging.version import InvalidVersion, Version

        versions = {_package(k): v for k, v in versions.items()}
        for part in self.versions.split(";"):
            name, spec = _split_requirement(part)
            have = versions.get(_package(name))
            if have is None:
                return False
            try:
                if Version(have) not in SpecifierSet(spec):
                    return False
            except InvalidVersion:
                return False
        return True

    def matches(self, impl: str, claim_id: str, test_name: str) -> bool:
        return impl == self.impl and self.key in (claim_id, test_name)


class ExpectationError(ValueError):
    pass


def _package(name: str) -> str:
    """A package name as pip compares them: case and the run of ``-``, ``_``, ``.`` do not
    matter (``TF_Keras`` is ``tf-keras``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _split_requirement(part: str) -> tuple[str, str]:
    part = part.strip()
    for i, ch in enumerate(part):
        if ch in "<>=!~":
            if not part[:i].strip():
                raise ExpectationError(f"version band {part!r} names no package "
                                       f"(e.g. keras>=3)")
            return part[:i].strip(), part[i:].strip()
    raise ExpectationError(f"version band {part!r} has no comparison (e.g. keras>=3)")


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
        if len(fields) not in (3, 4) or not all(fields):
            raise ExpectationError(
                f"{origin}:{lineno}: expected 'key | reason | link [| versions]', got {raw!r}")
        band = fields[3] if len(fields) == 4 else ""
        if band:
            from packaging.specifiers import InvalidSpecifier, SpecifierSet

            for part in band.split(";"):
                try:
                    SpecifierSet(_split_requirement(part)[1])
                except InvalidSpecifier as exc:
                    raise ExpectationError(f"{origin}:{lineno}: {exc}") from None
        entries.append(Expectation(impl, fields[0], fields[1], fields[2],
                                   f"{origin}:{lineno}", user, band))
    return entries


def load_file(path, *, user: bool = False) -> list[Expectation]:
    path = Path(path)
    return parse(path.read_text(encoding="utf-8"), impl=path.stem, origin=path.name,
                 user=user)


def builtin(impl: str) -> list[Expectation]:
    path = HERE / f"{impl}.txt"
    return load_file(path) if path.exists() else []
