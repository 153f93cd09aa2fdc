"""A virtual environment that has pyHanko and what it needs, and nothing else of ours.

Built without the network: the distributions are copied from this test run's own
environment (pyHanko and the closure of its requirements that apply on this platform), as
``pip install pyhanko`` would have installed them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import Distribution, distribution
from pathlib import Path

from packaging.requirements import Requirement


def _closure(name: str, found: dict[str, Distribution]) -> None:
    dist = distribution(name)
    key = dist.metadata["Name"].lower().replace("_", "-")
    if key in found:
        return
    found[key] = dist
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            _closure(req.name, found)


def pyhanko_venv(where: Path) -> Path:
    """A venv at ``where`` with only pyHanko's distributions; its python executable."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip())
    found: dict[str, Distribution] = {}
    _closure("pyHanko", found)
    for dist in found.values():
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file)))
            if file.parts[0] in ("..", "bin") or not source.is_file():
                continue
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return python
