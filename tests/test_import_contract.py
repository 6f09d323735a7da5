"""The import contract: dependencies point one way.

- The contracts of pyproject.toml ([tool.importlinter]) hold: resilience never imports incidents;
  resilience.runtime and resilience.client import no Django and no other installed package.
- No import circle among the project's modules (incidents, resilience, access, config), counting
  the imports made when a module is imported (module level, class bodies, `if`/`try` blocks) and
  those inside functions alike: a function-local import does not make a circle go away.
- An import of a project module inside a function is allowed only with a comment on its line
  saying why (Django's app loading: apps.py, where models cannot be imported at module level).
- resilience.runtime and resilience.client, and every project module they reach, import the
  standard library only.

Plain test functions, no database: the source files are read, nothing is imported.
"""

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("incidents", "resilience", "access", "config")
PURE_PACKAGES = ("resilience.runtime", "resilience.client")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str  # a project module, or the top-level name of anything else
    path: Path
    line: int
    text: str  # the import statement's first line
    in_function: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # migrations are loaded by Django by name, never imported by a module
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _project_modules()


def _resolve(name: str) -> str:
    """The project module `name` means (the longest module prefix), or its top-level name if not ours."""
    candidate = name
    while candidate:
        if candidate in MODULES:
            return candidate
        candidate = candidate.rpartition(".")[0]
    return name.partition(".")[0]


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _imports_of(module: str, path: Path) -> list[Import]:
    source = path.read_text()
    lines = source.splitlines()
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(module, path, child)
                # `from package import name`: the submodule package.name when there is one, else package.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in child.names
                ]
            else:
                visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))
                continue
            for target in dict.fromkeys(_resolve(name) for name in targets):
                if target != module:
                    found.append(
                        Import(module, target, path, child.lineno, lines[child.lineno - 1].strip(), in_function)
                    )

    visit(ast.parse(source, filename=str(path)), in_function=False)
    return found


IMPORTS = [found for module, path in MODULES.items() for found in _imports_of(module, path)]


def _circles(edges: dict[str, dict[str, Import]]) -> list[tuple[list[str], list[Import]]]:
    """Each group of modules that import each other, directly or not (Tarjan's strongly connected
    components), with one circle through it as the imports that make it; smallest group first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in edges.get(module, {}):
            if imported not in index:
                connect(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            connect(module)
    return sorted(((group, _shortest_circle(group[0], set(group), edges)) for group in groups), key=lambda g: len(g[0]))


def _shortest_circle(start: str, group: set[str], edges: dict[str, dict[str, Import]]) -> list[Import]:
    paths = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for imported, found in sorted(edges.get(module, {}).items()):
                if imported == start:
                    return [*paths[module], found]
                if imported in group and imported not in paths:
                    paths[imported] = [*paths[module], found]
                    following.append(imported)
        frontier = following
    raise AssertionError(f"{start} is in a circle with no way back to it")


def _describe(group: list[str], circle: list[Import]) -> str:
    names = " -> ".join([circle[0].importer, *(found.imported for found in circle)])
    if len(group) > len(circle):
        names += f"\n  (part of a knot of {len(group)} modules that all reach each other: {', '.join(group)})"
    steps = "\n".join(
        f"    {found.where}  {found.text}" + ("  (inside a function)" if found.in_function else "") for found in circle
    )
    return f"  {names}\n{steps}"


def _comment_of(text: str) -> str:
    """The comment on an import's line, without any `noqa` marker (which says what, not why)."""
    _code, _hash, comment = text.partition("#")
    words = [word for word in comment.split() if not word.lower().startswith(("noqa", "e402", "f401"))]
    return " ".join(words).strip(" :()")


def test_the_import_linter_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"lint-imports found broken contracts:\n{result.stdout}{result.stderr}"


def test_no_import_circle_among_the_projects_modules():
    edges: dict[str, dict[str, Import]] = {}
    for found in IMPORTS:
        if found.imported in MODULES:
            edges.setdefault(found.importer, {}).setdefault(found.imported, found)
    circles = _circles(edges)
    if circles:
        pytest.fail(f"{len(circles)} import circle(s):\n" + "\n".join(_describe(*circle) for circle in circles))


def test_function_local_imports_of_project_modules_say_why():
    unexplained = [
        f"  {found.where}  {found.text}"
        for found in IMPORTS
        if found.in_function and found.imported in MODULES and not _comment_of(found.text)
    ]
    if unexplained:
        pytest.fail(
            "imports of project modules inside functions are for Django's app loading only, each with a comment "
            "on its line saying why; import these at module level, or say why:\n" + "\n".join(unexplained)
        )


def test_the_pure_runtime_and_the_client_reach_the_standard_library_only():
    by_importer: dict[str, list[Import]] = {}
    for found in IMPORTS:
        by_importer.setdefault(found.importer, []).append(found)
    pure = [module for module in MODULES if any(_within(module, package) for package in PURE_PACKAGES)]
    reached, pending, outside = set(), list(pure), []
    while pending:
        module = pending.pop()
        if module in reached:
            continue
        reached.add(module)
        pending.extend(_packages_of(module))  # importing a module runs its packages' __init__ first
        for found in by_importer.get(module, []):
            if found.imported in MODULES:
                pending.append(found.imported)
            elif found.imported not in sys.stdlib_module_names and found.imported != "__future__":
                outside.append(f"  {found.where}  {found.text}")
    if outside:
        pytest.fail(
            "resilience.runtime and resilience.client (and what they import) must need only the stdlib:\n"
            + ("\n".join(outside))
        )


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def _packages_of(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def test_the_walk_sees_what_it_must():
    """The walk's own check: it finds the project's modules and their imports, function-local ones included."""
    assert {"incidents.models", "resilience.process_runtime", "resilience.runtime.breaker", "config.settings"} <= set(
        MODULES
    )
    ready = [found for found in IMPORTS if found.importer == "resilience.apps" and found.in_function]
    assert "resilience.models" in {found.imported for found in ready}
    circle = {
        "a": {"b": Import("a", "b", ROOT, 1, "import b", False)},
        "b": {"a": Import("b", "a", ROOT, 1, "", False)},
    }
    assert [(group, [found.imported for found in found]) for group, found in _circles(circle)] == [
        (["a", "b"], ["b", "a"])
    ]
