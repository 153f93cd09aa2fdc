"""The wheel, as users get it: built once per test session from a copy of the source tree (so
no stale ``build/`` of the checkout leaks in, and the checkout stays untouched), and installed
once into a fresh venv outside the checkout. test_packaging reads the wheel;
test_wheel_smoke runs the installed ``dealdesk``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dealdesk", "cpq", "workflows", "activities", "documents", "web", "store")
# Local state and build leftovers; the same things .dockerignore keeps out of the image.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".venv-uno", "venv", "var", "build", "dist", "*.egg-info", "__pycache__",
    "*.py[cod]", ".mypy_cache", ".ruff_cache", ".pytest_cache", "node_modules", "test-results")


def _run(cmd: list[str], timeout: float, cwd: Path) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                    f"{done.stderr[-3000:]}")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel . --no-deps`` of a copy of the checkout."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q",
          "-w", str(work / "dist")], timeout=240, cwd=work)
    built = sorted((work / "dist").glob("dealdesk-*.whl"))
    assert len(built) == 1, built
    return built[0]


@pytest.fixture(scope="session")
def installed_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with only the wheel and its dependencies (from the package index)."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120, cwd=venv.parent)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
          "--disable-pip-version-check", str(wheel)], timeout=400, cwd=venv.parent)
    return venv
