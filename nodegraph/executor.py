"""The executor: validate, plan, then run each needed node once, reusing cached results.

    executor = Executor(registry, roots)
    result = executor.run(graph)                 # every output node
    result = executor.run(graph, until="7")      # only what node 7 needs
    result.outputs["7"]["image"], result.files

One Executor keeps its caches between runs (the CLI makes one per process, the TUI one
per session), so a second run of an edited graph recomputes only what the edit touched.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .cache import DiskCache, MemoryCache, file_stamp
from .context import CancelToken, Roots, RunContext
from .errors import Cancelled, GraphError, NodeExecutionError, NodeInputError, NodegraphError, Problem
from .events import (
    Event,
    NodeCached,
    NodeFailed,
    NodeFinished,
    NodeProgress,
    NodeStarted,
    Observer,
    RunFinished,
    RunStarted,
)
from .graph import Graph, Link, dumps_graph, graph_to_data, outer_references
from .node import NodeSpec
from .registry import Registry, build_registry
from .types import FileInput
from .validate import is_schedule, topological_order, validate

BODY_REF = "\x00body:"  # marks the pseudo-links from a loop node to outer nodes its body reads


@dataclass
class RunResult:
    run_id: str
    status: str  # "ok", "failed", "cancelled"
    plan: list[str]
    outputs: dict[str, dict[str, Any]]  # outputs of the target nodes, by node id then output name
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    signatures: dict[str, str] = field(default_factory=dict)
    error: NodegraphError | None = None


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)


def _canonical(value: Any) -> str:
    return _ENCODER.encode(value)


def _peak_memory_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    torch = sys.modules.get("torch")  # only if a node already imported it
    if torch is not None:
        try:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                peak += int(torch.cuda.max_memory_allocated())
        except Exception:
            pass
    return peak


def describe_value(value: Any) -> str:
    """A short, safe summary of an input value for error messages."""
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        dims = "×".join(str(int(d)) for d in shape)
        return f"{type(value).__name__}[{dims}, {value.dtype}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe_value(v)}" for k, v in list(value.items())[:4]) + "}"
    if isinstance(value, (str, int, float, bool)) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


class Executor:
    def __init__(
        self,
        registry: Registry | None = None,
        roots: Roots | None = None,
        memory_budget_bytes: int = 4 * 2**30,
        disk_cache: bool = True,
        services: dict[str, Any] | None = None,
    ) -> None:
        self.registry = registry or build_registry()
        self.roots = roots or Roots()
        self.cache = MemoryCache(memory_budget_bytes)
        self.disk_cache = DiskCache(self.roots.cache) if disk_cache else None
        self.services = services if services is not None else {}
        self.execution_counts: dict[str, int] = {}  # node id -> times actually executed (tests, TUI)
        self._last_valid_key: str | None = None

    # -- planning ---------------------------------------------------------------------------------
    def default_targets(self, graph: Graph) -> list[str]:
        """Output nodes; if a graph has none, every node nothing else reads from."""
        outputs = [
            node_id
            for node_id, entry in graph.nodes.items()
            if (spec := self.registry.get(entry.type)) is not None and spec.output_node
        ]
        if outputs:
            return outputs
        read = {link.node_id for entry in graph.nodes.values() for link in entry.links().values()}
        return [node_id for node_id in graph.nodes if node_id not in read]

    def resolve_targets(self, graph: Graph, targets: Sequence[str] | None = None, until: str | None = None) -> list[str]:
        """`until` wins over `targets`; neither means the default targets."""
        if until is not None:
            targets = [until]
        targets = list(targets) if targets is not None else self.default_targets(graph)
        missing = [t for t in targets if t not in graph.nodes]
        if missing:
            raise GraphError([Problem("unknown_target", f"no node {t!r} in the graph", node_id=t) for t in missing])
        return targets

    def plan(self, graph: Graph, targets: Sequence[str] | None = None, until: str | None = None) -> list[str]:
        return topological_order(graph, self.resolve_targets(graph, targets, until))

    def outputs_of(self, result: RunResult, node_id: str) -> dict[str, Any] | None:
        """Outputs of any node of a finished run (not only its targets), while the memory
        cache still holds them: what an editor shows when you select a node."""
        if node_id in result.outputs:
            return result.outputs[node_id]
        signature = result.signatures.get(node_id)
        return self.cache.get(signature) if signature else None

    # -- running ------------------------------------------------------------------------------------
    def run(
        self,
        graph: Graph,
        targets: Sequence[str] | None = None,
        until: str | None = None,
        observers: Iterable[Observer] = (),
        cancel: CancelToken | None = None,
        check: bool = True,
        raise_errors: bool = True,
    ) -> RunResult:
        """Validate and run. Raises GraphError if invalid; NodeExecutionError/Cancelled if a
        node fails or the run is cancelled (unless raise_errors=False: then see result.status)."""
        # Read every node once: literal inputs (as canonical JSON, the part of the cache key
        # the node itself contributes) and links (input name, source id, output name).
        compiled = _compile(graph, graph.nodes)
        if check:
            # Validation is skipped only for a graph identical to the last one that passed.
            key = hashlib.blake2b(
                _canonical([id(self.registry), len(self.registry), str(self.roots), list(compiled.items())]).encode(),
                digest_size=16,
            ).hexdigest()
            if key != self._last_valid_key:
                problems = validate(graph, self.registry, self.roots)
                if problems:
                    raise GraphError(problems)
                self._last_valid_key = key
        observers = list(observers)
        cancel = cancel or CancelToken()
        run_id = uuid.uuid4().hex[:12]
        resolved = self.resolve_targets(graph, targets, until)
        order = topological_order(graph, resolved)
        target_set = set(resolved)
        emit = _Emitter(observers)
        emit(RunStarted(run_id, tuple(order)))

        # How many planned nodes still read each node's outputs: values are dropped from
        # the working set after their last reader (the cache may still keep them).
        readers_left: dict[str, int] = {node_id: 0 for node_id in order}
        for node_id in order:
            for _, source_id, _ in compiled[node_id][3]:
                readers_left[source_id] += 1

        graph_json: str | None = None
        working: dict[str, dict[str, Any]] = {}
        signatures: dict[str, str] = {}
        result = RunResult(run_id, "ok", order, {}, signatures=signatures)
        started = time.perf_counter()
        nonce = run_id  # enters the key of non-deterministic nodes: they re-run every time

        try:
            for index, node_id in enumerate(order):
                cancel.check()
                type_name, literals, literals_json, links = compiled[node_id]
                spec = self.registry.get(type_name)
                signature = self._signature(spec, literals, literals_json, links, signatures, nonce)
                signatures[node_id] = signature

                outputs = self.cache.get(signature)
                source = "memory"
                if outputs is None and spec.persist and self.disk_cache is not None:
                    outputs = self.disk_cache.get(signature)
                    source = "disk"
                    if outputs is not None:
                        self.cache.put(signature, outputs)
                if outputs is not None:
                    result.cached.append(node_id)
                    if emit.observers:
                        emit(NodeCached(run_id, node_id, spec.type_name, source))
                else:
                    if spec.output_node and graph_json is None:
                        graph_json = dumps_graph(graph)
                    values, body_scope = _bind(literals, links, working, {})
                    body = None
                    if spec.takes_body:
                        body = _BodyRun(self, graph.nodes[node_id].body, node_id, signature, body_scope, signatures, emit, cancel, run_id, graph_json)
                    outputs, files = self._execute(
                        run_id, index, len(order), node_id, spec, values, signature, cancel, emit, graph_json, body
                    )
                    result.executed.append(node_id)
                    result.files.extend(files)
                    self.cache.put(signature, outputs)
                    if spec.persist and self.disk_cache is not None:
                        self.disk_cache.put(signature, outputs)
                working[node_id] = outputs
                if node_id in target_set:
                    result.outputs[node_id] = outputs
                for _, source_id, _ in links:
                    readers_left[source_id] -= 1
                    if readers_left[source_id] == 0 and source_id not in target_set:
                        working.pop(source_id, None)
        except Cancelled as exc:
            result.status, result.error = "cancelled", exc
        except NodeExecutionError as exc:
            result.status, result.error = "failed", exc
        result.seconds = time.perf_counter() - started
        emit(
            RunFinished(
                run_id,
                result.status,
                result.seconds,
                tuple(result.executed),
                tuple(result.cached),
                tuple(result.files),
            )
        )
        if raise_errors and result.error is not None:
            raise result.error
        return result

    def _signature(
        self, spec: NodeSpec, literals: dict[str, Any], literals_json: str, links: list[tuple[str, str, str]],
        signatures: dict[str, str], nonce: str,
    ) -> str:
        """hash(type, code version, literal inputs, what the files they name hold now,
        (input, upstream signature, output)...)."""
        upstream = "\x1f".join(sorted(f"{name}\x1e{signatures[source]}\x1e{output}" for name, source, output in links))
        text = f"{spec.type_name}\x1d{spec.code_version}\x1d{literals_json}\x1d{upstream}"
        stamps = self._file_stamps(spec, literals)
        if stamps:
            text += f"\x1d{stamps}"
        if not spec.deterministic:
            text += f"\x1d{nonce}"
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def _file_stamps(self, spec: NodeSpec, literals: dict[str, Any]) -> str:
        """The stamps (see file_stamp) of the files and folders that file inputs name: a node
        whose picture or model folder was replaced on disk runs again, even under the same
        name. Names that resolve to nothing (a Hub id, a missing file) add nothing; the node
        reports those itself."""
        stamps = []
        for name, value in sorted(literals.items()):
            declared = spec.inputs.get(name)
            if declared is None or not isinstance(declared.file, FileInput) or not isinstance(value, str) or not value:
                continue
            try:
                path = self.roots.resolve_read(value, declared.file.root)
            except OSError:
                continue
            stamps.append(f"{name}\x1e{file_stamp(path)}")
        return "\x1f".join(stamps)

    def _execute(
        self,
        run_id: str,
        index: int,
        total: int,
        node_id: str,
        spec: NodeSpec,
        values: dict[str, Any],
        signature: str,
        cancel: CancelToken,
        emit: "_Emitter",
        graph_json: str | None,
        body: "_BodyRun | None" = None,
    ) -> tuple[dict[str, Any], list[Path]]:
        if emit.observers:
            emit(NodeStarted(run_id, node_id, spec.type_name, index, total))

        def on_progress(step: int, steps: int, preview: Any, text: str) -> None:
            emit(NodeProgress(run_id, node_id, step, steps, preview, text))

        ctx = RunContext(
            node_id,
            spec.type_name,
            self.roots,
            cancel,
            on_progress if emit.observers else None,
            graph_json,
            self.services,
        )
        ctx.signature = signature
        if body is not None:
            ctx._body_runner = body
        begun = time.perf_counter()
        try:
            for name, value in values.items():
                choices = spec.inputs[name].choices
                if choices is not None and value not in choices:  # a linked STRING into an enum
                    raise NodeInputError(name, "not one of the allowed names", ", ".join(choices), repr(value))
            outputs = spec.call(values, ctx)
        except Cancelled:
            raise
        except Exception as exc:
            summary = ", ".join(f"{k}={describe_value(v)}" for k, v in values.items()) or "(none)"
            error = NodeExecutionError(node_id, spec.type_name, summary, exc)
            emit(NodeFailed(run_id, node_id, spec.type_name, error))
            raise error from exc
        self.execution_counts[node_id] = self.execution_counts.get(node_id, 0) + 1
        if emit.observers:
            seconds = time.perf_counter() - begun
            emit(NodeFinished(run_id, node_id, spec.type_name, seconds, _peak_memory_bytes(), tuple(ctx.files)))
        return outputs, ctx.files


def _compile(graph: Graph, visible: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any], str, list[tuple[str, str, str]]]]:
    """Read every node once: its type, literal inputs, their canonical JSON (the part of the
    cache key the node contributes itself) and links (input name, source id, output name).
    A loop node's body enters its JSON, and the outer nodes the body reads become links."""
    compiled = {}
    for node_id, entry in graph.nodes.items():
        literals, links = {}, []
        for name, value in entry.inputs.items():
            if type(value) is Link:
                links.append((name, value.source[0], value.source[1]))
            else:
                literals[name] = value
        literals_json = _canonical(literals)
        if entry.body is not None:
            literals_json += _canonical(graph_to_data(entry.body, nested=True))
            for ref in sorted(outer_references(entry.body)):
                if ref in visible:
                    links.append((BODY_REF + ref, ref, ""))
        compiled[node_id] = (entry.type, literals, literals_json, links)
    return compiled


def _bind(literals: dict[str, Any], links: list[tuple[str, str, str]], working: dict[str, Any], scope: dict[str, Any]):
    """The input values of one node, and the outer values its body (if any) may read."""
    values = dict(literals)
    body_scope: dict[str, Any] = {}
    for name, source_id, output_name in links:
        outputs = working[source_id] if source_id in working else scope[source_id]
        if name.startswith(BODY_REF):
            body_scope[source_id] = outputs
        else:
            values[name] = outputs[output_name]
    return values, body_scope


class _BodyRun:
    """Runs a loop node's body for one frame, with the executor's caching and events.

    Body nodes that do not depend on LoopState are cached like any node (encode the prompt
    once); the others are recomputed every frame and not kept, so memory stays flat however
    many frames the loop streams."""

    def __init__(self, executor: "Executor", body: Graph, loop_id: str, loop_signature: str, scope: dict[str, Any], scope_signatures: dict[str, str], emit: "_Emitter", cancel: CancelToken, run_id: str, graph_json: str | None) -> None:
        from .loop import LOOP_RESULT

        self.executor = executor
        self.body = body
        self.loop_id = loop_id
        self.loop_signature = loop_signature
        self.scope = scope
        self.scope_signatures = scope_signatures
        self.emit = emit
        self.cancel = cancel
        self.run_id = run_id
        self.graph_json = graph_json
        self.compiled = _compile(body, {**scope, **body.nodes})
        self.result_id = next(i for i, e in body.nodes.items() if e.type == LOOP_RESULT)
        self.order = topological_order(body, [self.result_id])
        self._schedules: dict[Any, Any] = {}

    def _scheduled(self, value: dict[str, Any], state: dict[str, Any]) -> float:
        from .schedule import as_schedule

        key = (value["schedule"], value.get("interpolation", "linear"), state["max_frames"], state["seed"])
        schedule = self._schedules.get(key)
        if schedule is None:
            schedule = self._schedules[key] = as_schedule(
                value["schedule"], interpolation=key[1], max_frames=state["max_frames"], seed=state["seed"]
            )
        return schedule.at(state["frame"])

    def __call__(self, state: dict[str, Any], frame: int) -> Any:
        from .loop import LOOP_STATE

        executor = self.executor
        working: dict[str, dict[str, Any]] = {}
        signatures = dict(self.scope_signatures)
        stateful: set[str] = set()
        for index, node_id in enumerate(self.order):
            self.cancel.check()
            type_name, literals, literals_json, links = self.compiled[node_id]
            spec = executor.registry.get(type_name)
            shown_id = f"{self.loop_id}/{node_id}"
            if type_name == LOOP_STATE:
                working[node_id] = dict(state)
                signatures[node_id] = hashlib.blake2b(f"{self.loop_signature}\x1d{frame}".encode(), digest_size=16).hexdigest()
                stateful.add(node_id)
                continue
            scheduled = {name: v for name, v in literals.items() if is_schedule(v)}
            if scheduled:
                literals = {**literals, **{name: self._scheduled(v, state) for name, v in scheduled.items()}}
                literals_json = _canonical(literals)
            depends_on_state = bool(scheduled) or any(source in stateful for _, source, _ in links)
            signature = executor._signature(spec, literals, literals_json, links, signatures, self.run_id)
            signatures[node_id] = signature
            outputs = None if depends_on_state else executor.cache.get(signature)
            if outputs is None:
                values, body_scope = _bind(literals, links, working, self.scope)
                inner = None
                if spec.takes_body:
                    inner = _BodyRun(executor, self.body.nodes[node_id].body, shown_id, signature, {**self.scope, **working, **body_scope}, signatures, self.emit, self.cancel, self.run_id, self.graph_json)
                outputs, _ = executor._execute(
                    self.run_id, index, len(self.order), shown_id, spec, values, signature, self.cancel, self.emit, self.graph_json, inner
                )
                if depends_on_state:
                    stateful.add(node_id)
                else:
                    executor.cache.put(signature, outputs)
            working[node_id] = outputs
        return working[self.result_id]["image"]


class _Emitter:
    """Sends events to observers; an observer that raises is reported once and then ignored,
    so a broken display never breaks a run."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers

    def __call__(self, event: Event) -> None:
        for observer in list(self.observers):
            try:
                observer(event)
            except Cancelled:
                raise
            except Exception as exc:  # pragma: no cover - defensive
                self.observers.remove(observer)
                print(f"nodegraph: an event observer failed and was removed: {exc!r}", file=sys.stderr)
