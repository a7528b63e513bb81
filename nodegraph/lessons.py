"""Lessons: graphs that teach, one step at a time.

A lesson is a pair in graphs/lessons/: ``NN_slug.json`` (a graph) and ``NN_slug.md`` (its
notes). The graph's ``meta.lesson`` says where it sits in the course:

    "meta": {"title": "Images as tensors",
             "lesson": {"number": 1, "parent": null, "track": "foundations",
                        "summary": "load, resize, blend, save",
                        "new_nodes": ["1", "2", ...], "checks": ["9", "10"]}}

Each lesson is its parent's graph plus a few nodes (`new_nodes`; a fresh start has no
parent). Its checks are Check nodes inside the graph: running them runs the lesson, so a
check can only pass on real outputs.

A lesson that uses nodes shipped beside it as a plugin lists their folders, relative to
the lesson file, in ``meta.lesson.plugins`` (e.g. ``["plugins"]``); running or checking
the lesson loads them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import packaged_dir
from .errors import NodegraphError
from .graph import Graph, Link, load_graph

_NAME = re.compile(r"^(\d\d)_([a-z0-9_]+)\.json$")


@dataclass
class Lesson:
    number: int
    slug: str
    title: str
    summary: str
    path: Path
    notes_path: Path
    parent: int | None = None
    new_nodes: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    track: str = "foundations"
    minutes: float | None = None  # expected run time on a 2-core CPU, when longer than usual
    plugins: list[str] = field(default_factory=list)  # plugin folders, relative to the lesson file

    def plugin_dirs(self) -> list[Path]:
        """The lesson's plugin folders as paths (they must stay inside the lessons folder)."""
        base = self.path.parent.resolve()
        folders = []
        for name in self.plugins:
            folder = (base / name).resolve()
            if folder != base and base not in folder.parents:
                raise NodegraphError(f"{self.path.name}: plugin folder {name!r} is outside the lessons folder")
            folders.append(folder)
        return folders

    def graph(self) -> Graph:
        return load_graph(self.path)

    def notes(self) -> str:
        return self.notes_path.read_text(encoding="utf-8") if self.notes_path.exists() else ""


@dataclass
class CheckResult:
    node_id: str
    name: str
    passed: bool
    detail: str
    value: float | None = None


def lessons_dir() -> Path:
    return packaged_dir("graphs") / "lessons"


def _lesson_from(path: Path) -> Lesson:
    match = _NAME.match(path.name)
    if match is None:
        raise NodegraphError(f"{path.name}: lesson files are named NN_slug.json")
    meta = json.loads(path.read_text(encoding="utf-8")).get("meta", {})
    info = meta.get("lesson", {})
    number = int(match.group(1))
    if info.get("number") != number:
        raise NodegraphError(f"{path.name}: meta.lesson.number is {info.get('number')!r}, the file name says {number}")
    return Lesson(
        number=number,
        slug=match.group(2),
        title=meta.get("title", match.group(2).replace("_", " ")),
        summary=info.get("summary", ""),
        path=path,
        notes_path=path.with_suffix(".md"),
        parent=info.get("parent"),
        new_nodes=[str(n) for n in info.get("new_nodes", [])],
        checks=[str(n) for n in info.get("checks", [])],
        track=info.get("track", "foundations"),
        minutes=info.get("minutes"),
        plugins=[str(p) for p in info.get("plugins", [])],
    )


def list_lessons(folder: Path | None = None) -> list[Lesson]:
    folder = folder or lessons_dir()
    return sorted((_lesson_from(p) for p in folder.glob("*.json") if _NAME.match(p.name)), key=lambda l: l.number)


def load_lesson(number: int, folder: Path | None = None) -> Lesson:
    for lesson in list_lessons(folder):
        if lesson.number == number:
            return lesson
    known = ", ".join(str(l.number) for l in list_lessons(folder)) or "none"
    raise NodegraphError(f"no lesson {number} (lessons: {known})")


def _node_data(graph: Graph, node_id: str) -> dict[str, Any]:
    node = graph.nodes[node_id]
    inputs = {k: ({"from": list(v.source)} if isinstance(v, Link) else v) for k, v in node.inputs.items()}
    return {"type": node.type, "inputs": inputs}


def lesson_diff(lesson: Lesson, folder: Path | None = None) -> dict[str, list[str]]:
    """What a lesson adds to (and changes in, removes from) its parent's graph."""
    graph = lesson.graph()
    if lesson.parent is None:
        return {"added": list(graph.nodes), "changed": [], "removed": []}
    parent = load_lesson(lesson.parent, folder).graph()
    added = [n for n in graph.nodes if n not in parent.nodes]
    removed = [n for n in parent.nodes if n not in graph.nodes]
    changed = [
        n for n in graph.nodes if n in parent.nodes and _node_data(graph, n) != _node_data(parent, n)
    ]
    return {"added": added, "changed": changed, "removed": removed}


def run_checks(lesson: Lesson, executor: Any, graph: Graph | None = None, observers: Any = ()) -> list[CheckResult]:
    """Run the lesson's checks (and what they need) and report each one."""
    graph = graph or lesson.graph()
    if not lesson.checks:
        return []
    for folder in lesson.plugin_dirs():
        executor.registry.load_folder(folder)
    result = executor.run(graph, targets=lesson.checks, observers=observers)
    results = []
    for node_id in lesson.checks:
        outcome = result.outputs[node_id]["check"]
        results.append(CheckResult(node_id, outcome["name"], outcome["passed"], outcome["detail"], outcome.get("value")))
    return results
