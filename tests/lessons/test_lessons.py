from __future__ import annotations

import pytest

from nodegraph.cli import main
from nodegraph.executor import Executor
from nodegraph.lessons import lesson_diff, list_lessons, load_lesson, run_checks

LESSONS = list_lessons()


def test_lessons_are_numbered_from_one_without_gaps():
    assert [lesson.number for lesson in LESSONS] == list(range(1, len(LESSONS) + 1))


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda l: f"{l.number:02d}_{l.slug}")
def test_declared_parent_and_new_nodes_match_the_graphs(lesson):
    if lesson.parent is not None:
        assert lesson.parent < lesson.number
        parent = load_lesson(lesson.parent).graph()
        graph = lesson.graph()
        # a lesson builds on its parent: nothing of the parent disappears
        assert set(parent.nodes) <= set(graph.nodes)
    diff = lesson_diff(lesson)
    assert sorted(diff["added"]) == sorted(lesson.new_nodes), "meta.lesson.new_nodes is out of date"
    assert diff["removed"] == []
    assert lesson.checks and set(lesson.checks) <= set(lesson.graph().nodes)
    assert all(lesson.graph().nodes[c].type == "Check" for c in lesson.checks)
    notes = lesson.notes()
    for heading in ("## What you will see", "## Why it happens", "## Values worth changing", "## Exercises", "## On a real checkpoint"):
        assert heading in notes, f"{lesson.notes_path.name} lacks {heading!r}"


@pytest.mark.parametrize("lesson", [l for l in LESSONS if l.track == "foundations" and not l.minutes], ids=lambda l: str(l.number))
def test_checks_pass_on_the_shipped_graph(lesson, roots):
    results = run_checks(lesson, Executor(roots=_with_assets(roots)))
    assert results and all(r.passed for r in results), [r.__dict__ for r in results if not r.passed]


def test_a_broken_lesson_graph_fails_its_check(roots):
    lesson = load_lesson(1)
    graph = lesson.graph()
    graph.nodes["4"].inputs["factor"] = 1.0  # all circle: no longer "between" the pictures
    results = {r.node_id: r for r in run_checks(lesson, Executor(roots=_with_assets(roots)), graph)}
    assert results["7"].passed and not results["10"].passed


def test_cli_lessons_list_diff_check(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["lessons"]) == 0
    assert "Images as tensors" in capsys.readouterr().out
    assert main(["lessons", "diff", "1"]) == 0
    assert "added    #4 BlendImages" in capsys.readouterr().out
    assert main(["lessons", "check", "1"]) == 0
    assert "passed" in capsys.readouterr().out
    assert main(["lessons", "list"]) == 0
    assert "passed" in capsys.readouterr().out.splitlines()[0]
    assert main(["lessons", "check", "99"]) == 1


def _with_assets(roots):
    from nodegraph.config import builtin_input_roots, builtin_model_roots

    roots.inputs += builtin_input_roots()
    roots.models += builtin_model_roots()
    return roots
