"""The house's import rules: the import-linter contracts of pyproject.toml (layers, the sandbox
importing nothing of the product, each SDK imported by its adapter only) hold, and no two modules
of `connector` import each other, directly or around a loop.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp
import pytest

import connector

ROOT = Path(__file__).resolve().parents[1]

# Import cycles allowed inside connector: none (issue 10 removed the last three). A cycle listed
# here that no longer exists fails `test_known_cycles_still_exist`, so none can come back unseen.
KNOWN_CYCLES: tuple[frozenset[str], ...] = ()


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The groups of two or more nodes that reach each other (Tarjan's algorithm, iterative so
    a deep import chain cannot overflow the stack)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(frozenset(group))
    return groups


def import_cycles() -> list[frozenset[str]]:
    """The groups of `connector` modules that import each other, directly or not."""
    assert Path(connector.__file__ or "").is_relative_to(ROOT), (
        "grimp must read this checkout's connector package"
    )
    graph = grimp.build_graph("connector", cache_dir=None)
    modules = graph.modules
    edges = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
    return strongly_connected(edges)


def describe(cycles: Iterable[frozenset[str]]) -> str:
    return "\n".join(" <-> ".join(sorted(c)) for c in cycles)


def test_strongly_connected_finds_loops_and_only_loops() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": ["e"], "e": ["d"], "f": ["a"]}
    assert sorted(strongly_connected(graph), key=sorted) == [
        frozenset("abc"),
        frozenset("de"),
    ]
    assert strongly_connected({"a": ["b"], "b": [], "c": ["a", "b"]}) == []


def test_import_contracts_hold() -> None:
    """`lint-imports` (the venv's, from the repo root) keeps every contract of pyproject.toml."""
    # the console script's own code, run by this interpreter: the venv's, wherever it lives
    command = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    result = subprocess.run(
        [sys.executable, "-c", command, "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "0 broken" in report


def test_no_import_cycle_inside_connector() -> None:
    """Every cycle found is one of the known ones, being removed (see KNOWN_CYCLES)."""
    unknown = [c for c in import_cycles() if not any(c <= known for known in KNOWN_CYCLES)]
    assert not unknown, f"import cycles inside connector:\n{describe(unknown)}"


def test_known_cycles_still_exist() -> None:
    """A known cycle that is gone must leave KNOWN_CYCLES too, so none can come back unseen."""
    found = import_cycles()
    gone = [k for k in KNOWN_CYCLES if not any(c & k for c in found)]
    if gone:
        pytest.fail(f"no longer cycles, delete them from KNOWN_CYCLES:\n{describe(gone)}")
