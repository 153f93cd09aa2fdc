"""Every external program the code runs is in dealdesk/tools.py's registry, and the two ways
of installing dealdesk install its package: scripts/bootstrap.sh (runtime set for the demo,
test set on top for the tests) and the Dockerfile (the runtime set). Adding a program without
registering it, or a package to one list and not the other, fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from dealdesk import tools
from dealdesk.demo import STEPS
from tests.program_calls import OURS, ProgramFinder, Site, string_literals

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("dealdesk", "cpq", "workflows", "activities", "documents", "web", "store")
REGISTRY = ROOT / "dealdesk" / "tools.py"  # looks programs up by any name: not a site

# Call sites whose program is built elsewhere and handed in, with what they run.
PASS_THROUGH: dict[str, tuple[str, ...]] = {
    # unoserver on the uno venv's python (Converter._start_server builds the command)
    "documents/convert.py:_spawn_kept.keep": ("uno",),
    # self.command() starts with temporal_binary()
    "dealdesk/devserver.py:TemporalDevServer.start": ("temporal",),
}


def _files(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py") if p != REGISTRY)


def _registered(program: str) -> tools.Tool | None:
    """The tool a program string names: its name, its registered path, or a path to it."""
    if program in tools.BY_NAME:
        return tools.BY_NAME[program]
    for t in tools.TOOLS:
        if t.path is not None and PurePosixPath(program).match(t.path):
            return t
    if program.startswith("/"):
        return tools.BY_NAME.get(PurePosixPath(program).name)
    return None


@pytest.fixture(scope="module")
def product_sites() -> list[Site]:
    finder = ProgramFinder(ROOT)
    return [s for path in _files(*PRODUCT) for s in finder.sites(path)]


def test_every_program_the_product_runs_is_registered(product_sites: list[Site]) -> None:
    assert product_sites, "the finder found no subprocess calls at all: is it broken?"
    unknown = [f"{s.file}:{s.line} ({s.where}) calls {s.runner} with a program the code does "
               "not spell out: pass a literal or a module constant, or add the site to "
               "PASS_THROUGH with what it runs"
               for s in product_sites if s.programs is None and s.key not in PASS_THROUGH]
    assert not unknown, "\n".join(unknown)
    unregistered = [f"{s.file}:{s.line} runs {p!r}: add it to dealdesk/tools.py's TOOLS"
                    for s in product_sites for p in s.programs or ()
                    if p != OURS and _registered(p) is None]
    assert not unregistered, "\n".join(unregistered)
    # The product's programs are all runtime tools: a test-only tool would be missing in
    # production.
    test_only = [f"{s.file}:{s.line} runs {p!r}, registered as test-only"
                 for s in product_sites for p in s.programs or ()
                 if (t := _registered(p)) is not None and t.scope != "runtime"]
    assert not test_only, "\n".join(test_only)


def test_pass_through_sites_exist_and_name_registered_tools(product_sites: list[Site]) -> None:
    unresolved = {s.key for s in product_sites if s.programs is None}
    stale = sorted(set(PASS_THROUGH) - unresolved)
    assert not stale, f"PASS_THROUGH lists sites that no longer hand a program in: {stale}"
    for key, names in PASS_THROUGH.items():
        for name in names:
            assert tools.tool(name).scope == "runtime", key


def test_the_finder_sees_what_each_module_runs(product_sites: list[Site]) -> None:
    """The finder itself: the programs we know the code runs are found where they are run."""
    found = {(s.file, p) for s in product_sites for p in s.programs or ()}
    assert {("documents/intake.py", "pdftotext"), ("documents/convert.py", "soffice"),
            ("web/services/signer.py", "pdftoppm"), ("dealdesk/devserver.py", "temporal"),
            ("dealdesk/stack.py", OURS)} <= found


def test_programs_the_tests_run_are_registered() -> None:
    """Best effort for tests/: the programs they spell out must be registered too (their
    packages then come with scripts/test.sh)."""
    finder = ProgramFinder(ROOT)
    sites = [s for path in _files("tests") for s in finder.sites(path)]
    missing = sorted({f"{s.file}:{s.line} runs {p!r}" for s in sites for p in s.programs or ()
                      if p != OURS and _registered(p) is None})
    assert not missing, "register these in dealdesk/tools.py:\n" + "\n".join(missing)


def test_system_paths_in_the_code_are_registered() -> None:
    """A file the code reads from the system (a font, a PKCS#11 module) is a tool too."""
    system = re.compile(r"^/(usr|bin|sbin|lib|lib64|opt)/")
    unregistered = []
    for path in _files(*PRODUCT, "tests"):
        for line, value in string_literals(path):
            if not system.match(value):
                continue
            inside = any(t.path is not None and (PurePosixPath(value).match(t.path)
                                                 or t.path.startswith(value.rstrip("/") + "/"))
                         for t in tools.TOOLS)
            if not inside and _registered(value) is None:
                unregistered.append(f"{path.relative_to(ROOT)}:{line}: {value}")
    assert not unregistered, "register these in dealdesk/tools.py:\n" + "\n".join(unregistered)


def test_demo_steps_need_registered_tools() -> None:
    for step in STEPS:
        for name in step.needs:
            assert tools.tool(name).scope == "runtime", step.what


# -- the installers -----------------------------------------------------------------------------


def bootstrap_sets() -> dict[str, set[str]]:
    text = (ROOT / "scripts" / "bootstrap.sh").read_text()
    sets = {}
    for name in ("runtime", "test"):
        m = re.search(rf"^{name}_packages=\((.*?)\)", text, re.S | re.M)
        assert m, f"scripts/bootstrap.sh has no {name}_packages=( … ) list"
        words = " ".join(line.split("#")[0] for line in m.group(1).splitlines())
        sets[name] = set(words.split())
    return sets


def dockerfile_apt_packages() -> set[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    packages: set[str] = set()
    for m in re.finditer(r"apt-get install ([^&;\n]*)", text):
        packages |= {w for w in m.group(1).split() if not w.startswith("-")}
    assert packages, "the Dockerfile installs no apt packages"
    return packages


def test_bootstrap_installs_every_tool_in_its_set() -> None:
    sets = bootstrap_sets()
    for t in tools.TOOLS:
        if t.source != "apt":
            continue
        # A test tool may come with a runtime package (pdfsig: poppler-utils); the test
        # command installs both sets.
        wanted = sets["runtime"] if t.scope == "runtime" else sets["runtime"] | sets["test"]
        assert t.package in wanted, (
            f"{t.name} ({t.scope}) comes from {t.package}: add it to {t.scope}_packages in "
            "scripts/bootstrap.sh")
    assert not sets["runtime"] & sets["test"], "a package is in both sets"


def test_the_image_installs_the_runtime_set() -> None:
    runtime = bootstrap_sets()["runtime"]
    in_image = dockerfile_apt_packages()
    assert runtime <= in_image, f"the Dockerfile's apt-get lacks {sorted(runtime - in_image)}"
    for t in tools.TOOLS:
        if t.scope == "runtime" and t.source == "apt":
            assert t.package in in_image, t.name
    test_only = bootstrap_sets()["test"] & in_image
    assert not test_only, f"the image installs test-only packages: {sorted(test_only)}"


def test_pypi_tools_are_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0].lower()
             for d in project["dependencies"]}
    for t in tools.TOOLS:
        if t.source == "pypi":
            assert t.package in names, f"{t.package} is not a dependency in pyproject.toml"


def test_missing_names_the_tool_and_its_package(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """With poppler off PATH, the report names each of its programs and the package."""
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH at all
    absent = {t.name: t for t in tools.missing()}
    assert {"pdftotext", "pdftoppm", "soffice"} <= set(absent)
    assert "temporal" not in absent  # beside this interpreter, whatever PATH says
    lines = tools.warnings([absent["pdftotext"], absent["pdftoppm"]])
    assert "pdftotext is missing" in lines[0] and "apt-get install poppler-utils" in lines[0]
    assert lines[-1].startswith("to install them all: apt-get install -y poppler-utils")
