"""nodegraph: a typed node-graph engine for learning generative-image AI.

The engine (this package) knows nothing of diffusion and never imports torch; node packs
live in ``nodegraph.nodes`` and import what they need lazily.
"""

from .context import CancelToken, Roots, RunContext, atomic_path, atomic_write
from .errors import Cancelled, GraphError, NodeExecutionError, NodeInputError, NodegraphError, Problem, RegistryError
from .node import NodeSpec, node
from .types import Doc, FileInput, FileOutput, Multiline, PortType, Range, port_type

__version__ = "0.1.0"

__all__ = [
    "CancelToken",
    "Cancelled",
    "Doc",
    "FileInput",
    "FileOutput",
    "GraphError",
    "Multiline",
    "NodeExecutionError",
    "NodeInputError",
    "NodeSpec",
    "NodegraphError",
    "PortType",
    "Problem",
    "Range",
    "RegistryError",
    "Roots",
    "RunContext",
    "atomic_path",
    "atomic_write",
    "node",
    "port_type",
]
