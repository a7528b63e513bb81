"""The `nodegraph` command.

    nodegraph run GRAPH [--set NODE.INPUT=VALUE ...] [--out DIR] [--until NODE] [--json] [--quiet]
    nodegraph validate GRAPH [--json]
    nodegraph nodes [--json] [--category NAME]
    nodegraph schema
    nodegraph tui [GRAPH] [--images halfblock|sixel|kitty|auto]

Exit codes: 0 ok, 1 the run failed (or was cancelled), 2 invalid graph or usage.
User errors are printed as messages, never as tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .errors import GraphError, NodegraphError, Problem

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


class UsageError(NodegraphError):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodegraph",
        description="Run and inspect node graphs that teach how generative-image AI works.",
    )
    parser.add_argument("--plugins", action="append", default=[], metavar="DIR", help="load plugin nodes from DIR (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a graph headless and print the files it wrote")
    run.add_argument("graph", help="a graph file, or a packaged one such as examples/image_basics")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.INPUT=VALUE", help="override an input (VALUE is JSON, or plain text)")
    run.add_argument("--out", metavar="DIR", help="output root (default: ./output or the config's)")
    run.add_argument("--until", metavar="NODE", help="run only what NODE needs")
    run.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    run.add_argument("--quiet", action="store_true", help="print only the paths written")

    validate = sub.add_parser("validate", help="check a graph without running it")
    validate.add_argument("graph")
    validate.add_argument("--json", action="store_true")

    nodes = sub.add_parser("nodes", help="list every node type with its ports and docs")
    nodes.add_argument("--json", action="store_true")
    nodes.add_argument("--category", help="only this category")

    sub.add_parser("schema", help="print the JSON Schema of the graph format")

    lessons = sub.add_parser("lessons", help="the course: list, show, run, check and diff lessons")
    lessons_sub = lessons.add_subparsers(dest="lessons_command", metavar="ACTION")
    lessons_sub.add_parser("list", help="every lesson with its title and last check status")
    show = lessons_sub.add_parser("show", help="a lesson's notes in the terminal")
    show.add_argument("number", type=int)
    lrun = lessons_sub.add_parser("run", help="run a lesson's graph (its outputs and checks)")
    lrun.add_argument("number", type=int)
    lrun.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.INPUT=VALUE")
    lrun.add_argument("--out", metavar="DIR")
    lrun.add_argument("--quiet", action="store_true")
    lcheck = lessons_sub.add_parser("check", help="run a lesson's checks: N or all")
    lcheck.add_argument("which", nargs="?", default="all")
    lcheck.add_argument("--json", action="store_true")
    ldiff = lessons_sub.add_parser("diff", help="what lesson N adds to its parent")
    ldiff.add_argument("number", type=int)

    tui = sub.add_parser("tui", help="open the terminal UI (optionally on a graph)")
    tui.add_argument("graph", nargs="?")
    tui.add_argument(
        "--images",
        metavar="MODE",
        help="how pictures are drawn: halfblock (default), sixel, kitty or auto; "
        "without it $NODEGRAPH_TUI_IMAGES",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_INVALID
    try:
        return _COMMANDS[args.command](args)
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return EXIT_OK
    except GraphError as exc:
        _print_problems(exc.problems, getattr(args, "json", False))
        return EXIT_INVALID
    except UsageError as exc:
        print(f"nodegraph: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except NodegraphError as exc:
        print(f"nodegraph: {exc}", file=sys.stderr)
        return EXIT_FAILED


# ---- helpers ---------------------------------------------------------------------------------


def resolve_graph_path(name: str) -> Path:
    """A file path, or the name of a graph shipped with nodegraph (examples/..., lessons/...)."""
    path = Path(name)
    if path.exists():
        return path
    from .config import packaged_dir

    packaged = packaged_dir("graphs") / name
    for candidate in (packaged, packaged.with_suffix(".json")):
        if candidate.is_file():
            return candidate
    raise UsageError(f"no graph file {name!r} (and no packaged graph by that name)")


def _print_problems(problems: list[Problem], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"status": "invalid", "problems": [p.to_dict() for p in problems]}, indent=2))
        return
    print(f"nodegraph: {len(problems)} problem(s) in the graph:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)


def apply_sets(graph: Any, sets: list[str]) -> None:
    """Apply --set NODE.INPUT=VALUE overrides (VALUE parsed as JSON, else kept as text)."""
    for item in sets:
        target, sep, raw = item.partition("=")
        node_id, dot, input_name = target.rpartition(".")
        if not sep or not dot or not node_id or not input_name:
            raise UsageError(f"--set {item!r}: expected NODE.INPUT=VALUE, e.g. --set 3.seed=42")
        if node_id not in graph.nodes:
            raise UsageError(f"--set {item!r}: no node {node_id!r} in the graph")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        graph.nodes[node_id].inputs[input_name] = value


def _setup(args: argparse.Namespace, out: str | None = None):
    from .config import load_config
    from .registry import build_registry

    config = load_config(out=out, plugin_dirs=args.plugins)
    registry = build_registry(config.plugins)
    return config, registry


# ---- commands -----------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from .graph import load_graph
    from .validate import validate

    config, registry = _setup(args)
    graph = load_graph(resolve_graph_path(args.graph))
    problems = validate(graph, registry, config.roots)
    if problems:
        _print_problems(problems, args.json)
        return EXIT_INVALID
    if args.json:
        print(json.dumps({"status": "valid", "nodes": len(graph.nodes)}))
    else:
        print(f"{args.graph}: valid ({len(graph.nodes)} nodes)")
    return EXIT_OK


def _print_checks(lesson: Any, result: Any) -> None:
    for node_id in lesson.checks:
        outcome = result.outputs.get(node_id, {}).get("check")
        if outcome is not None:
            mark = "ok  " if outcome["passed"] else "FAIL"
            print(f"check {mark} {outcome['name']} ({outcome['detail']})", file=sys.stderr)


def cmd_run(args: argparse.Namespace, after: Any = None) -> int:
    from .context import CancelToken
    from .executor import Executor, describe_value
    from .graph import load_graph
    from .progress import make_display

    config, registry = _setup(args, out=args.out)
    graph = load_graph(resolve_graph_path(args.graph))
    apply_sets(graph, args.sets)
    if args.until is not None and args.until not in graph.nodes:
        raise UsageError(f"--until {args.until!r}: no such node in the graph")
    executor = Executor(registry, config.roots, memory_budget_bytes=config.memory_budget_bytes)
    cancel = CancelToken()
    display = make_display(graph, registry, quiet=args.quiet or args.json)
    try:
        with display:
            result = executor.run(graph, until=args.until, observers=[display], cancel=cancel, raise_errors=False)
    except KeyboardInterrupt:
        print("nodegraph: interrupted", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        summary = {
            "status": result.status,
            "files": [str(p) for p in result.files],
            "executed": result.executed,
            "cached": result.cached,
            "seconds": round(result.seconds, 4),
            "outputs": {nid: {k: describe_value(v) for k, v in outs.items()} for nid, outs in result.outputs.items()},
        }
        if result.error is not None:
            summary["error"] = str(result.error)
        print(json.dumps(summary, indent=2))
    else:
        for path in result.files:
            print(path)
        if after is not None:
            after(result)
        if result.error is not None:
            print(f"nodegraph: {result.error}", file=sys.stderr)
    return EXIT_OK if result.status == "ok" else EXIT_FAILED


def cmd_nodes(args: argparse.Namespace) -> int:
    _, registry = _setup(args)
    specs = [s for s in registry if args.category in (None, s.category)]
    if args.json:
        print(json.dumps([{**s.describe(), "input_schema": s.input_schema()} for s in specs], indent=2, default=str))
        return EXIT_OK
    category = None
    for spec in specs:
        if spec.category != category:
            category = spec.category
            print(f"\n[{category}]")
        ins = ", ".join(f"{name}: {i.type_names}{'' if i.required else '?'}" for name, i in spec.inputs.items())
        outs = ", ".join(f"{name}: {o.type.name}" for name, o in spec.outputs.items())
        print(f"  {spec.type_name}({ins}) -> {outs or '(writes files)'}")
        if spec.summary:
            print(f"      {spec.summary}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from .graph import graph_schema

    print(json.dumps(graph_schema(), indent=2))
    return EXIT_OK


def _status_file(config) -> Path:
    return config.roots.cache / "lesson_status.json"


def _read_status(config) -> dict[str, bool]:
    try:
        return json.loads(_status_file(config).read_text())
    except (OSError, ValueError):
        return {}


def cmd_lessons(args: argparse.Namespace) -> int:
    from .lessons import lesson_diff, list_lessons, load_lesson, run_checks

    action = args.lessons_command or "list"
    if action == "list":
        config, _ = _setup(args)
        status = _read_status(config)
        for lesson in list_lessons():
            mark = {True: "passed", False: "FAILED"}.get(status.get(str(lesson.number)), "not checked")
            parent = f"(after {lesson.parent})" if lesson.parent else "(fresh start)"
            print(f"{lesson.number:2d}  {lesson.title:<42} {lesson.track:<12} {parent:<14} {mark}")
        return EXIT_OK
    if action == "show":
        lesson = load_lesson(args.number)
        text = lesson.notes()
        if sys.stdout.isatty():
            from rich.console import Console
            from rich.markdown import Markdown

            Console().print(Markdown(text))
        else:
            print(text)
        return EXIT_OK
    if action == "diff":
        lesson = load_lesson(args.number)
        diff = lesson_diff(lesson)
        graph = lesson.graph()
        print(f"lesson {lesson.number}: {lesson.title} (parent: {lesson.parent or 'none, a fresh start'})")
        for kind in ("added", "changed", "removed"):
            for node_id in diff[kind]:
                node_type = graph.nodes[node_id].type if node_id in graph.nodes else ""
                print(f"  {kind:<8} #{node_id} {node_type}")
        return EXIT_OK
    if action == "run":
        lesson = load_lesson(args.number)
        args.graph, args.until, args.json = str(lesson.path), None, False
        args.plugins = [*args.plugins, *(str(p) for p in lesson.plugin_dirs())]
        return cmd_run(args, after=lambda result: _print_checks(lesson, result))
    # check
    from .executor import Executor

    config, registry = _setup(args)
    executor = Executor(registry, config.roots, memory_budget_bytes=config.memory_budget_bytes)
    lessons = list_lessons() if args.which == "all" else [load_lesson(_lesson_number(args.which))]
    status = _read_status(config)
    report = []
    all_passed = True
    for lesson in lessons:
        try:
            results = run_checks(lesson, executor)
            passed = all(r.passed for r in results) and bool(results)
            entries = [r.__dict__ for r in results]
            error = None if results else "this lesson declares no checks"
        except NodegraphError as exc:
            passed, entries, error = False, [], str(exc)
        status[str(lesson.number)] = passed
        all_passed &= passed
        report.append({"lesson": lesson.number, "title": lesson.title, "passed": passed, "checks": entries, "error": error})
        if not args.json:
            print(f"lesson {lesson.number:2d} {lesson.title}: {'passed' if passed else 'FAILED'}")
            for entry in entries:
                print(f"    {'ok  ' if entry['passed'] else 'FAIL'} {entry['name']} ({entry['detail']})")
            if error:
                print(f"    {error}")
    _status_file(config).parent.mkdir(parents=True, exist_ok=True)
    _status_file(config).write_text(json.dumps(status))
    if args.json:
        print(json.dumps(report, indent=2))
    return EXIT_OK if all_passed else EXIT_FAILED


def _lesson_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"lessons check {text!r}: give a lesson number or 'all'") from None


def cmd_tui(args: argparse.Namespace) -> int:
    try:
        from .ui.app import run_tui
    except ImportError as exc:
        raise NodegraphError(f"the TUI is not available: {exc}") from None
    return run_tui(args.graph, images=args.images)


_COMMANDS = {
    "run": cmd_run,
    "validate": cmd_validate,
    "nodes": cmd_nodes,
    "schema": cmd_schema,
    "lessons": cmd_lessons,
    "tui": cmd_tui,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
