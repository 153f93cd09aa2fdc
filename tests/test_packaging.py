"""The wheel holds every module and every data file of our packages (templates, static files,
YAML, migration scripts…) as they are in the source tree, and nothing of the checkout's own
(tests, bytecode). Packages and package data are discovered (pyproject.toml), so a new file
is in by default; this test is what keeps it so."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tests.wheel_support import PACKAGES, ROOT


def _source_files() -> set[str]:
    files = set()
    for top in PACKAGES:
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts \
                    and path.suffix not in (".pyc", ".pyo"):
                files.add(path.relative_to(ROOT).as_posix())
    return files


def test_every_directory_with_modules_is_a_package() -> None:
    """Discovery (namespaces = false) takes only directories with an ``__init__.py``."""
    loose = sorted({Path(f).parent.as_posix() for f in _source_files() if f.endswith(".py")}
                   - {Path(f).parent.as_posix() for f in _source_files()
                      if f.endswith("/__init__.py")})
    assert not loose, f"add an __init__.py to {loose}"


def test_the_wheel_holds_every_module_and_data_file(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = {n for n in names if n.split("/")[0].endswith(".dist-info")}
        entry_points = z.read(next(n for n in meta if n.endswith("/entry_points.txt"))).decode()
    source = _source_files()
    left_out = sorted(source - names)
    assert not left_out, f"the wheel lacks {len(left_out)} files: {left_out[:20]}"
    # Spot checks of what the new user's image failed on, and of data by kind.
    for expected in ("web/services/envelopes.py", "dealdesk/demo/__init__.py",
                     "dealdesk/demo/policy.yaml", "dealdesk/demo/catalog.yaml",
                     "web/templates/base.html", "web/static/htmx.min.js",
                     "store/migrations/env.py", "store/migrations/script.py.mako",
                     "store/migrations/versions/0001_initial_schema.py", "dealdesk/tools.py"):
        assert expected in names, expected
    assert "dealdesk = dealdesk.cli:app" in entry_points
    extra = sorted(names - meta - source)
    assert not extra, f"the wheel has files the source tree does not: {extra[:20]}"
    assert not [n for n in names if n.endswith((".pyc", ".pyo")) or n.startswith("tests/")]
