"""The layout docs/ARCHITECTURE.md describes is the code's: no import cycle, the core does not import the
notebook layer, every module it names exists (and every module is named), every dotted name resolves, and
every numbered part of docs/METHOD.md is mapped to the file that implements it."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "slrnet"
ARCHITECTURE = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
METHOD = (ROOT / "docs" / "METHOD.md").read_text(encoding="utf-8")


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str) -> set[str]:
    """The slrnet modules ``name`` imports, at the top or inside functions (a package's own submodules excluded)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("slrnet"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("slrnet")}
    return {m for m in found if m in MODULES and m != name and not m.startswith(name + ".")}


GRAPH = {name: imports(name) for name in MODULES}


def test_no_import_cycle():
    """Depth-first search for a back edge, lazy imports included: a cycle is a design fault even when it runs."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_the_core_does_not_import_the_notebook_layer():
    core = [m for m in MODULES if not m.startswith(("slrnet.analysis", "slrnet.viz"))]
    for name in core:
        assert not {m for m in GRAPH[name] if m.startswith("slrnet.analysis")}, f"{name} imports slrnet.analysis"
        figures = {m for m in GRAPH[name] if m.startswith("slrnet.viz")}
        if name != "slrnet.cli":           # the command line hands the trainer its snapshot callback
            assert not figures, f"{name} imports {figures}"
    for name in MODULES:                               # the figures never import the training loop
        if name.startswith("slrnet.viz"):
            assert "slrnet.train" not in GRAPH[name], name


def test_every_module_is_in_the_layout_and_every_named_file_exists():
    layout = ARCHITECTURE[ARCHITECTURE.index("```") + 3:]
    layout = layout[: layout.index("```")]
    for path in MODULES.values():
        if path.name in ("__init__.py", "__main__.py"):
            continue
        assert re.search(rf"(^|\s|/|\(|,){re.escape(path.name)}\b", layout), f"{path.relative_to(ROOT)} is not in the layout"
    for named in set(re.findall(r"`(slrnet/[\w/]+\.py)`", ARCHITECTURE)):
        assert (ROOT / named).is_file(), f"ARCHITECTURE.md names {named}, which does not exist"


def resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_dotted_name_resolves():
    names = set(re.findall(r"`(slrnet(?:\.\w+)+)", ARCHITECTURE))
    assert len(names) > 10
    for name in sorted(names):
        try:
            resolve(name)
        except (ModuleNotFoundError, AttributeError) as err:
            pytest.fail(f"ARCHITECTURE.md names {name}: {err}")


def test_every_file_and_name_in_the_method_table_exists():
    table = ARCHITECTURE[ARCHITECTURE.index("## Where each part of the method is implemented"):]
    table = table[: table.index("\n## ")]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| METHOD")]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for path, names in re.findall(r"`(slrnet/[\w/]+\.py)`(?: \(([^)]*)\))?", cells[2]):
            module = importlib.import_module(module_name(ROOT / path))
            for name in re.findall(r"`([\w.]+)`", names or ""):
                obj = module
                for attr in name.split("."):
                    assert hasattr(obj, attr), f"METHOD.md {cells[0]}: {path} has no {name}"
                    obj = getattr(obj, attr)
    numbers = {row.split("|")[1].strip() for row in rows}
    sections = set(re.findall(r"^### (\d+\.\d+) ", METHOD, flags=re.M)) | set(
        re.findall(r"^## (\d+)\. ", METHOD, flags=re.M))
    subsections = {s.split(".")[0] for s in sections if "." in s}
    wanted = {s for s in sections if s not in subsections}            # 1 and 2 are covered by 1.x / 2.x
    assert wanted <= numbers, f"METHOD.md parts without a file in ARCHITECTURE.md: {sorted(wanted - numbers)}"
