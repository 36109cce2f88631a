"""The package's layout: one subpackage per stage, imports pointing down the pipeline, no import cycles, a short top
level. Every import counts, at module level, inside functions and under ``TYPE_CHECKING`` alike."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "elmokit"
# The stages in pipeline order: a module may import its own stage and those before it, never a later one.
STAGES = ["core", "modules", "lm", "bilm", "embed", "analysis", "tasks", "commands"]
# the entry points above every stage (the version string is read by all)
TOP = {"__init__", "allennlp", "cli", "demo", "elmo", "manylangs", "simple_elmo"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every elmokit module and the elmokit modules it imports (a name imported from a package counts as the
    submodule when there is one)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("elmokit")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("elmokit"):
                subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                found |= subs or {node.module}
        graph[name] = {m for m in found if m != name}
    return graph


def stage(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in TOP:
        return -1 if module == "elmokit" else len(STAGES)
    return STAGES.index(parts[1])


def test_top_level_is_short():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert set(top) == TOP, top
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted(STAGES), packages


def test_imports_point_down_the_pipeline():
    wrong = [
        (m, i)
        for m, found in imports().items()
        for i in found
        if stage(i) > stage(m) and not (m == "elmokit" and not found)
    ]
    assert not wrong, "\n".join(f"{m} imports {i} (a later stage)" for m, i in wrong)


def test_no_import_cycles():
    graph = imports()
    cycles = []

    def visit(node: str, path: list[str], on_path: set[str], done: set[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in done:
                visit(nxt, [*path, nxt], on_path | {nxt}, done)
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start], {start}, done)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_stage_rule_catches_a_late_import():
    """The rule itself: a building block importing a pipeline stage would be caught."""
    assert stage("elmokit.tasks.run") > stage("elmokit.modules.lstmp")
    assert stage("elmokit.bilm.bundle") > stage("elmokit.lm.model") > stage("elmokit.core.files")
    assert stage("elmokit.cli") > stage("elmokit.tasks.run") > stage("elmokit")
