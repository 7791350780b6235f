"""The rooms of docs/architecture.md and what each may import, read from the code itself.

``consents`` is the system of record: the customer site (``preferences``, with the store) and the
integration API (``api``) are built on it and never the other way round; neither of those two
reaches into the other; nothing but the benchmarks imports ``bench``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "consents": {"preferences", "api", "bench"},
    "preferences": {"api", "bench"},
    "api": {"preferences", "bench"},
    "config": {"bench"},
}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """The top-level package of every import in a module, with its line (imports inside
    functions count too: a late import is still an arrow)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(alias.name.split(".")[0], node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_each_room_imports_only_what_it_may(room: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {package}"
        for path in sorted((ROOT / room).rglob("*.py"))
        for package, line in sorted(imported_packages(path))
        if package in FORBIDDEN[room]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from preferences import views\n    import api.keys\n")
    assert imported_packages(module) == {("preferences", 2), ("api", 3)}
