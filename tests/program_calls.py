"""Which external programs Python code runs, read from its AST (for tests/test_tools.py).

A *site* is a call that runs a program or looks one up: ``subprocess.run/Popen/…``,
``os.system/exec*/spawn*``, ``asyncio.create_subprocess_*``, ``shutil.which``, also when the
runner is handed over (``asyncio.to_thread(subprocess.run, [...])``). Its program argument is
followed back to a string: a literal, a list's first item, a module constant (also imported
from another module of ours), a local variable, a parameter's default, ``self.x`` set in the
class, ``str(…)``/``Path(…)``/``shutil.which(…)``, and dealdesk.tools' ``tool("x")``,
``locate(…)`` and ``program("x")``. Whatever can't be followed is reported as unknown
(``programs is None``): the test then asks for the site to be listed with what it runs.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path

OURS = "<this interpreter>"  # sys.executable: our own Python, not an external program

_EXECS = ("execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe",
          "posix_spawn", "posix_spawnp")
_SPAWNS = ("spawnv", "spawnve", "spawnvp", "spawnvpe", "spawnl", "spawnle", "spawnlp",
           "spawnlpe")
RUNNERS: dict[str, int] = {  # callable → index of its program argument
    **{f"subprocess.{n}": 0 for n in ("run", "Popen", "call", "check_call", "check_output",
                                      "getoutput", "getstatusoutput")},
    "os.system": 0, "os.popen": 0, **{f"os.{n}": 0 for n in _EXECS},
    **{f"os.{n}": 1 for n in _SPAWNS},
    "asyncio.create_subprocess_exec": 0, "asyncio.create_subprocess_shell": 0,
    "shutil.which": 0,
    # dealdesk/tools.py's own lookups by name
    "dealdesk.tools.tool": 0, "dealdesk.tools.locate": 0, "dealdesk.tools.program": 0,
}
_SHELL = {"subprocess.getoutput", "subprocess.getstatusoutput", "os.system", "os.popen",
          "asyncio.create_subprocess_shell"}
_PASS_ON = {"str", "os.fspath", "pathlib.Path", "shutil.which", "dealdesk.tools.tool",
            "dealdesk.tools.locate", "dealdesk.tools.program"}


@dataclass(frozen=True)
class Site:
    file: str
    """Path relative to the root, e.g. ``documents/intake.py``."""
    line: int
    where: str
    """The enclosing classes and functions, e.g. ``Converter._start_server``."""
    runner: str
    programs: frozenset[str] | None
    """What it runs (literals as written), or None when the code does not say."""

    @property
    def key(self) -> str:
        return f"{self.file}:{self.where}"


class _Unknown(Exception):
    pass


class _Module:
    def __init__(self, root: Path, path: Path) -> None:
        self.rel = path.relative_to(root).as_posix()
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.imports: dict[str, str] = {}
        self.top: dict[str, list[ast.expr]] = {}
        for node in self.tree.body:
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.imports[a.asname or a.name.split(".")[0]] = (
                        a.name if a.asname else a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    self.imports[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        self.top.setdefault(t.id, []).append(node.value)
            elif isinstance(node, ast.AnnAssign) and node.value is not None \
                    and isinstance(node.target, ast.Name):
                self.top.setdefault(node.target.id, []).append(node.value)

    def dotted(self, expr: ast.expr) -> str | None:
        """``sp.run`` → ``subprocess.run`` through this module's imports."""
        parts: list[str] = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        head = self.imports.get(expr.id, expr.id)
        return ".".join([head, *reversed(parts)])


Scope = tuple[ast.AST, ...]  # enclosing ClassDef / FunctionDef nodes, outermost first


class ProgramFinder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._modules: dict[str, _Module] = {}

    def module(self, path: Path) -> _Module:
        key = str(path)
        if key not in self._modules:
            self._modules[key] = _Module(self.root, path)
        return self._modules[key]

    def sites(self, path: Path) -> list[Site]:
        mod = self.module(path)
        found: list[Site] = []

        def visit(node: ast.AST, scope: Scope) -> None:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                scope = (*scope, node)
            if isinstance(node, ast.Call):
                site = self._site(mod, node, scope)
                if site is not None:
                    found.append(site)
            for child in ast.iter_child_nodes(node):
                visit(child, scope)

        visit(mod.tree, ())
        return found

    # -- a call that runs something ---------------------------------------------------------

    def _site(self, mod: _Module, call: ast.Call, scope: Scope) -> Site | None:
        runner = mod.dotted(call.func)
        args = list(call.args)
        if runner not in RUNNERS:
            # A runner handed to another call: its program is the next argument.
            handed = [i for i, a in enumerate(args) if mod.dotted(a) in RUNNERS]
            if not handed:
                return None
            runner = mod.dotted(args[handed[0]])
            args = args[handed[0] + 1:]
            index = RUNNERS[runner or ""]
        else:
            index = RUNNERS[runner]
        assert runner is not None
        shell = runner in _SHELL or any(
            k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value
            for k in call.keywords)
        where = ".".join(getattr(s, "name", "?") for s in scope)
        if len(args) <= index:
            target = next((k.value for k in call.keywords if k.arg in ("args", "cmd", "file")),
                          None)
        else:
            target = args[index]
        try:
            if target is None:
                raise _Unknown
            names = self.resolve(mod, target, scope, frozenset())
        except _Unknown:
            return Site(mod.rel, call.lineno, where, runner, None)
        if shell:
            names = frozenset(n.split()[0] if n != OURS and n.split() else n for n in names)
        return Site(mod.rel, call.lineno, where, runner, names)

    # -- following a value back to strings ---------------------------------------------------

    def resolve(self, mod: _Module, expr: ast.expr, scope: Scope,
                seen: frozenset[tuple[str, int]]) -> frozenset[str]:
        mark = (mod.rel, id(expr))
        if mark in seen:
            raise _Unknown
        seen = seen | {mark}
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return frozenset({expr.value})
        if isinstance(expr, ast.List | ast.Tuple):
            if not expr.elts or isinstance(expr.elts[0], ast.Starred):
                raise _Unknown
            return self.resolve(mod, expr.elts[0], scope, seen)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            return self.resolve(mod, expr.left, scope, seen)  # [prog, …] + [more args]
        if isinstance(expr, ast.BoolOp):
            return frozenset().union(*(self.resolve(mod, v, scope, seen) for v in expr.values))
        if isinstance(expr, ast.IfExp):
            return (self.resolve(mod, expr.body, scope, seen)
                    | self.resolve(mod, expr.orelse, scope, seen))
        if isinstance(expr, ast.Call):
            func = mod.dotted(expr.func)
            if func in _PASS_ON and expr.args:
                return self.resolve(mod, expr.args[0], scope, seen)
            raise _Unknown
        if isinstance(expr, ast.Attribute):
            if mod.dotted(expr) == "sys.executable":
                return frozenset({OURS})
            if isinstance(expr.value, ast.Name) and expr.value.id == "self":
                return self._attribute(mod, expr.attr, scope, seen)
            return self._imported(mod.dotted(expr), seen)
        if isinstance(expr, ast.Name):
            return self._name(mod, expr.id, scope, seen)
        raise _Unknown

    def _name(self, mod: _Module, name: str, scope: Scope,
              seen: frozenset[tuple[str, int]]) -> frozenset[str]:
        for depth in range(len(scope) - 1, -1, -1):
            fn = scope[depth]
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            inner = scope[:depth + 1]
            default = _parameter_default(fn, name)
            if default is not None:
                if default[0] is None:
                    raise _Unknown  # handed in by the caller
                return self.resolve(mod, default[0], scope[:depth], seen)
            values = [n.value for n in ast.walk(fn)
                      if isinstance(n, ast.Assign) and any(
                          isinstance(t, ast.Name) and t.id == name for t in n.targets)]
            values += [n.value for n in ast.walk(fn) if isinstance(n, ast.AnnAssign)
                       and isinstance(n.target, ast.Name) and n.target.id == name
                       and n.value is not None]
            if values:
                return frozenset().union(*(self.resolve(mod, v, inner, seen) for v in values))
        if name in mod.top:
            return frozenset().union(*(self.resolve(mod, v, (), seen) for v in mod.top[name]))
        if name in mod.imports:
            return self._imported(mod.imports[name], seen)
        raise _Unknown

    def _attribute(self, mod: _Module, attr: str, scope: Scope,
                   seen: frozenset[tuple[str, int]]) -> frozenset[str]:
        classes = [i for i, s in enumerate(scope) if isinstance(s, ast.ClassDef)]
        if not classes:
            raise _Unknown
        cls = scope[classes[-1]]
        assert isinstance(cls, ast.ClassDef)
        out: set[str] = set()
        for method in cls.body:
            if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for n in ast.walk(method):
                if isinstance(n, ast.Assign) and any(
                        isinstance(t, ast.Attribute) and t.attr == attr
                        and isinstance(t.value, ast.Name) and t.value.id == "self"
                        for t in n.targets):
                    out |= self.resolve(mod, n.value, (*scope[:classes[-1] + 1], method), seen)
        if not out:
            raise _Unknown
        return frozenset(out)

    def _imported(self, dotted: str | None, seen: frozenset[tuple[str, int]]
                  ) -> frozenset[str]:
        """A constant of one of our own modules, e.g. ``documents.intake.PDFTOTEXT``."""
        if not dotted or "." not in dotted:
            raise _Unknown
        module, name = dotted.rsplit(".", 1)
        path = self.root / (module.replace(".", "/") + ".py")
        if not path.is_file():
            raise _Unknown
        other = self.module(path)
        if name not in other.top:
            raise _Unknown
        return frozenset().union(*(self.resolve(other, v, (), seen) for v in other.top[name]))


def _parameter_default(fn: ast.FunctionDef | ast.AsyncFunctionDef, name: str
                       ) -> tuple[ast.expr | None] | None:
    """``(default,)`` when ``name`` is a parameter of ``fn`` (``(None,)`` without one)."""
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults))
    defaults += list(a.defaults)
    for arg, default in zip(positional, defaults, strict=True):
        if arg.arg == name:
            return (default,)
    for arg, kw_default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        if arg.arg == name:
            return (kw_default,)
    if (a.vararg and a.vararg.arg == name) or (a.kwarg and a.kwarg.arg == name):
        return (None,)
    return None


def string_literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant in a module except docstrings, with its line."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
        # Attribute docstrings (a string right after an assignment) are documentation too.
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(node, field, None)
            if isinstance(stmts, list):
                for prev, nxt in itertools.pairwise(stmts):
                    if isinstance(prev, ast.Assign | ast.AnnAssign) and isinstance(
                            nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                        docstrings.add(id(nxt.value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docstrings]
