"""Import circles in the gspruner package, found statically: every module under gspruner/ is parsed with `ast`,
its `import X` / `from X import Y` statements (absolute and relative) resolved to the package's modules, and
the graph's strongly connected components of more than one module printed. Exit status 1 if there is one.

Every import counts, at module level or inside a function (a deferred import still ties the two modules
together; deferring one is how a circle hides, not how it goes away), except those under `if TYPE_CHECKING:`,
which never run. `from .pkg import name` depends on pkg/name.py when that is a module, else on pkg/__init__.py
(where the name is defined); `from .pkg.mod import name` on pkg/mod.py alone: the package a module sits in is a
folder, not a dependency (Python runs its __init__.py first, but a package importing its own modules is no circle).

    python scripts/check_imports.py            # the circles, if any
    python scripts/check_imports.py --graph    # every module's imports within the package
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "gspruner"


def module_names(package_dir: Path) -> dict[str, Path]:
    """dotted module name -> file, for every .py under `package_dir` (a package's name is its __init__.py)."""
    root = package_dir.parent
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(tree: ast.AST):
    """Every Import / ImportFrom node, at any depth, skipping the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `module` (at `path`) imports."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # each name is a module of the package (`from . import colmap`) or a name its __init__.py defines
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                       for alias in node.names]
        found.update(target for target in targets if target in known and target != module)
    return found


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """module -> the package modules it imports."""
    names = module_names(package_dir)
    known = set(names)
    return {module: imported_modules(module, path, known) for module, path in names.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted; largest first."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return sorted(components, key=lambda c: (-len(c), c))


def cycle_edges(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """`a -> b` for each import between two modules of one component."""
    members = set(component)
    return [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-dir", type=Path, default=PACKAGE_DIR, help="the package to check")
    parser.add_argument("--graph", action="store_true", help="print every module's imports within the package")
    args = parser.parse_args(argv)
    graph = import_graph(args.package_dir)
    if args.graph:
        for module in sorted(graph):
            print(f"{module}: {' '.join(sorted(graph[module]))}")
    circles = [c for c in strongly_connected(graph) if len(c) > 1]
    for component in circles:
        print(f"import circle of {len(component)} modules: {', '.join(component)}")
        for edge in cycle_edges(component, graph):
            print(f"  {edge}")
    if not circles:
        print(f"no import circles among {len(graph)} modules")
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
