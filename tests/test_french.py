"""The French catalogs as a careful reader wants them: curly apostrophes, and none of the
wordings that read badly."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = [
    ROOT / folder / "locale" / "fr" / "LC_MESSAGES" / "django.po"
    for folder in (".", "consents", "preferences")
]


def msgstrs(path: Path) -> list[str]:
    """Each translation, its continuation lines joined."""
    found, current = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("msgstr"):
            current = [line.partition('"')[2].rstrip('"')]
            found.append(current)
        elif line.startswith('"') and current is not None:
            current.append(line.strip('"'))
        else:
            current = None
    return ["".join(parts) for parts in found]


def test_the_catalogs_are_found() -> None:
    assert all(path.is_file() for path in CATALOGS)


def test_french_uses_curly_apostrophes() -> None:
    straight = [
        (path.relative_to(ROOT), text)
        for path in CATALOGS
        for text in msgstrs(path)
        if re.search(r"\w'\w", text)
    ]
    assert straight == []


def test_wordings_a_careful_reader_rejected() -> None:
    rejected = [
        "de %(brand_name)s",  # "de Assent": the brand's name is elided or reworded
        "Pause de 1 mois",
        'Pause de %(months)s mois"',  # for one month: "Pause d’un mois"
        "déconnecter de tous les liens",
        "déconnecté(e) de tous les liens",
    ]
    found = [
        (path.relative_to(ROOT), text)
        for path in CATALOGS
        for text in msgstrs(path)
        for bad in rejected
        if bad.rstrip('"') in text and not (bad.endswith('"') and "%(months)s" in text)
    ]
    assert found == []
