"""Keyframe schedules: numbers (or names) that change over the frames of an animation.

A schedule is written the way Deforum writes it::

    "0:(1.0), 30:(1.5), 60:(1.0)"                       # keys and values
    "0:(1.0025 + 0.002*sin(1.25*pi*t/30))"              # a value can be a formula in t
    "0:(0), max_f-1:(360)"                              # a key can be a formula in max_f
    "0:(euler), 20:(dpmpp_2m)"                          # text schedules hold their value

Names in a value: ``t`` (the frame), ``max_f`` (the last frame index, max_frames-1), ``s``
(the seed), ``pi``, ``e``, ``tau`` and the functions in ``FUNCTIONS`` (sin, cos, floor...).
Keys may use ``max_f`` and ``s`` (not ``t``). A bare value with no key (``"0.65"``) means
``"0:(0.65)"``.

How the frames between keys are filled:

* a key whose value uses ``t`` is a *formula segment*: every frame from that key up to the
  next key takes the formula's value at that frame;
* between keys with constant values the value is interpolated: ``linear`` (default),
  ``cubic`` (a spline through the key values; with fewer than 3 keys it falls back to
  linear) or ``step`` (hold the last key's value);
* before the first key the first value holds, after the last key the last value holds;
* text schedules (``kind="text"``) always hold.

Security: schedule text is user input, so it is never handed to ``eval`` or numexpr (which
evaluates through ``eval``-like machinery). ``SafeExpression`` parses a formula with
``ast`` and walks the tree itself, accepting only numbers, the names and functions listed
here, arithmetic, comparisons and ``a if c else b``. Attribute access, indexing, strings,
lambdas and comprehensions are refused, and the text length, node count, nesting depth and
exponent size are bounded, so a hostile schedule fails fast with a ``ScheduleError``
naming what is wrong. All arithmetic is done in floats, which cannot grow without bound.
"""

from __future__ import annotations

import ast
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Literal, NamedTuple

from .errors import NodegraphError


class ScheduleError(NodegraphError):
    """A schedule or schedule formula that cannot be parsed or evaluated safely."""



# ---- limits -------------------------------------------------------------------------------

MAX_SCHEDULE_CHARS = 20_000  # whole schedule text
MAX_EXPRESSION_CHARS = 1_000  # one key or value
MAX_NODES = 200  # AST nodes in one formula
MAX_DEPTH = 100  # nesting of the AST
MAX_EXPONENT = 1_000.0  # |b| in a ** b
MAX_KEYS = 2_000
MAX_FRAMES = 1_000_000  # frames a schedule may be asked to cover in one call
MAX_CALL_ARGS = 16

# ---- the whitelisted functions --------------------------------------------------------------


def _where(cond: float, a: float, b: float) -> float:
    return a if cond else b


def _clamp(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)


def _sign(x: float) -> float:
    return float((x > 0) - (x < 0))


def _safe_pow(base: float, exponent: float) -> float:
    if abs(exponent) > MAX_EXPONENT:
        raise ScheduleError(f"exponent {exponent:g} is too large (limit: |exponent| <= {MAX_EXPONENT:g})")
    return math.pow(base, exponent)


def _round(x: float, ndigits: float = 0) -> float:
    return float(round(x, int(_clamp(ndigits, -20, 20))))


FUNCTIONS: dict[str, tuple[Callable[..., float], int, int]] = {
    # name: (function, min args, max args)
    "sin": (math.sin, 1, 1),
    "cos": (math.cos, 1, 1),
    "tan": (math.tan, 1, 1),
    "asin": (math.asin, 1, 1),
    "acos": (math.acos, 1, 1),
    "atan": (math.atan, 1, 1),
    "arcsin": (math.asin, 1, 1),
    "arccos": (math.acos, 1, 1),
    "arctan": (math.atan, 1, 1),
    "atan2": (math.atan2, 2, 2),
    "arctan2": (math.atan2, 2, 2),
    "sinh": (math.sinh, 1, 1),
    "cosh": (math.cosh, 1, 1),
    "tanh": (math.tanh, 1, 1),
    "abs": (abs, 1, 1),
    "min": (min, 1, MAX_CALL_ARGS),
    "max": (max, 1, MAX_CALL_ARGS),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "round": (_round, 1, 2),
    "trunc": (math.trunc, 1, 1),
    "sqrt": (math.sqrt, 1, 1),
    "exp": (math.exp, 1, 1),
    "log": (math.log, 1, 2),
    "log10": (math.log10, 1, 1),
    "log2": (math.log2, 1, 1),
    "pow": (_safe_pow, 2, 2),
    "hypot": (math.hypot, 2, 2),
    "fmod": (math.fmod, 2, 2),
    "degrees": (math.degrees, 1, 1),
    "radians": (math.radians, 1, 1),
    "sign": (_sign, 1, 1),
    "clamp": (_clamp, 3, 3),
    "where": (_where, 3, 3),
}

CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
VARIABLES = ("t", "max_f", "s")

_BINOPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: float(a // b),
    ast.Mod: lambda a, b: a % b,
    ast.Pow: _safe_pow,
}
_UNARY: dict[type, Callable[[float], float]] = {
    ast.UAdd: lambda a: +a,
    ast.USub: lambda a: -a,
    ast.Not: lambda a: float(not a),
}
_COMPARE: dict[type, Callable[[float, float], bool]] = {
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}

# Friendly names for refused syntax, so the message says what was wrong.
_REFUSED: dict[type, str] = {
    ast.Attribute: "attribute access (a.b) is not allowed",
    ast.Subscript: "indexing (a[b]) is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.List: "lists are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.JoinedStr: "text (f-strings) is not allowed in a formula",
    ast.Starred: "*args is not allowed",
    ast.NamedExpr: "assignment (:=) is not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SafeExpression:
    """A formula parsed once and checked against the whitelist; call ``evaluate(**names)``.

    ``SafeExpression("0.5 + 0.1*sin(t/10)").evaluate(t=3, max_f=99, s=0)`` -> float.
    """

    def __init__(self, text: str, names: tuple[str, ...] = VARIABLES) -> None:
        if not isinstance(text, str):
            raise ScheduleError(f"a formula must be text, got {type(text).__name__}")
        self.text = text
        self.allowed_names = tuple(names)
        if len(text) > MAX_EXPRESSION_CHARS:
            raise ScheduleError(
                f"formula is too long ({len(text)} characters; limit {MAX_EXPRESSION_CHARS}): {_short(text)!r}"
            )
        if not text.strip():
            raise ScheduleError("empty formula")
        try:
            flat = text.replace("\r", " ").replace("\n", " ").replace("\t", " ").strip()
            tree = ast.parse(flat, mode="eval")
        except SyntaxError as exc:
            reason = exc.msg or "invalid syntax"
            raise ScheduleError(f"cannot parse formula {_short(text)!r}: {reason}") from None
        except (RecursionError, MemoryError, ValueError):
            raise ScheduleError(f"formula {_short(text)!r} is nested too deeply or malformed") from None
        if sum(isinstance(n, ast.expr) for n in ast.walk(tree.body)) > MAX_NODES:
            raise ScheduleError(f"formula is too complex (more than {MAX_NODES} parts): {_short(text)!r}")
        self._count = 0
        self._check(tree.body, 1)
        self.tree = tree.body
        self.uses = frozenset(
            n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and n.id in VARIABLES
        )

    # -- static check: the whole tree is validated before anything is evaluated ------------
    def _fail(self, message: str) -> None:
        raise ScheduleError(f"{message} in formula {_short(self.text)!r}")

    def _check(self, n: ast.AST, depth: int) -> None:
        self._count += 1
        if self._count > MAX_NODES:
            self._fail(f"formula is too complex (more than {MAX_NODES} parts)")
        if depth > MAX_DEPTH:
            self._fail(f"formula is nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(n, ast.Constant):
            if isinstance(n.value, bool) or not isinstance(n.value, (int, float)):
                kind = "text" if isinstance(n.value, (str, bytes)) else type(n.value).__name__
                self._fail(f"{kind} constant {_short(repr(n.value), 30)} is not allowed (numbers only)")
            try:
                float(n.value)
            except OverflowError:
                self._fail("number literal is too large")
            return
        if isinstance(n, ast.Name):
            if n.id in self.allowed_names or n.id in CONSTANTS:
                return
            if n.id in FUNCTIONS:
                self._fail(f"function {n.id!r} used without calling it")
            allowed = ", ".join([*self.allowed_names, *CONSTANTS])
            self._fail(f"unknown name {n.id!r} (allowed names: {allowed}; functions: {', '.join(FUNCTIONS)})")
        if isinstance(n, ast.BinOp):
            if type(n.op) not in _BINOPS:
                self._fail(f"operator {type(n.op).__name__} is not allowed")
            self._check(n.left, depth + 1)
            self._check(n.right, depth + 1)
            if isinstance(n.op, ast.Pow):
                self._check_exponent(n.right)
            return
        if isinstance(n, ast.UnaryOp):
            if type(n.op) not in _UNARY:
                self._fail(f"operator {type(n.op).__name__} is not allowed")
            self._check(n.operand, depth + 1)
            return
        if isinstance(n, ast.Compare):
            if any(type(op) not in _COMPARE for op in n.ops):
                self._fail("only <, <=, >, >=, ==, != comparisons are allowed")
            self._check(n.left, depth + 1)
            for comparator in n.comparators:
                self._check(comparator, depth + 1)
            return
        if isinstance(n, ast.BoolOp):
            for value in n.values:
                self._check(value, depth + 1)
            return
        if isinstance(n, ast.IfExp):
            for part in (n.test, n.body, n.orelse):
                self._check(part, depth + 1)
            return
        if isinstance(n, ast.Call):
            if not isinstance(n.func, ast.Name):
                if isinstance(n.func, ast.Attribute):
                    self._fail("attribute access (a.b) is not allowed")
                self._fail("only calls to the allowed functions by name are allowed")
            name = n.func.id
            if name not in FUNCTIONS:
                self._fail(f"function {name!r} is not allowed (allowed: {', '.join(FUNCTIONS)})")
            if n.keywords:
                self._fail(f"keyword arguments are not allowed in {name}(...)")
            _, low, high = FUNCTIONS[name]
            if not low <= len(n.args) <= high:
                wanted = str(low) if low == high else f"{low} to {high}"
                self._fail(f"{name}() takes {wanted} arguments, got {len(n.args)}")
            for arg in n.args:
                self._check(arg, depth + 1)
            if name == "pow":
                self._check_exponent(n.args[1])
            return
        reason = _REFUSED.get(type(n))
        if reason:
            self._fail(reason)
        self._fail(f"{type(n).__name__} is not allowed")

    def _check_exponent(self, exponent: ast.AST) -> None:
        """Refuse a constant exponent that is too large before evaluating anything."""
        value = None
        if isinstance(exponent, ast.Constant) and isinstance(exponent.value, (int, float)):
            value = exponent.value
        elif isinstance(exponent, ast.UnaryOp) and isinstance(exponent.operand, ast.Constant):
            value = exponent.operand.value if isinstance(exponent.operand.value, (int, float)) else None
        if value is not None and abs(float(value)) > MAX_EXPONENT:
            self._fail(f"exponent {value:g} is too large (limit: |exponent| <= {MAX_EXPONENT:g})")

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, **names: float) -> float:
        values = dict(CONSTANTS)
        for key in self.allowed_names:
            if key in names:
                values[key] = float(names[key])
        try:
            result = self._eval(self.tree, values)
        except ScheduleError as exc:
            if self.text in str(exc) or _short(self.text) in str(exc):
                raise
            raise ScheduleError(f"{exc} in formula {_short(self.text)!r}") from None
        except ZeroDivisionError:
            raise ScheduleError(f"division by zero in formula {_short(self.text)!r} ({self._where(names)})") from None
        except OverflowError:
            raise ScheduleError(f"result too large in formula {_short(self.text)!r} ({self._where(names)})") from None
        except (ValueError, TypeError) as exc:
            raise ScheduleError(
                f"cannot evaluate formula {_short(self.text)!r} ({self._where(names)}): {exc}"
            ) from None
        except RecursionError:
            raise ScheduleError(f"formula {_short(self.text)!r} is nested too deeply") from None
        if not math.isfinite(result):
            raise ScheduleError(f"formula {_short(self.text)!r} is not a finite number ({self._where(names)})")
        return result

    @staticmethod
    def _where(names: dict[str, float]) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in names.items()) or "no variables"

    def _eval(self, n: ast.AST, values: dict[str, float]) -> float:
        if isinstance(n, ast.Constant):
            return float(n.value)
        if isinstance(n, ast.Name):
            if n.id not in values:
                raise ScheduleError(f"name {n.id!r} has no value here")
            return values[n.id]
        if isinstance(n, ast.BinOp):
            return float(_BINOPS[type(n.op)](self._eval(n.left, values), self._eval(n.right, values)))
        if isinstance(n, ast.UnaryOp):
            return float(_UNARY[type(n.op)](self._eval(n.operand, values)))
        if isinstance(n, ast.Compare):
            left = self._eval(n.left, values)
            for op, comparator in zip(n.ops, n.comparators):
                right = self._eval(comparator, values)
                if not _COMPARE[type(op)](left, right):
                    return 0.0
                left = right
            return 1.0
        if isinstance(n, ast.BoolOp):
            if isinstance(n.op, ast.And):
                result = 1.0
                for value in n.values:
                    result = self._eval(value, values)
                    if not result:
                        return result
                return result
            result = 0.0
            for value in n.values:
                result = self._eval(value, values)
                if result:
                    return result
            return result
        if isinstance(n, ast.IfExp):
            return self._eval(n.body if self._eval(n.test, values) else n.orelse, values)
        if isinstance(n, ast.Call):
            fn = FUNCTIONS[n.func.id][0]  # type: ignore[attr-defined]
            return float(fn(*(self._eval(a, values) for a in n.args)))
        raise ScheduleError(f"{type(n).__name__} is not allowed")  # unreachable after _check

    def __repr__(self) -> str:
        return f"SafeExpression({self.text!r})"


def safe_eval(text: str, **names: float) -> float:
    """Evaluate one formula safely: ``safe_eval("2*t+1", t=3) == 7.0``."""
    return SafeExpression(text).evaluate(**names)


# ---- parsing schedule text ---------------------------------------------------------------------


def _split_keyframes(text: str) -> list[tuple[str, str]]:
    """Split ``"k1:(v1), k2:(v2)"`` into [(k1, v1), (k2, v2)], honouring nested brackets."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        colon = text.find(":", i)
        if colon < 0:
            raise ScheduleError(
                f"expected 'frame:(value)' at {_short(text[i:], 30)!r} (e.g. \"0:(1.0), 30:(1.5)\")"
            )
        key = text[i:colon].strip()
        if not key:
            raise ScheduleError(f"missing frame number before ':' at position {colon}")
        j = colon + 1
        while j < n and text[j] in " \t\r\n":
            j += 1
        if j >= n or text[j] != "(":
            raise ScheduleError(f"expected '(' after {key!r}: (write values in brackets, e.g. {key}:(1.0))")
        depth, k = 0, j
        while k < n:
            ch = text[k]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        if depth != 0:
            raise ScheduleError(f"unbalanced brackets in the value for key {key!r}")
        pairs.append((key, text[j + 1 : k]))
        if len(pairs) > MAX_KEYS:
            raise ScheduleError(f"too many keyframes (limit {MAX_KEYS})")
        i = k + 1
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i < n and text[i] != ",":
            raise ScheduleError(f"expected ',' between keyframes at {_short(text[i:], 30)!r}")
    if not pairs:
        raise ScheduleError("the schedule is empty (e.g. \"0:(1.0)\")")
    return pairs


def _looks_keyed(text: str) -> bool:
    """True if text has a top-level ':' (a keyed schedule) rather than one bare value."""
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == ":" and depth == 0:
            return True
    return False


Interpolation = Literal["linear", "cubic", "step"]


@dataclass
class _Key:
    key_text: str
    value_text: str
    key_expr: SafeExpression | None = None
    value_expr: SafeExpression | None = None
    fixed_frame: int | None = None  # a plain integer key
    text_value: str | None = None


@dataclass
class Schedule:
    """A parsed schedule. ``at(frame)`` gives one value, ``values(n)`` the first n.

    ``max_frames`` fixes ``max_f`` (= max_frames - 1) for formulas and keys; ``seed`` is ``s``.
    """

    text: str
    kind: Literal["number", "text"] = "number"
    interpolation: Interpolation = "linear"
    max_frames: int | None = None
    seed: int = 0
    _keys: list[_Key] = field(default_factory=list, repr=False)
    _cache: dict[int, tuple] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        kind: Literal["number", "text"] = "number",
        interpolation: Interpolation = "linear",
        max_frames: int | None = None,
        seed: int = 0,
    ) -> "Schedule":
        if not isinstance(text, str):
            raise ScheduleError(f"a schedule must be text, got {type(text).__name__}")
        if len(text) > MAX_SCHEDULE_CHARS:
            raise ScheduleError(f"schedule text is too long ({len(text)} characters; limit {MAX_SCHEDULE_CHARS})")
        if kind not in ("number", "text"):
            raise ScheduleError(f"unknown schedule kind {kind!r} (number or text)")
        if interpolation not in ("linear", "cubic", "step"):
            raise ScheduleError(f"unknown interpolation {interpolation!r} (linear, cubic or step)")
        if max_frames is not None and not 1 <= int(max_frames) <= MAX_FRAMES:
            raise ScheduleError(f"max_frames must be between 1 and {MAX_FRAMES}, got {max_frames}")
        stripped = text.strip()
        if not stripped:
            raise ScheduleError("the schedule is empty (e.g. \"0:(1.0)\")")
        pairs = _split_keyframes(stripped) if _looks_keyed(stripped) else [("0", stripped)]
        keys: list[_Key] = []
        for key_text, value_text in pairs:
            entry = _Key(key_text, value_text)
            try:
                entry.fixed_frame = int(key_text)
            except ValueError:
                entry.key_expr = SafeExpression(key_text, names=("max_f", "s"))
            if kind == "text":
                value = value_text.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                    value = value[1:-1]
                entry.text_value = value
            else:
                entry.value_expr = SafeExpression(value_text)
            keys.append(entry)
        schedule = cls(text, kind, interpolation, int(max_frames) if max_frames else None, int(seed), keys)
        if schedule.max_frames:
            schedule._resolve(schedule.max_frames)  # check keys and constant values now
        return schedule

    # -- resolving keys and constant values for a given number of frames --------------------
    def _resolve(self, max_frames: int) -> tuple:
        """For this max_frames: sorted frames, per-key (constant value | formula | text)."""
        cached = self._cache.get(max_frames)
        if cached is not None:
            return cached
        max_f = max_frames - 1
        by_frame: dict[int, _Key] = {}
        for entry in self._keys:
            if entry.fixed_frame is not None:
                frame = entry.fixed_frame
            else:
                assert entry.key_expr is not None
                value = entry.key_expr.evaluate(max_f=max_f, s=self.seed)
                frame = int(math.floor(value + 0.5))
            if frame < 0:
                raise ScheduleError(f"keyframe {entry.key_text!r} is negative ({frame})")
            if frame > 10 * MAX_FRAMES:
                raise ScheduleError(f"keyframe {entry.key_text!r} is too large ({frame})")
            by_frame[frame] = entry  # a repeated key: the last one wins
        frames = sorted(by_frame)
        constants: list[float | None] = []
        for frame in frames:
            entry = by_frame[frame]
            if entry.value_expr is not None and "t" not in entry.value_expr.uses:
                constants.append(entry.value_expr.evaluate(t=frame, max_f=max_f, s=self.seed))
            else:
                constants.append(None)
        spline = None
        if self.kind == "number" and self.interpolation == "cubic":
            spline = self._build_spline(frames, [by_frame[f] for f in frames], constants, max_f)
        resolved = (frames, [by_frame[f] for f in frames], constants, spline)
        if len(self._cache) > 8:
            self._cache.clear()
        self._cache[max_frames] = resolved
        return resolved

    def _build_spline(self, frames, entries, constants, max_f):
        """A cubic spline through every key's value (formula keys at their own frame)."""
        if len(frames) < 3:
            return None
        points = [
            c if c is not None else e.value_expr.evaluate(t=f, max_f=max_f, s=self.seed)
            for f, e, c in zip(frames, entries, constants)
        ]
        from scipy.interpolate import CubicSpline  # lazy: only cubic schedules need scipy

        return CubicSpline(frames, points, bc_type="not-a-knot")

    def _frames_for(self, frame: float, max_frames: int | None) -> int:
        if max_frames is not None:
            return int(max_frames)
        if self.max_frames is not None:
            return self.max_frames
        frames = [k.fixed_frame for k in self._keys if k.fixed_frame is not None]
        if len(frames) != len(self._keys):
            raise ScheduleError(
                f"schedule {_short(self.text)!r} has keys that use max_f: give max_frames"
            )
        return max(max(frames), int(math.ceil(frame))) + 1

    # -- public API ---------------------------------------------------------------------------
    def at(self, frame: float, max_frames: int | None = None) -> Any:
        """The value at `frame` (a float for number schedules, a str for text schedules)."""
        if isinstance(frame, bool) or not isinstance(frame, (int, float)) or not math.isfinite(frame):
            raise ScheduleError(f"frame must be a finite number, got {frame!r}")
        if frame < 0:
            raise ScheduleError(f"frame must not be negative, got {frame}")
        total = self._frames_for(frame, max_frames)
        if not 1 <= total <= MAX_FRAMES:
            raise ScheduleError(f"max_frames must be between 1 and {MAX_FRAMES}, got {total}")
        frames, entries, constants, spline = self._resolve(total)
        max_f = total - 1
        index = bisect_right(frames, frame) - 1  # the key at or before `frame`
        if self.kind == "text":
            return entries[max(index, 0)].text_value

        def value_of(i: int, at: float) -> float:
            c = constants[i]
            return c if c is not None else entries[i].value_expr.evaluate(t=at, max_f=max_f, s=self.seed)

        if index < 0:  # before the first key: hold the first value
            return value_of(0, frames[0])
        if constants[index] is None:  # formula segment
            return value_of(index, frame)
        if index == len(frames) - 1 or frame == frames[index] or self.interpolation == "step":
            return constants[index]
        if spline is not None:
            return float(spline(frame))
        x0, x1 = frames[index], frames[index + 1]
        y0, y1 = constants[index], value_of(index + 1, x1)
        return y0 + (y1 - y0) * (frame - x0) / (x1 - x0)

    def values(self, max_frames: int | None = None) -> list[Any]:
        """The values of frames 0 .. max_frames-1."""
        total = max_frames if max_frames is not None else self._frames_for(0, None)
        if isinstance(total, bool) or not isinstance(total, int) or not 1 <= total <= MAX_FRAMES:
            raise ScheduleError(f"max_frames must be an integer between 1 and {MAX_FRAMES}, got {total!r}")
        return [self.at(i, total) for i in range(total)]

    def __call__(self, frame: float, max_frames: int | None = None) -> Any:
        return self.at(frame, max_frames)

    def __hash__(self) -> int:
        return hash((self.text, self.kind, self.interpolation, self.max_frames, self.seed))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return (self.text, self.kind, self.interpolation, self.max_frames, self.seed) == (
            other.text,
            other.kind,
            other.interpolation,
            other.max_frames,
            other.seed,
        )

    def __repr__(self) -> str:
        return f"Schedule({_short(self.text)!r}, {self.kind}, {self.interpolation}, max_frames={self.max_frames})"


def parse_schedule(text: str, **options: Any) -> Schedule:
    """Shorthand for ``Schedule.parse``."""
    return Schedule.parse(text, **options)


def as_schedule(value: Any, **options: Any) -> Schedule:
    """A Schedule from a Schedule, schedule text or a plain number."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Schedule.parse(repr(float(value)), **options)
    return Schedule.parse(value, **options)
