"""The package's shape: every module is reachable by its name, and imports go one way."""

import ast
import importlib
import pathlib
import pkgutil
import sys

import pytest

import kerastransfer

PACKAGE = pathlib.Path(kerastransfer.__file__).parent
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(kerastransfer.__path__, "kerastransfer.")
    if not m.name.endswith(".__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_a_module_is_not_shadowed_by_a_name_of_its_package(name):
    importlib.import_module(name)
    parent, _, last = name.rpartition(".")
    assert getattr(sys.modules[parent], last) is sys.modules[name], (
        f"`{parent}.{last}` is not the module {name}: a name of `{parent}` shadows it"
    )


def module_files():
    """{module name: its file} for every module of the package, packages included."""
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def import_graph():
    """{module: the package's modules it imports}, function-level imports included.

    `from a.b import c` imports module `a.b.c` where there is one, else (a name of) `a.b`.
    A module's parent packages, which Python runs first, are left out: they are not what the
    module asks for.
    """
    files = module_files()
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    imported.add(target)
        graph[name] = imported
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def test_the_cycle_finder_sees_function_level_imports():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_reads_function_level_imports():
    graph = import_graph()
    # Imported inside functions: the runtimes by the fresh process of `verify_export`, BPA by
    # the deprecated `kerastransfer.callbacks.GammaRefresh`.
    assert "kerastransfer.export.runtimes" in graph["kerastransfer.export.verify"]
    assert "kerastransfer.methods.bpa" in graph["kerastransfer.callbacks"]
    assert "kerastransfer.methods.bpa.probing" in graph["kerastransfer.methods.bpa.filter_costs"]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert found == [], "modules that import each other (function-level imports count): " + (
        "; ".join(" <-> ".join(component) for component in found)
    )
