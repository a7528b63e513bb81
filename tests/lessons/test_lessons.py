from __future__ import annotations

import pytest

from nodegraph.cli import main
from nodegraph.executor import Executor
from nodegraph.lessons import lesson_diff, list_lessons, load_lesson, run_checks

LESSONS = list_lessons()


def test_lessons_have_unique_numbers_and_earlier_existing_parents():
    numbers = [lesson.number for lesson in LESSONS]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 14
    for lesson in LESSONS:
        if lesson.parent is not None:
            assert lesson.parent in numbers, f"lesson {lesson.number}: parent {lesson.parent} does not exist"
            assert lesson.parent < lesson.number


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


# ---- lessons beyond the foundations track (animation, plugins) ---------------------------------

# For each lesson: one way to break its graph and the checks that must then fail. Each
# lesson is run as shipped (every check passes) and broken (those checks fail).
BREAKS = {
    11: (lambda g: g.nodes["8"].inputs.pop("depth"), {"13"}),  # no depth: the wall moves with the shape
    12: (lambda g: g.nodes["22"].inputs.update(strength=0.0) or g.nodes["31"].inputs.update(strength=0.0), {"25", "34"}),
    13: (lambda g: g.nodes["36"].body.nodes["c"].inputs.update(strength=0.0), {"51", "52"}),
    14: (lambda g: g.nodes["7"].inputs.update(levels=3), {"9"}),  # a different grid is not idempotent
}


@pytest.mark.parametrize("number", sorted(BREAKS))
def test_other_tracks_pass_as_shipped_and_fail_when_broken(number, roots):
    lesson = load_lesson(number)
    assert lesson.track != "foundations"
    _passes_then_fails_when_broken(lesson, Executor(roots=_with_assets(roots)), *BREAKS[number])


def _passes_then_fails_when_broken(lesson, executor, breaker, must_fail: set[str]) -> None:
    """Every check passes on the shipped graph; after `breaker` exactly `must_fail` fail."""
    results = run_checks(lesson, executor)
    assert results and all(r.passed for r in results), [r.__dict__ for r in results if not r.passed]
    graph = lesson.graph()
    breaker(graph)
    failed = {r.node_id for r in run_checks(lesson, executor, graph) if not r.passed}
    assert failed == must_fail


def test_lesson_12_estimated_flow_check_fails_on_swapped_frames(roots):
    lesson = load_lesson(12)
    graph = lesson.graph()
    graph.nodes["27"].inputs["prev_frame"], graph.nodes["27"].inputs["next_frame"] = (
        graph.nodes["27"].inputs["next_frame"], graph.nodes["27"].inputs["prev_frame"])
    results = {r.node_id: r for r in run_checks(lesson, Executor(roots=_with_assets(roots)), graph)}
    assert not results["29"].passed


def test_lesson_plugins_are_loaded_for_run_and_check(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    lesson = load_lesson(14)
    assert [p.name for p in lesson.plugin_dirs()] == ["plugins"]
    assert main(["lessons", "run", "14"]) == 0
    assert any(p.name.startswith("lesson14_posterized") for p in (tmp_path / "output").iterdir())
    assert main(["lessons", "check", "14"]) == 0
    assert "passed" in capsys.readouterr().out


def test_lesson_plugin_folders_stay_inside_the_lessons_folder():
    import dataclasses

    from nodegraph.errors import NodegraphError

    lesson = dataclasses.replace(load_lesson(14), plugins=["../../nodegraph"])
    with pytest.raises(NodegraphError, match="outside the lessons folder"):
        lesson.plugin_dirs()


# ---- the Stable Diffusion track on MiniSD ----------------------------------------------------------

def _link(node: str, output: str):
    from nodegraph.graph import Link

    return Link(source=(node, output))


# For each lesson: one way to break what it teaches, and the checks that must then fail.
SD_BREAKS = {
    2: (lambda g: g.nodes["7"].inputs.update(samples=_link("13", "latent")), {"10", "17"}),  # decode the wrong latent
    3: (lambda g: g.nodes["21"].inputs.update(text_b="a red circle at the top left"), {"22"}),  # the "different" pair is equal
    4: (lambda g: g.nodes["26"].inputs.update(step=2), {"31"}),  # the "later" picture is noisier
    5: (lambda g: g.nodes["39"].inputs.update(cfg=1.0), {"59"}),  # the opened loop guides its first step differently
    6: (lambda g: g.nodes["65"].inputs.update(cfg=1.0), {"69"}),  # no guidance on either side
    7: (lambda g: g.nodes["75"].inputs.update(steps=1), {"83", "85"}),  # one DPM++ step lands far from Euler, colour unsettled
    8: (lambda g: (g.nodes["87"].inputs.update(denoise=0.8), g.nodes["91"].inputs.update(denoise=0.3)), {"95"}),  # the two strengths swapped
    9: (lambda g: g.nodes["97"].inputs.update(latent_image=_link("3", "latent")), {"104"}),  # no mask: all repainted
    10: (lambda g: g.nodes["109"].inputs.update(strength=0.0), {"119"}),  # the ControlNet adds nothing
}


@pytest.fixture(scope="module")
def sd_executor(tmp_path_factory):
    """One executor for the whole track: each lesson is its parent plus a few nodes, so
    the parent's nodes come from the cache (as they do for a learner in the TUI)."""
    from nodegraph.context import Roots

    base = tmp_path_factory.mktemp("sd-lessons")
    roots = Roots(inputs=[base / "input"], outputs=base / "output", models=[base / "models"], cache=base / "cache")
    return Executor(roots=_with_assets(roots), disk_cache=False)


@pytest.mark.parametrize("number", sorted(SD_BREAKS))
def test_sd_lessons_pass_on_minisd_and_fail_when_broken(number, sd_executor):
    lesson = load_lesson(number)
    assert lesson.track == "stable diffusion"
    _passes_then_fails_when_broken(lesson, sd_executor, *SD_BREAKS[number])


# ---- "On a real checkpoint": the same graphs on an SD-1.5-layout model --------------------------

# What a learner changes to run a lesson on a real SD 1.5 checkpoint and ControlNet: the
# loader inputs. The tiny fixtures in nodes/assets/models have SD 1.5's layout (diffusers
# folders, CLIP BPE tokenizer, 4-channel latents) with random weights, so the checks may
# fail; what must hold is that every node runs.
SWAP = {"CheckpointLoader": ("ckpt_name", "tiny-sd"), "LoadControlNet": ("control_net_name", "tiny-controlnet")}
MODEL_LESSONS = [l for l in LESSONS if any(n.type in SWAP for n in l.graph().nodes.values())]


def _swapped(lesson):
    graph = lesson.graph()
    for node in graph.nodes.values():
        if node.type in SWAP:
            name, value = SWAP[node.type]
            node.inputs[name] = value
    return graph


def test_the_model_lessons_are_one_chain_so_the_last_one_runs_every_node():
    chain = [l for l in MODEL_LESSONS if l.track == "stable diffusion"]
    assert [l.number for l in chain] == list(range(2, 11))
    for earlier, later in zip(chain, chain[1:]):
        assert later.parent == earlier.number


@pytest.mark.parametrize("lesson", MODEL_LESSONS, ids=lambda l: f"{l.number:02d}_{l.slug}")
def test_lessons_validate_with_an_sd15_layout_checkpoint_swapped_in(lesson, roots):
    from nodegraph.validate import validate

    assert validate(_swapped(lesson), Executor(roots=_with_assets(roots)).registry, roots) == []


def test_the_last_model_lesson_runs_end_to_end_on_an_sd15_layout_checkpoint(roots):
    lesson = load_lesson(10)  # its graph holds every node of lessons 2-9
    graph = _swapped(lesson)
    executor = Executor(roots=_with_assets(roots))
    result = executor.run(graph)
    for node_id in lesson.checks:
        assert "passed" in result.outputs[node_id]["check"]
    written = [p for p in (roots.outputs).rglob("*.png")]
    assert len(written) >= 10  # every SaveImage of lessons 2-10 wrote its pictures


# ---- the CLIP space track on the world CLIP (and MiniSD for 18-19) ------------------------------

CLIP_BREAKS = {
    15: (lambda g: g.nodes["4"].inputs.update(texts=["a small white cross at the center"] * 8), {"6"}),  # one caption for all
    16: (lambda g: g.nodes["9"].inputs.update(answers=["a small white cross at the center"] * 8), {"10"}),  # wrong answers
    17: (lambda g: g.nodes["14"].inputs.update(query_embeds=_link("4", "clip_embeds")), {"15"}),  # a caption is not the picture
    18: (lambda g: g.nodes["27"].inputs.update(cfg=1.0), {"31"}),  # no guidance on either side
    19: (lambda g: [g.nodes[str(37 + 4 * k)].inputs.update(clip_scale=0.0) for k in range(6)], {"66"}),  # CLIP never pushes
}


def test_the_clip_lessons_are_one_chain_of_their_own_track():
    chain = [l for l in LESSONS if l.track == "clip space"]
    assert [l.number for l in chain] == sorted(CLIP_BREAKS)
    assert chain[0].parent is None
    for earlier, later in zip(chain, chain[1:]):
        assert later.parent == earlier.number


@pytest.mark.parametrize("number", sorted(CLIP_BREAKS))
def test_clip_lessons_pass_on_the_world_clip_and_fail_when_broken(number, sd_executor):
    lesson = load_lesson(number)
    assert lesson.track == "clip space"
    _passes_then_fails_when_broken(lesson, sd_executor, *CLIP_BREAKS[number])
