"""The node API, which is also the plugin API.

A node is a typed Python function (or a small class with a ``run`` method) decorated with
``@node``. Everything the engine needs is read from the signature:

* each parameter is an input; its annotation gives the port type, its default makes it
  optional, ``Annotated[..., Range(...), Doc(...)]`` adds bounds and help, ``Literal[...]``
  makes an enum;
* the return annotation gives the outputs: one port type (output named after the type,
  or ``output=``), or a ``NamedTuple`` whose fields are the named outputs;
* a parameter annotated ``RunContext`` is not an input: the engine passes the run context
  (progress, cancellation, file roots) there.

    @node(category="guidance")
    def cfg_combine(uncond: Noise, cond: Noise,
                    scale: Annotated[float, Range(0.0, 30.0, step=0.5)] = 7.5) -> Noise:
        '''Classifier-free guidance ...'''
        return uncond + scale * (cond - uncond)
"""

from __future__ import annotations

import hashlib
import inspect
import re
import types as pytypes
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Literal, get_args, get_origin

from .context import RunContext
from .errors import Problem, RegistryError
from .types import (
    ANY,
    BOOL,
    ENUM,
    FLOAT,
    INT,
    JSON,
    SEED,
    STRING,
    Doc,
    FileInput,
    FileOutput,
    Multiline,
    PortType,
    Range,
)

_REQUIRED = inspect.Parameter.empty

_PLAIN_TYPES: dict[Any, PortType] = {int: INT, float: FLOAT, str: STRING, bool: BOOL}


@dataclass
class InputSpec:
    name: str
    types: tuple[PortType, ...]
    default: Any = _REQUIRED
    optional: bool = False  # accepts None / may be left unconnected
    range: Range | None = None
    choices: tuple[str, ...] | None = None
    doc: str = ""
    file: FileInput | FileOutput | None = None
    multiline: bool = False
    python_type: Any = Any

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED and not self.optional

    @property
    def has_default(self) -> bool:
        return self.default is not _REQUIRED

    @property
    def accepts_literal(self) -> bool:
        return any(t.literal for t in self.types)

    @property
    def type_names(self) -> str:
        return " | ".join(t.name for t in self.types)

    def check_literal(self, value: Any) -> tuple[str, str, str] | None:
        """Check a literal value; return (code, message, expected) when it is wrong."""
        if value is None:
            if self.optional:
                return None
            return ("wrong_type", "a value is required here", self.type_names)
        if not self.accepts_literal:
            return (
                "link_required",
                "this input takes a link from another node's output, not a typed value",
                f"a link carrying {self.type_names}",
            )
        kind = self.types[0]
        if kind is ENUM or self.choices is not None:
            if not isinstance(value, str) or value not in (self.choices or ()):
                shown = ", ".join(self.choices or ())
                return ("not_in_enum", "not one of the allowed names", f"one of: {shown}")
            return None
        if kind in (INT, SEED):
            if isinstance(value, bool) or not isinstance(value, int):
                return ("wrong_type", "not an integer", "integer")
        elif kind is FLOAT:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return ("wrong_type", "not a number", "number")
            if value != value or value in (float("inf"), float("-inf")):
                return ("wrong_type", "not a finite number", "finite number")
        elif kind is BOOL:
            if not isinstance(value, bool):
                return ("wrong_type", "not true/false", "true or false")
        elif kind is STRING:
            if not isinstance(value, str):
                return ("wrong_type", "not text", "string")
        elif kind is JSON:
            problem = _check_python_type(self.python_type, value)
            if problem:
                return ("wrong_type", problem, _type_label(self.python_type))
        if kind is SEED and not 0 <= value < 2**64:
            return ("out_of_range", "seed outside 0 .. 2**64-1", "0 <= seed < 2**64")
        if self.range is not None and kind in (INT, FLOAT, SEED):
            low, high = self.range.min, self.range.max
            if (low is not None and value < low) or (high is not None and value > high):
                return ("out_of_range", "outside the allowed range", _range_label(self.range))
        return None

    def describe(self) -> dict:
        """A JSON-friendly description (for `nodegraph nodes --json` and the TUI inspector)."""
        out: dict[str, Any] = {"type": self.type_names, "required": self.required}
        if self.has_default:
            out["default"] = self.default
        if self.optional:
            out["optional"] = True
        if self.range is not None:
            out["range"] = {k: v for k, v in vars(self.range).items() if v is not None}
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.doc:
            out["doc"] = self.doc
        if isinstance(self.file, FileInput):
            out["file"] = {"root": self.file.root, "extensions": list(self.file.extensions)}
        elif isinstance(self.file, FileOutput):
            out["file"] = {"root": "output"}
        if self.multiline:
            out["multiline"] = True
        return out


@dataclass
class OutputSpec:
    name: str
    type: PortType


@dataclass
class NodeSpec:
    type_name: str
    run: Callable[..., Any]
    category: str
    doc: str
    inputs: dict[str, InputSpec]
    outputs: dict[str, OutputSpec]
    version: str = "1"
    deterministic: bool = True
    output_node: bool = False
    persist: bool = False
    takes_body: bool = False  # a loop node: owns a subgraph run once per frame
    context_param: str | None = None
    returns_tuple: bool = False
    source: str = "builtin"
    origin: str = ""  # module:qualname, for messages
    display_name: str = ""
    _code_version: str | None = field(default=None, repr=False)

    @property
    def code_version(self) -> str:
        """The node's declared version plus a hash of its source: enters every cache key, so a
        changed node (or an upgraded plugin) never reuses results of the old code."""
        if self._code_version is None:
            try:
                code = inspect.getsource(self.run)
            except (OSError, TypeError):
                code = getattr(getattr(self.run, "__code__", None), "co_code", b"").hex()
            digest = hashlib.blake2b(f"{self.version}\0{code}".encode(), digest_size=8)
            self._code_version = f"{self.version}-{digest.hexdigest()}"
        return self._code_version

    @property
    def summary(self) -> str:
        return self.doc.strip().split("\n\n")[0].replace("\n", " ") if self.doc else ""

    def call(self, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Run the node on resolved input values; return its outputs by name."""
        kwargs = dict(values)
        if self.context_param:
            kwargs[self.context_param] = ctx
        result = self.run(**kwargs)
        if not self.outputs:
            return {}
        if self.returns_tuple:
            if not isinstance(result, tuple) or len(result) != len(self.outputs):
                raise TypeError(
                    f"node returned {type(result).__name__}, expected a tuple of "
                    f"{len(self.outputs)} outputs ({', '.join(self.outputs)})"
                )
            return dict(zip(self.outputs, result))
        return {next(iter(self.outputs)): result}

    def input_schema(self) -> dict:
        """JSON Schema of the inputs that can be typed as values, built by pydantic from the
        signature (ranges become minimum/maximum, enums become enum, docs descriptions).
        Editors and the TUI's inspector use it; links are described in `describe()`."""
        from pydantic import Field, create_model

        fields: dict[str, Any] = {}
        for name, spec in self.inputs.items():
            if not spec.accepts_literal:
                continue
            if spec.choices is not None:
                tp: Any = Literal[spec.choices]  # type: ignore[valid-type]
            elif spec.types[0] in (INT, SEED):
                tp = int
            elif spec.types[0] is FLOAT:
                tp = float
            elif spec.types[0] is BOOL:
                tp = bool
            elif spec.types[0] is STRING:
                tp = str
            else:
                tp = spec.python_type if spec.python_type is not Any else Any
            if spec.optional:
                tp = tp | None
            constraints: dict[str, Any] = {}
            if spec.range is not None:
                if spec.range.min is not None:
                    constraints["ge"] = spec.range.min
                if spec.range.max is not None:
                    constraints["le"] = spec.range.max
                if spec.range.step is not None:
                    constraints["json_schema_extra"] = {"step": spec.range.step}
            default = spec.default if spec.has_default else ...
            fields[name] = (tp, Field(default, description=spec.doc or None, **constraints))
        model = create_model(f"{self.type_name}Inputs", **fields)
        return model.model_json_schema()

    def describe(self) -> dict:
        return {
            "type": self.type_name,
            "display_name": self.display_name,
            "category": self.category,
            "doc": self.doc,
            "version": self.version,
            "deterministic": self.deterministic,
            "output_node": self.output_node,
            "takes_body": self.takes_body,
            "source": self.source,
            "inputs": {name: spec.describe() for name, spec in self.inputs.items()},
            "outputs": {name: out.type.name for name, out in self.outputs.items()},
        }


# ---- reading signatures -----------------------------------------------------------------


def _range_label(r: Range) -> str:
    if r.min is not None and r.max is not None:
        return f"{r.min} <= value <= {r.max}"
    if r.min is not None:
        return f"value >= {r.min}"
    return f"value <= {r.max}"


def _type_label(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_python_type(tp: Any, value: Any) -> str | None:
    """Structural check of a JSON literal against list[...] / dict[...] / tuple annotations."""
    if tp is Any:
        return None
    origin = get_origin(tp) or tp
    args = get_args(tp)
    if origin in (list, tuple):
        if not isinstance(value, list):
            return "not a list"
        if args and args[-1] is not Ellipsis and origin is tuple and len(args) != len(value):
            return f"needs exactly {len(args)} items"
        item_types = args if origin is tuple and args and args[-1] is not Ellipsis else args[:1]
        for index, item in enumerate(value):
            item_tp = item_types[min(index, len(item_types) - 1)] if item_types else Any
            problem = _check_python_type(item_tp, item)
            if problem:
                return f"item {index}: {problem}"
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return "not an object"
        if len(args) == 2:
            for key, item in value.items():
                problem = _check_python_type(args[1], item)
                if problem:
                    return f"key {key!r}: {problem}"
        return None
    if origin is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "not a number"
    if origin is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "not an integer"
    if origin is str:
        return None if isinstance(value, str) else "not text"
    if origin is bool:
        return None if isinstance(value, bool) else "not true/false"
    if origin in (typing.Union, pytypes.UnionType):
        if any(_check_python_type(a, value) is None for a in args):
            return None
        return f"not {_type_label(tp)}"
    return None


def _split_annotated(tp: Any) -> tuple[Any, list[Any]]:
    if get_origin(tp) is Annotated:
        base, *extras = get_args(tp)
        inner_base, inner_extras = _split_annotated(base)
        return inner_base, inner_extras + extras
    return tp, []


def _port_of(tp: Any, where: str) -> tuple[tuple[PortType, ...], bool, Any, list[Any], tuple[str, ...] | None]:
    """Return (accepted port types, optional, python base type, markers, enum choices)."""
    optional = False
    origin = get_origin(tp)
    if origin in (typing.Union, pytypes.UnionType):
        members = [a for a in get_args(tp) if a is not type(None)]
        optional = len(members) != len(get_args(tp))
        if len(members) > 1:
            ports: list[PortType] = []
            markers: list[Any] = []
            for member in members:
                member_ports, _, _, member_markers, _ = _port_of(member, where)
                ports.extend(p for p in member_ports if p not in ports)
                markers.extend(member_markers)
            return tuple(ports), optional, Any, markers, None
        tp = members[0]
    base, markers = _split_annotated(tp)
    ports = [m for m in markers if isinstance(m, PortType)]
    choices = None
    if get_origin(base) is Literal:
        choices = tuple(str(c) for c in get_args(base))
        return (ports[0] if ports else ENUM,), optional, str, markers, choices
    if ports:
        return (ports[0],), optional, base, markers, None
    if base in _PLAIN_TYPES:
        return (_PLAIN_TYPES[base],), optional, base, markers, None
    if base is Any:
        return (ANY,), optional, base, markers, None
    if get_origin(base) in (list, dict, tuple) or base in (list, dict, tuple):
        return (JSON,), optional, base, markers, None
    raise RegistryError(f"{where}: cannot turn annotation {tp!r} into a port type")


def _output_name(port: PortType) -> str:
    return port.name.lower()


def _outputs_of(return_tp: Any, output: str | None, where: str) -> tuple[dict[str, OutputSpec], bool]:
    if return_tp in (None, type(None), inspect.Signature.empty):
        return {}, False
    if isinstance(return_tp, type) and issubclass(return_tp, tuple) and hasattr(return_tp, "_fields"):
        hints = typing.get_type_hints(return_tp, include_extras=True)
        outs = {}
        for field_name in return_tp._fields:
            ports, _, _, _, _ = _port_of(hints[field_name], f"{where} output {field_name!r}")
            outs[field_name] = OutputSpec(field_name, ports[0])
        return outs, True
    ports, _, _, _, _ = _port_of(return_tp, f"{where} return value")
    name = output or _output_name(ports[0])
    return {name: OutputSpec(name, ports[0])}, False


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"_+", name) if part)


def build_spec(
    target: Callable[..., Any] | type,
    *,
    name: str | None = None,
    category: str = "misc",
    version: str = "1",
    deterministic: bool = True,
    output_node: bool = False,
    persist: bool = False,
    output: str | None = None,
    display_name: str | None = None,
    body: bool = False,
) -> NodeSpec:
    if isinstance(target, type):
        if not callable(getattr(target, "run", None)):
            raise RegistryError(f"node class {target.__qualname__} needs a run(...) method")
        cls = target

        def run(**kwargs: Any) -> Any:
            return cls().run(**kwargs)

        signature_source: Callable[..., Any] = cls.run
        doc = inspect.getdoc(cls) or ""
        default_name = cls.__name__
        skip_self = True
        run.__wrapped__ = cls.run  # type: ignore[attr-defined]
        origin = f"{cls.__module__}:{cls.__qualname__}"
    else:
        run = target
        signature_source = target
        doc = inspect.getdoc(target) or ""
        default_name = _camel(target.__name__)
        skip_self = False
        origin = f"{target.__module__}:{target.__qualname__}"

    type_name = name or default_name
    where = f"node {type_name} ({origin})"
    try:
        hints = typing.get_type_hints(signature_source, include_extras=True)
    except Exception as exc:  # unresolved forward reference in a plugin
        raise RegistryError(f"{where}: cannot read type annotations: {exc}") from exc
    signature = inspect.signature(signature_source)
    inputs: dict[str, InputSpec] = {}
    context_param = None
    for index, (param_name, param) in enumerate(signature.parameters.items()):
        if skip_self and index == 0:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise RegistryError(f"{where}: *args/**kwargs cannot be node inputs ({param_name})")
        tp = hints.get(param_name)
        if tp is None:
            raise RegistryError(f"{where}: input {param_name!r} needs a type annotation")
        if tp is RunContext:
            context_param = param_name
            continue
        ports, optional, base, markers, choices = _port_of(tp, f"{where} input {param_name!r}")
        spec = InputSpec(name=param_name, types=ports, default=param.default, optional=optional, python_type=base)
        spec.choices = choices
        for marker in markers:
            if isinstance(marker, Range):
                spec.range = marker
            elif isinstance(marker, Doc):
                spec.doc = marker.text
            elif isinstance(marker, (FileInput, FileOutput)):
                spec.file = marker
            elif isinstance(marker, Multiline):
                spec.multiline = True
        if param.default is None:
            spec.optional = True
        if spec.has_default and spec.default is not None:
            bad = spec.check_literal(spec.default)
            if bad:
                raise RegistryError(f"{where}: default of {param_name!r} is invalid: {bad[1]} ({bad[2]})")
        inputs[param_name] = spec
    outputs, returns_tuple = _outputs_of(hints.get("return", inspect.Signature.empty), output, where)
    if not outputs and not output_node:
        output_node = True  # a node that returns nothing exists for its side effect
    return NodeSpec(
        type_name=type_name,
        run=run,
        category=category,
        doc=doc,
        inputs=inputs,
        outputs=outputs,
        version=str(version),
        deterministic=deterministic,
        output_node=output_node,
        persist=persist,
        takes_body=body,
        context_param=context_param,
        returns_tuple=returns_tuple,
        origin=origin,
        display_name=display_name or re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", type_name),
    )


def node(
    target: Callable[..., Any] | type | None = None,
    *,
    name: str | None = None,
    category: str = "misc",
    version: str = "1",
    deterministic: bool = True,
    output_node: bool = False,
    persist: bool = False,
    output: str | None = None,
    display_name: str | None = None,
    body: bool = False,
    replace: bool = False,
    registry: Any = None,
):
    """Register a function or class as a node type.

    name          type name used in graph JSON (default: the function name in CamelCase)
    category      palette group ("image", "sampling", ...)
    version       bump when behaviour changes in a way the source hash cannot see
    deterministic False if the same inputs can give different outputs; such a node always
                  re-runs (prefer taking a seed input instead)
    output_node   writes files or shows something: a default target of a run
    persist       results may be kept in the on-disk cache (expensive work: training)
    output        name of the single output (default: the port type's name in lower case)
    body          the node owns a subgraph (a frame loop); it calls ctx.run_body(...)
    replace       a plugin that deliberately replaces an existing node type must say so
    """

    def register(fn: Callable[..., Any] | type):
        from .registry import active_registry

        spec = build_spec(
            fn,
            name=name,
            category=category,
            version=version,
            deterministic=deterministic,
            output_node=output_node,
            persist=persist,
            output=output,
            display_name=display_name,
            body=body,
        )
        (registry if registry is not None else active_registry()).add(spec, replace=replace)
        fn.__nodegraph_spec__ = spec  # type: ignore[union-attr]
        return fn

    if target is not None:
        return register(target)
    return register


def literal_problem(spec: NodeSpec, node_id: str, input_name: str, value: Any) -> Problem | None:
    """Validate one literal input of a node instance; return a Problem or None."""
    input_spec = spec.inputs[input_name]
    bad = input_spec.check_literal(value)
    if bad is None:
        return None
    code, message, expected = bad
    got = repr(value)
    if len(got) > 60:
        got = got[:57] + "..."
    return Problem(code, message, node_id, spec.type_name, input_name, expected, f"{got} ({type(value).__name__})")
