"""The project's own error types. Every user-facing failure is one of these."""

from __future__ import annotations

from dataclasses import dataclass


class NodegraphError(Exception):
    """Base class: anything the CLI and TUI report as a clear message, not a traceback."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a graph, precise enough to fix without reading code."""

    code: str  # e.g. "missing_input", "out_of_range", "type_mismatch", "cycle"
    message: str
    node_id: str | None = None
    node_type: str | None = None
    input: str | None = None
    expected: str | None = None
    got: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.node_id is not None:
            where = f"node {self.node_id!r}"
            if self.node_type:
                where += f" ({self.node_type})"
            if self.input:
                where += f", input {self.input!r}"
            where += ": "
        text = where + self.message
        if self.expected is not None or self.got is not None:
            text += f" (expected {self.expected}, got {self.got})"
        return text

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class GraphError(NodegraphError):
    """A graph that cannot be loaded or validated. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) in the graph:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class RegistryError(NodegraphError):
    """A node definition or plugin that cannot be registered."""


class NodeExecutionError(NodegraphError):
    """A node raised while running. Names the node, its type and a summary of its inputs."""

    def __init__(self, node_id: str, node_type: str, inputs_summary: str, cause: BaseException):
        self.node_id = node_id
        self.node_type = node_type
        self.inputs_summary = inputs_summary
        self.cause = cause
        reason = str(cause) or type(cause).__name__
        if not isinstance(cause, NodegraphError):
            reason = f"{type(cause).__name__}: {reason}"
        super().__init__(
            f"node {node_id!r} ({node_type}) failed: {reason}\n  inputs: {inputs_summary}"
        )


class NodeInputError(NodegraphError):
    """Raised by a node about one of its inputs (wrong size, unknown name...).

    The executor adds the node id and type, so a node only says which input and why."""

    def __init__(self, input: str, message: str, expected: str | None = None, got: str | None = None):
        self.input = input
        self.expected = expected
        self.got = got
        text = f"input {input!r}: {message}"
        if expected is not None or got is not None:
            text += f" (expected {expected}, got {got})"
        super().__init__(text)


class Cancelled(NodegraphError):
    """The run was cancelled through its CancelToken."""

    def __init__(self, message: str = "run cancelled"):
        super().__init__(message)
