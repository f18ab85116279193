"""The layer contract, read from the imports of every module in the package.

Floors, lowest first: `errors` and `config`; `contract` and `core` (pure); `adapters` (one outside
system each); `daemon`, `consumer`, `cli`; `dev` (loaded lazily by the `demo` and `emulator`
commands). Every import counts: at the top, under `if TYPE_CHECKING:` and inside functions, and
`from pkg import mod` counts as importing `pkg.mod`. The rules and the checks that read them live
here; test_layers.py runs them on the package and on small fake packages.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path

import mqtt_tokend

PACKAGE_DIR = Path(mqtt_tokend.__file__).parent
MAX_LINES = 400

# The floors each floor may import from the package (the package root only holds `__version__`).
# Every floor is listed: a module on a floor missing here fails `every-floor-declared`.
_BELOW_DAEMON = {"errors", "config", "contract", "core", "adapters"}
FLOOR_MAY_IMPORT = {
    "errors": {"errors"},
    "config": {"errors", "config"},
    "contract": {"errors", "config", "contract", "core"},
    "core": {"errors", "config", "contract", "core"},
    "adapters": {"errors", "config", "contract", "core", "adapters"},
    "daemon": {*_BELOW_DAEMON, "daemon"},
    "consumer": {*_BELOW_DAEMON, "consumer"},  # what a consumer app imports: never the agent
    "cli": {*_BELOW_DAEMON, "daemon", "consumer", "cli", "dev"},  # dev lazily: dev_violations
    "dev": {*_BELOW_DAEMON, "consumer", "dev"},  # the agent runs as a subprocess, never imported
    "webapi": {*_BELOW_DAEMON, "consumer", "webapi"},  # a consumer's Web API client
    "root": {"errors", "contract", "consumer"},  # lazy re-exports for `import mqtt_tokend`
    "__main__": {"cli"},
}
# `webapi` is the consumer side's Web API client: it builds on `consumer` and the adapters, and
# nothing but a consumer's own code imports it (not the agent, not the CLI's `get-token`).
FLOOR_MAY_NOT_IMPORT = {
    "daemon": {"cli", "dev", "webapi"},
    "webapi": {"cli", "dev", "daemon"},
    "consumer": {"webapi"},
    "cli": {"webapi"},
}
PURE_FLOORS = ("contract", "core")
# The modules that may import each outside library. `requests` has two on purpose: the agent's
# Spotify adapter, and the consumers' Web API transport (mqtt_tokend.webapi), which `get-token`
# and `TokenConsumer` never load (tests/unit/test_consumer.py checks they stay light).
LIBRARY_IMPORTERS = {
    "paho": {"adapters.mqtt", "adapters.mqtt_oneshot"},
    "requests": {"adapters.spotify", "webapi.transport"},
}


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen from the importing module."""

    source: str  # importing module, dotted
    target: str  # a package module (dotted) or the top-level name of an outside library
    internal: bool
    line: int
    lazy: bool  # inside a function body
    type_checking: bool  # under `if TYPE_CHECKING:`

    def where(self, root: Path, package: str) -> str:
        """`path:line imports target (how)` for failure messages."""
        how = [
            word
            for word, flag in (
                ("in a function", self.lazy),
                ("under TYPE_CHECKING", self.type_checking),
            )
            if flag
        ]
        suffix = f" ({', '.join(how)})" if how else ""
        return (
            f"{module_path(root, package, self.source)}:{self.line} imports {self.target}{suffix}"
        )


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under `root`, by dotted name."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join([package, *parts])] = path
    return names


def module_path(root: Path, package: str, name: str) -> str:
    """The file of a dotted module name, relative to the package's parent, for messages."""
    return str(module_names(root, package)[name].relative_to(root.parent))


class _ImportReader(ast.NodeVisitor):
    """Collects every import of one module, noting whether it is lazy or TYPE_CHECKING-only."""

    def __init__(self, source: str, is_package: bool, modules: set[str], package: str) -> None:
        self.source = source
        self.own_package = source if is_package else source.rpartition(".")[0]
        self.modules = modules
        self.package = package
        self.found: list[Import] = []
        self._functions = 0
        self._type_checking = 0

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._functions += 1
        self.generic_visit(node)
        self._functions -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        guarded = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )
        self._type_checking += guarded
        for child in node.body:
            self.visit(child)
        self._type_checking -= guarded
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(self._deepest_module(alias.name), node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.own_package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self._add(
                submodule if submodule in self.modules else self._deepest_module(base), node.lineno
            )

    def _deepest_module(self, dotted: str) -> str:
        parts = dotted.split(".")
        while parts and ".".join(parts) not in self.modules:
            parts.pop()
        return ".".join(parts) if parts else dotted.split(".", maxsplit=1)[0]

    def _add(self, target: str, line: int) -> None:
        internal = target == self.package or target.startswith(self.package + ".")
        self.found.append(
            Import(
                source=self.source,
                target=target,
                internal=internal,
                line=line,
                lazy=self._functions > 0,
                type_checking=self._type_checking > 0,
            )
        )


def read_imports(root: Path, package: str) -> list[Import]:
    """Every import in every module of the package at `root`."""
    names = module_names(root, package)
    found: list[Import] = []
    for name, path in names.items():
        reader = _ImportReader(name, path.name == "__init__.py", set(names), package)
        reader.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found.extend(reader.found)
    return found


# Modules at the top of the package that belong to another module's floor.
FLOOR_OF_TOP_MODULE = {"config_checks": "config", "_version": "errors"}  # a leaf: any floor


def floor(package: str, module: str) -> str:
    """The floor of a module: the first name under the package (`root` for the package itself)."""
    rest = module.removeprefix(package).lstrip(".")
    first = rest.split(".")[0] if rest else "root"
    return FLOOR_OF_TOP_MODULE.get(first, first)


# -- the checks: each returns one readable line per violation -------------------------------------


def floor_violations(root: Path, package: str) -> list[str]:
    """Imports that reach a floor the importing floor may not use."""
    problems = []
    for imp in read_imports(root, package):
        if not imp.internal:
            continue
        source, target = floor(package, imp.source), floor(package, imp.target)
        if target == "root":
            continue  # the package root holds the version; importing it is the same for all
        allowed = FLOOR_MAY_IMPORT.get(source)
        if allowed is not None and target not in allowed:
            problems.append(
                f"{imp.where(root, package)}: {source} may import only {', '.join(sorted(allowed))}"
            )
        if target in FLOOR_MAY_NOT_IMPORT.get(source, set()):
            problems.append(f"{imp.where(root, package)}: {source} may not import {target}")
    return problems


def dev_violations(root: Path, package: str) -> list[str]:
    """`dev` is imported only by `dev` itself and, lazily (inside a function), by `cli`."""
    problems = []
    for imp in read_imports(root, package):
        source = floor(package, imp.source)
        if not imp.internal or floor(package, imp.target) != "dev" or source == "dev":
            continue
        if source != "cli":
            problems.append(f"{imp.where(root, package)}: only cli may import dev")
        elif not imp.lazy:
            problems.append(f"{imp.where(root, package)}: cli must import dev inside the command")
    return problems


def outside_library_violations(root: Path, package: str) -> list[str]:
    """paho and requests are imported by their listed modules only, and each listed one that
    exists does."""
    problems = []
    imports = read_imports(root, package)
    present = set(module_names(root, package))
    for library, modules in LIBRARY_IMPORTERS.items():
        expected = {f"{package}.{module}" for module in modules} & present
        users = [imp for imp in imports if not imp.internal and imp.target == library]
        problems.extend(
            f"{imp.where(root, package)}: only {', '.join(sorted(expected))} may import {library}"
            for imp in users
            if imp.source not in expected
        )
        problems.extend(
            f"{name} no longer imports {library}: update LIBRARY_IMPORTERS"
            for name in sorted(expected - {imp.source for imp in users})
        )
    return problems


def undeclared_floors(root: Path, package: str) -> list[str]:
    """Every module sits on a floor FLOOR_MAY_IMPORT lists, so no floor escapes the rules."""
    return [
        f"{module_path(root, package, name)} is on floor {floor(package, name)!r}, "
        "which FLOOR_MAY_IMPORT does not list"
        for name in module_names(root, package)
        if floor(package, name) not in FLOOR_MAY_IMPORT
    ]


def purity_violations(root: Path, package: str) -> list[str]:
    """Loading any contract or core module, parents included, never loads paho, requests or
    a floor above the adapters (follows the imports the interpreter runs when a module loads:
    not those in a function body or under TYPE_CHECKING; the floors check covers those)."""
    imports = read_imports(root, package)
    edges: dict[str, set[str]] = {}
    for imp in imports:
        if not (imp.lazy or imp.type_checking):
            edges.setdefault(imp.source, set()).add(imp.target)
    modules = module_names(root, package)
    problems = []
    for start in sorted(modules):
        if floor(package, start) not in PURE_FLOORS:
            continue
        seen: set[str] = set()
        todo = [start]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            parents = [name.rsplit(".", n)[0] for n in range(1, name.count(".") + 1)]
            todo.extend([*edges.get(name, ()), *parents])
        heavy = sorted(
            name
            for name in seen
            if name in LIBRARY_IMPORTERS
            or (name in modules and floor(package, name) not in {*FLOOR_MAY_IMPORT["core"], "root"})
        )
        if heavy:
            problems.append(f"importing {start} loads {', '.join(heavy)}")
    return problems


def import_cycles(root: Path, package: str) -> list[str]:
    """Every cycle between package modules, one per strongly connected group, with the lines."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in read_imports(root, package):
        if imp.internal and imp.target != imp.source:
            edges.setdefault(imp.source, {}).setdefault(imp.target, imp)
    problems = []
    for group in _strongly_connected(edges):
        if len(group) < 2:
            continue
        path = _cycle_through(min(group), group, edges)
        steps = [edges[a][b].where(root, package) for a, b in itertools.pairwise(path)]
        problems.append("cycle " + " -> ".join(path) + ":\n    " + "\n    ".join(steps))
    return problems


def _strongly_connected(edges: dict[str, dict[str, Import]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative so deep packages cannot hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return groups


def _cycle_through(start: str, group: set[str], edges: dict[str, dict[str, Import]]) -> list[str]:
    """The shortest path from `start` back to itself inside one strongly connected group."""
    paths = [[start]]
    seen = {start}
    while paths:
        path = paths.pop(0)
        for nxt in sorted(edges.get(path[-1], {})):
            if nxt == start:
                return [*path, start]
            if nxt in group and nxt not in seen:
                seen.add(nxt)
                paths.append([*path, nxt])
    raise AssertionError(f"no cycle through {start}")  # a group of 2+ always has one


def oversized_modules(root: Path, package: str) -> list[str]:
    """Modules over MAX_LINES lines."""
    problems = []
    for path in module_names(root, package).values():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            problems.append(
                f"{path.relative_to(root.parent)} has {lines} lines (at most {MAX_LINES})"
            )
    return problems


# -- every check, by the name a failure shows ----------------------------------------------------

CHECKS = {
    "floors": floor_violations,
    "every-floor-declared": undeclared_floors,
    "dev-only-lazily-from-cli": dev_violations,
    "one-module-per-outside-library": outside_library_violations,
    "contract-and-core-load-nothing-heavy": purity_violations,
    "no-cycles": import_cycles,
    "module-size": oversized_modules,
}
