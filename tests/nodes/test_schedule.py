"""Keyframe schedules: parsing, interpolation, the safe evaluator, the nodes."""

from __future__ import annotations

import math
import re
import time

import pytest

from nodegraph import CancelToken, NodeInputError, RunContext
from nodegraph.errors import NodegraphError
from nodegraph.nodes.schedule import schedule_parse, schedule_plot, schedule_value
from nodegraph.schedule import SafeExpression, Schedule, ScheduleError, safe_eval


def approx(values, expected, tol=1e-9):
    assert len(values) == len(expected)
    for got, want in zip(values, expected):
        assert got == pytest.approx(want, abs=tol)


# ---- parsing and interpolation ---------------------------------------------------------------


def test_linear_between_keys_and_hold_outside():
    s = Schedule.parse("0:(1.0), 30:(1.5)")
    values = s.values(40)
    assert values[0] == 1.0
    assert values[15] == pytest.approx(1.25)
    assert values[30] == 1.5
    assert values[39] == 1.5  # after the last key the value holds
    assert s.at(7.5) == pytest.approx(1.0 + 0.5 * 7.5 / 30)


def test_first_key_not_at_zero_holds_backwards():
    s = Schedule.parse("10:(2), 20:(4)")
    approx(s.values(25)[:12], [2.0] * 11 + [2.2])


def test_whitespace_newlines_and_bare_value():
    s = Schedule.parse(" 0: (0.65) ,\n 10 :( 0.5 ),\n")
    assert s.at(0) == 0.65 and s.at(10) == 0.5 and s.at(5) == pytest.approx(0.575)
    assert Schedule.parse("0.65").values(3) == [0.65] * 3
    assert Schedule.parse("(0.65)").at(2) == 0.65


def test_formula_values_follow_t_until_next_key():
    s = Schedule.parse("0:(1.0025+0.002*sin(1.25*3.14*t/30)), 10:(2)")
    for t in range(10):
        assert s.at(t) == pytest.approx(1.0025 + 0.002 * math.sin(1.25 * 3.14 * t / 30))
    assert s.values(12)[10:] == [2.0, 2.0]


def test_keys_and_values_using_max_f_and_seed():
    s = Schedule.parse("0:(0), max_f-1:(360)", max_frames=10)
    approx(s.values(), [0, 45, 90, 135, 180, 225, 270, 315, 360, 360])
    # without max_frames the key cannot be placed: a clear error, not a guess
    with pytest.raises(ScheduleError, match="max_frames"):
        Schedule.parse("0:(0), max_f-1:(360)").at(3)
    assert Schedule.parse("0:(max_f/2)").at(0, max_frames=101) == 50.0
    assert Schedule.parse("0:(s % 7)", seed=23).at(4) == 2.0
    assert Schedule.parse("0:(t*2)").at(5, max_frames=10) == 10.0


def test_math_functions_and_operators():
    assert safe_eval("max(1, t, 3) + min(4, 5) - abs(-2)", t=7) == 9.0
    assert safe_eval("floor(2.7) + ceil(2.1) + sqrt(16) + round(2.5)") == 2 + 3 + 4 + 2
    assert safe_eval("exp(0) + log(e) + log10(100) + pi - pi") == pytest.approx(4.0)
    assert safe_eval("2**10 + 7 // 2 + 7 % 4") == 1024 + 3 + 3
    assert safe_eval("where(t > 5, 1, -1)", t=6) == 1.0
    assert safe_eval("1 if t < 3 else 2", t=3) == 2.0
    assert safe_eval("(t >= 2) * 10", t=2) == 10.0
    assert safe_eval("-t + +t", t=4) == 0.0
    assert safe_eval("sin(pi / 2) * cos(0) + tan(0)") == pytest.approx(1.0)


def test_repeated_key_last_wins_and_unsorted_keys():
    s = Schedule.parse("20:(3), 0:(1), 20:(5)")
    assert s.at(0) == 1.0 and s.at(20) == 5.0 and s.at(10) == pytest.approx(3.0)


def test_step_interpolation_holds():
    s = Schedule.parse("0:(1), 5:(2), 10:(3)", interpolation="step")
    approx(s.values(12), [1] * 5 + [2] * 5 + [3] * 2)


def test_cubic_is_smooth_and_passes_through_keys():
    s = Schedule.parse("0:(0), 10:(10), 20:(0), 30:(10)", interpolation="cubic")
    values = s.values(31)
    for key, want in [(0, 0), (10, 10), (20, 0), (30, 10)]:
        assert values[key] == pytest.approx(want)
    linear = Schedule.parse("0:(0), 10:(10), 20:(0), 30:(10)").values(31)
    assert values[5] != pytest.approx(linear[5])  # curved, not straight
    assert max(values[:20]) > 10  # the spline overshoots the key between rises and falls
    # same numbers as scipy's not-a-knot spline (what pandas' cubic uses)
    from scipy.interpolate import CubicSpline

    ref = CubicSpline([0, 10, 20, 30], [0, 10, 0, 10])
    approx(values, [float(ref(i)) for i in range(31)], tol=1e-9)


def test_cubic_falls_back_to_linear_with_two_keys():
    cubic = Schedule.parse("0:(0), 10:(1)", interpolation="cubic").values(11)
    approx(cubic, [i / 10 for i in range(11)])


def test_text_schedule_holds_values():
    s = Schedule.parse('0:(euler), 10:("dpmpp_2m"), 15: (ddim)', kind="text")
    assert s.values(17) == ["euler"] * 10 + ["dpmpp_2m"] * 5 + ["ddim"] * 2


def test_schedule_objects_compare_and_hash():
    a = Schedule.parse("0:(1)")
    b = Schedule.parse("0:(1)")
    assert a == b and hash(a) == hash(b)
    assert a != Schedule.parse("0:(1)", interpolation="cubic")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("0:(1), 5:(2", "unbalanced"),
        ("0:1", "expected '('"),
        ("0:(1) 5:(2)", "expected ','"),
        ("", "empty"),
        ("0:()", "empty formula"),
        ("0:(1 +)", "cannot parse"),
        ("-5:(1)", "negative"),
        ("0:(foo)", "unknown name 'foo'"),
        ("0:(t), t:(1)", "unknown name 't'"),  # keys cannot use t
        ("0:(1), __import__('os'):(2)", "'__import__' is not allowed"),  # keys are checked too
        ("1e9:(1)", "too large"),
    ],
)
def test_malformed_schedules_are_clear_errors(text, fragment):
    with pytest.raises(ScheduleError, match=re.escape(fragment)):
        Schedule.parse(text).values(10)


def test_evaluation_errors_name_the_problem():
    with pytest.raises(ScheduleError, match="division by zero"):
        Schedule.parse("0:(1/(t-3))").at(3)
    with pytest.raises(ScheduleError, match="math domain"):
        safe_eval("sqrt(-1)")
    with pytest.raises(ScheduleError, match="too large|finite"):
        safe_eval("exp(1000)")
    with pytest.raises(ScheduleError, match="finite"):
        safe_eval("1e308 * 10")


# ---- hostile input ------------------------------------------------------------------------------

HOSTILE = [
    ("__import__('os').system('echo pwned')", "attribute|not allowed"),
    ("__import__('os')", "'__import__' is not allowed"),
    ("().__class__", "attribute access"),
    ("().__class__.__bases__[0].__subclasses__()", "attribute access|indexing"),
    ("a.b", "attribute access"),
    ("sin.__globals__", "attribute access"),
    ("t[0]", "indexing"),
    ("[x for x in (1, 2)]", "comprehensions"),
    ("(lambda: 1)()", "lambda|only calls"),
    ("'abc'", "text constant"),
    ("b'abc'", "constant"),
    ("1j", "complex"),
    ("True", "bool"),
    ("9**9**9", "exponent"),
    ("10**100000", "exponent"),
    ("2**-5000", "exponent"),
    ("pow(10, 100000)", "exponent"),
    ("(t := 5)", "assignment"),
    ("max(1, key=abs)", "keyword"),
    ("open('x')", "'open' is not allowed"),
    ("eval('1')", "'eval' is not allowed"),
    ("getattr(t, 'x')", "'getattr' is not allowed"),
    ("f'{t}'", "f-strings"),
    ("{1: 2}", "dicts"),
    ("t @ t", "MatMult"),
    ("1" + "+1" * 300, "too complex"),
    ("-" * 120 + "1", "nested too deeply"),
    ("-" * 500 + "1", "nested too deeply|too complex"),
    ("(" * 300 + "1" + ")" * 300, "nested|parse"),
    ("1" * 999, "too large"),
    ("x" * 5000, "too long"),
]


@pytest.mark.parametrize("text, fragment", HOSTILE)
def test_hostile_formulas_are_rejected_quickly(text, fragment):
    start = time.perf_counter()
    with pytest.raises(ScheduleError, match=fragment) as info:
        Schedule.parse(f"0:({text})").values(5)
    assert time.perf_counter() - start < 1.0
    assert isinstance(info.value, NodegraphError)
    assert len(str(info.value)) < 1000  # the message stays readable


def test_hostile_schedule_texts_are_rejected_quickly():
    start = time.perf_counter()
    for text in ["0:(1), " * 20_000, "x" * 100_000, "(" * 100_000, "0:(" + "(" * 50_000 + "1" + ")" * 50_000 + ")"]:
        with pytest.raises(ScheduleError, match="too long"):
            Schedule.parse(text)
    with pytest.raises(ScheduleError, match="too many keyframes"):
        Schedule.parse(",".join(f"{i % 10}:(1)" for i in range(2500)))
    assert time.perf_counter() - start < 2.0


def test_no_builtins_reachable_through_names():
    for name in ["__builtins__", "__import__", "globals", "locals", "vars", "exec", "compile", "type", "object"]:
        with pytest.raises(ScheduleError):
            SafeExpression(name).evaluate(t=0)


# ---- nodes ----------------------------------------------------------------------------------------


def test_nodes_parse_and_value(registry):
    spec = schedule_value.__nodegraph_spec__
    assert spec.inputs["schedule"].accepts_literal
    parsed = schedule_parse("0:(1.0), 30:(1.5)", 60, "linear", 0)
    out = spec.call({"schedule": parsed, "frame": 15}, None)
    assert out == {"value": pytest.approx(1.25), "int_value": 1}
    out = spec.call({"schedule": "0:(10), max_f:(20)", "frame": 5, "max_frames": 11}, None)
    assert out["value"] == pytest.approx(15.0) and out["int_value"] == 15
    with pytest.raises(NodeInputError, match="schedule"):
        schedule_value("0:(__import__('os'))", 0)
    with pytest.raises(NodeInputError, match="attribute access"):
        schedule_parse("0:(t.real)")


def test_plot_writes_png(roots):
    ctx = RunContext("t", "T", roots, CancelToken())
    path = schedule_plot(ctx, "0:(1), 30:(1.5), 60:(0.8)", 90, "cubic", 0, "plots/zoom")
    from PIL import Image

    assert path.endswith("zoom.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (600, 300)
    assert ctx.files == [roots.outputs / "plots" / "zoom.png"]
    assert sorted(p.name for p in (roots.outputs / "plots").iterdir()) == ["zoom.png"]  # no temp files left
    with pytest.raises(NodeInputError, match="escapes"):
        schedule_plot(ctx, "0:(1)", 10, "linear", 0, "../outside.png")


def test_schedule_nodes_run_in_a_graph(roots):
    from nodegraph.executor import Executor
    from nodegraph.graph import graph_from_data

    graph = graph_from_data(
        {
            "format": "nodegraph/1",
            "nodes": {
                "1": {"type": "ScheduleParse", "inputs": {"text": "0:(0), max_f:(100)", "max_frames": 11}},
                "2": {"type": "ScheduleValue", "inputs": {"schedule": {"from": ["1", "schedule"]}, "frame": 3}},
                "3": {"type": "SchedulePlot", "inputs": {"schedule": {"from": ["1", "schedule"]}, "filename": "s.png"}},
            },
        }
    )
    result = Executor(roots=roots).run(graph, targets=["2", "3"])
    assert result.outputs["2"]["value"] == pytest.approx(30.0)
    assert result.outputs["3"]["path"] == str(roots.outputs / "s.png")
    assert (roots.outputs / "s.png").stat().st_size > 0
