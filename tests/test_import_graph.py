"""The package's folders are pipeline stages: a module imports only from its own stage or earlier ones, and the
package's imports form no cycle. Read from the source (ast), so an import inside a function counts too."""
from __future__ import annotations

import ast
from pathlib import Path

import nerfw

PACKAGE = Path(nerfw.__file__).parent
# Earliest first. A stage may import from itself and from any stage before it. The root's modules (errors,
# options) are the foundation every stage may use.
STAGES = ("errors", "options", "cameras", "data", "synthetic", "fields", "rendering", "model", "training",
          "evaluation", "novel_views", "outputs", "localization", "viewer", "cli", "__main__")
# Dependencies the package imports inside functions only because they are heavy or optional.
LAZY_IMPORTS_ALLOWED = ("viser", "pycolmap", "matplotlib", "imageio", "skimage", "scipy", "tensorboard", "plyfile",
                        "torch.utils.tensorboard", "nerfw.viewer")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def nerfw_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported nerfw module, line, at module level) for every import of the package in one file."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "nerfw":
            names = [f"{node.module}.{a.name}" for a in node.names]
            found += [(name, node.lineno, id(node) in top_level) for name in names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top_level) for a in node.names
                      if a.name.split(".")[0] == "nerfw"]
    return found


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """`from nerfw.a import b` names a module nerfw.a.b or a name in nerfw.a: the module it loads."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_module_belongs_to_a_stage():
    unknown = sorted({stage_of(m) for m in package_modules()} - set(STAGES) - {"__init__"})
    assert not unknown, f"folders or modules outside the stage list {STAGES}: {unknown}"


def test_imports_point_down_the_pipeline():
    modules = package_modules()
    order = {stage: i for i, stage in enumerate(STAGES)}
    upward = []
    for module, path in modules.items():
        here = stage_of(module)
        for name, line, _ in nerfw_imports(path):
            target = resolve(name, modules)
            if target is None or here == "__init__" or stage_of(target) == "__init__":
                continue
            if order[stage_of(target)] > order[here]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} ({here} -> "
                              f"{stage_of(target)})")
    assert not upward, "imports from a later stage into an earlier one:\n" + "\n".join(upward)


def test_no_import_cycles():
    modules = package_modules()
    graph = {m: {t for n, _, _ in nerfw_imports(p) if (t := resolve(n, modules)) and t != m} for m, p in modules.items()}
    # a package's __init__ is loaded with its modules; count its edges but let modules import names it defines
    state, cycles = {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_imports_inside_functions_only_for_heavy_dependencies():
    """A package import inside a function is allowed only to reach an optional heavy dependency's module (the
    viewer's viser); everything else is imported at the top, where the import graph above sees it."""
    modules = package_modules()
    inner = []
    for module, path in modules.items():
        for name, line, top in nerfw_imports(path):
            target = resolve(name, modules)
            if not top and target and not target.startswith(LAZY_IMPORTS_ALLOWED) and stage_of(module) != "cli":
                inner.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} inside a function")
    assert not inner, "\n".join(inner)
