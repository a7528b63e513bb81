"""Validation before anything runs: every problem at once, each naming the node id, the
node type, the input, and what was expected versus what was found."""

from __future__ import annotations

import difflib
from graphlib import CycleError, TopologicalSorter
from typing import Iterable

from .context import Roots
from .errors import GraphError, Problem
from .graph import Graph, GraphNode, Link, outer_references
from .node import NodeSpec, literal_problem
from .registry import Registry
from .types import FileInput, FileOutput, can_link


def validate(graph: Graph, registry: Registry, roots: Roots | None = None) -> list[Problem]:
    """Return every problem in `graph` (an empty list means it may run)."""
    return _validate(graph, registry, roots, _Scope())


class _Scope:
    """What a loop body can see: the nodes (and their specs) of the graphs around it."""

    def __init__(self, nodes: dict[str, GraphNode] | None = None, specs: dict[str, NodeSpec] | None = None, prefix: str = "", in_loop: bool = False):
        self.nodes = nodes or {}
        self.specs = specs or {}
        self.prefix = prefix
        self.in_loop = in_loop


def _validate(graph: Graph, registry: Registry, roots: Roots | None, scope: _Scope) -> list[Problem]:
    problems: list[Problem] = []
    specs: dict[str, NodeSpec] = {}
    for node_id, entry in graph.nodes.items():
        spec = registry.get(entry.type)
        if spec is None:
            close = registry.suggest(entry.type)
            hint = f"; did you mean {', '.join(close)}?" if close else "; run `nodegraph nodes` to list the known types"
            problems.append(
                Problem("unknown_node_type", f"unknown node type {entry.type!r}{hint}", node_id, entry.type)
            )
            continue
        specs[node_id] = spec

    visible_specs = {**scope.specs, **specs}
    for node_id, spec in specs.items():
        problems.extend(_check_node(graph, node_id, spec, visible_specs, roots, scope))
        entry = graph.nodes[node_id]
        if entry.body is not None or spec.takes_body:
            problems.extend(_check_body(graph, node_id, spec, registry, roots, scope, specs))

    problems.extend(_check_cycles(graph))
    if scope.prefix:
        problems = [_prefixed(p, scope.prefix) for p in problems]
    return problems


def _prefixed(problem: Problem, prefix: str) -> Problem:
    if problem.node_id is None or problem.node_id.startswith(prefix):
        return problem
    return Problem(problem.code, problem.message, prefix + problem.node_id, problem.node_type, problem.input, problem.expected, problem.got)


def _check_body(
    graph: Graph, node_id: str, spec: NodeSpec, registry: Registry, roots: Roots | None, scope: _Scope, specs: dict[str, NodeSpec]
) -> list[Problem]:
    from .loop import LOOP_RESULT, LOOP_STATE

    body = graph.nodes[node_id].body
    if not spec.takes_body:
        return [Problem("unexpected_body", "only loop nodes have a body", node_id, spec.type_name)]
    if body is None:
        return [Problem("missing_body", "a loop node needs a body: the graph it runs once per frame", node_id, spec.type_name)]
    problems = []
    visible = {**scope.nodes, **graph.nodes}
    for body_id in body.nodes:
        if body_id in visible:
            problems.append(
                Problem("duplicate_id", f"body node id {body_id!r} is also used outside the body; ids must be unique", node_id, spec.type_name)
            )
    results = [i for i, e in body.nodes.items() if e.type == LOOP_RESULT]
    if len(results) != 1:
        problems.append(
            Problem("loop_result", "a loop body needs exactly one LoopResult node", node_id, spec.type_name, expected="1", got=str(len(results)))
        )
    states = [i for i, e in body.nodes.items() if e.type == LOOP_STATE]
    if len(states) > 1:
        problems.append(Problem("loop_state", "a loop body has at most one LoopState node", node_id, spec.type_name))
    inner = _Scope(visible, {**scope.specs, **specs}, f"{scope.prefix}{node_id}/", in_loop=True)
    problems.extend(_validate(body, registry, roots, inner))
    return problems


def check(graph: Graph, registry: Registry, roots: Roots | None = None) -> None:
    problems = validate(graph, registry, roots)
    if problems:
        raise GraphError(problems)


def _check_node(
    graph: Graph, node_id: str, spec: NodeSpec, specs: dict[str, NodeSpec], roots: Roots | None, scope: _Scope
) -> Iterable[Problem]:
    entry = graph.nodes[node_id]
    for name in entry.inputs:
        if name not in spec.inputs:
            close = difflib.get_close_matches(name, list(spec.inputs), n=2)
            known = ", ".join(spec.inputs) or "(none)"
            hint = f"did you mean {', '.join(close)}?" if close else f"known inputs: {known}"
            yield Problem("unknown_input", f"no such input; {hint}", node_id, spec.type_name, name)

    given = entry.inputs
    for name, input_spec in spec.inputs.items():
        value = given.get(name, _MISSING)
        if value is _MISSING:
            if input_spec.required:
                yield Problem(
                    "missing_input",
                    "required input is missing",
                    node_id,
                    spec.type_name,
                    name,
                    expected=input_spec.type_names if not input_spec.accepts_literal else f"a {input_spec.type_names} value or link",
                    got="nothing",
                )
            continue
        if type(value) is Link:
            yield from _check_link(graph, node_id, spec, name, value, specs, scope)
            continue
        if is_schedule(value):
            reason = _schedule_problem(value, input_spec, scope.in_loop)
            if reason:
                yield Problem("bad_schedule", reason, node_id, spec.type_name, name, got=repr(value.get("schedule"))[:60])
            continue
        if input_spec.check_literal(value) is not None:
            yield literal_problem(spec, node_id, name, value)
            continue
        if roots is not None and isinstance(value, str) and input_spec.file is not None:
            if isinstance(input_spec.file, FileInput):
                reason = roots.check_read(value, input_spec.file.root)
            elif isinstance(input_spec.file, FileOutput):
                reason = roots.check_write(value)
            else:
                reason = None
            if reason:
                yield Problem("path_outside_roots", reason, node_id, spec.type_name, name, got=repr(value))


def is_schedule(value: object) -> bool:
    return isinstance(value, dict) and "schedule" in value and set(value) <= {"schedule", "interpolation"}


def _schedule_problem(value: dict, input_spec: object, in_loop: bool) -> str | None:
    from .schedule import ScheduleError, as_schedule
    from .types import FLOAT, INT

    if not in_loop:
        return "a keyframe schedule only means something inside a FrameLoop body"
    if not any(t in (FLOAT, INT) for t in input_spec.types):
        return "only number inputs (INT, FLOAT) take a schedule"
    interpolation = value.get("interpolation", "linear")
    if interpolation not in ("linear", "cubic", "step") or not isinstance(value["schedule"], str):
        return "a schedule is {\"schedule\": \"0:(1.0), 30:(1.5)\", \"interpolation\": \"linear|cubic|step\"}"
    try:
        as_schedule(value["schedule"], interpolation=interpolation, max_frames=100_000, seed=0)
    except ScheduleError as exc:
        return str(exc)
    return None


def _check_link(
    graph: Graph, node_id: str, spec: NodeSpec, name: str, link: Link, specs: dict[str, NodeSpec], scope: "_Scope"
) -> Iterable[Problem]:
    input_spec = spec.inputs[name]
    source_id, output_name = link.source
    source_entry = graph.nodes.get(source_id) or scope.nodes.get(source_id)
    if source_entry is None:
        yield Problem(
            "missing_source_node",
            f"link from node {link.node_id!r}, which does not exist",
            node_id,
            spec.type_name,
            name,
        )
        return
    source_spec = specs.get(source_id)
    if source_spec is None:
        return  # its unknown type is already reported
    output = source_spec.outputs.get(output_name)
    if output is None:
        known = ", ".join(source_spec.outputs) or "(none)"
        yield Problem(
            "missing_output",
            f"node {link.node_id!r} ({source_spec.type_name}) has no output {link.output!r}; its outputs: {known}",
            node_id,
            spec.type_name,
            name,
        )
        return
    if not any(can_link(output.type, accepted) for accepted in input_spec.types):
        yield Problem(
            "type_mismatch",
            f"link from {link.node_id}.{link.output} carries the wrong type",
            node_id,
            spec.type_name,
            name,
            expected=input_spec.type_names,
            got=output.type.name,
        )


def dependencies(graph: Graph) -> dict[str, list[str]]:
    """node id -> ids of the nodes it reads from (links to missing nodes left out); a loop
    node also depends on the outer nodes its body reads."""
    nodes = graph.nodes
    deps = {
        node_id: [v.source[0] for v in entry.inputs.values() if type(v) is Link and v.source[0] in nodes]
        for node_id, entry in nodes.items()
    }
    for node_id, entry in nodes.items():
        if entry.body is not None:
            deps[node_id] += sorted(ref for ref in outer_references(entry.body) if ref in nodes)
    return deps


def _kahn(deps: dict[str, list[str]], position: dict[str, int]) -> list[str]:
    """Dependencies first; among nodes ready together, file order. Leaves out nodes on or
    behind a cycle (the caller compares lengths)."""
    import heapq

    waiting = {node_id: len(set(sources)) for node_id, sources in deps.items()}
    readers: dict[str, list[str]] = {node_id: [] for node_id in deps}
    for node_id, sources in deps.items():
        for source in set(sources):
            readers[source].append(node_id)
    ready = [(position[n], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, node_id = heapq.heappop(ready)
        order.append(node_id)
        for reader in readers[node_id]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, (position[reader], reader))
    return order


def _check_cycles(graph: Graph) -> list[Problem]:
    deps = dependencies(graph)
    if len(_kahn(deps, {n: i for i, n in enumerate(deps)})) == len(deps):
        return []
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for node_id, sources in deps.items():
        sorter.add(node_id, *sources)
    try:
        sorter.prepare()
    except CycleError as exc:
        cycle = list(exc.args[1])
        shown = " -> ".join(cycle)
        first = cycle[0]
        return [Problem("cycle", f"the graph has a cycle: {shown}", first, graph.nodes[first].type)]
    return []


class _Missing:
    pass


_MISSING = _Missing()


def topological_order(graph: Graph, targets: Iterable[str]) -> list[str]:
    """Nodes needed for `targets`, dependencies first (ties keep file order: stable plans)."""
    deps = dependencies(graph)
    needed: dict[str, list[str]] = {}
    stack = list(targets)
    while stack:
        node_id = stack.pop()
        if node_id in needed:
            continue
        needed[node_id] = deps[node_id]
        stack.extend(deps[node_id])
    position = {node_id: index for index, node_id in enumerate(graph.nodes)}
    order = _kahn(needed, position)
    if len(order) != len(needed):
        raise GraphError(_check_cycles(graph))
    return order
