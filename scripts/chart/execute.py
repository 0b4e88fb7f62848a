"""Executes parsed templates (`gotemplate`) with Go's semantics where the chart relies on them:
truthiness (false, 0, nil and empty strings, lists and maps are false), map ranges in sorted key
order, `and`/`or` returning an operand, fields of a missing map key giving nil (printed as an
empty string, as Helm does) and fields of nil being an error, and numbers printed as Go prints
the float64s Helm reads values into (`1e+06`, not `1000000`)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from .gotemplate import (
    Action,
    Command,
    Field,
    Identifier,
    If,
    Literal,
    Node,
    Pipeline,
    Range,
    SubPipeline,
    TemplateCall,
    TemplateError,
    Text,
    With,
)

Function = Callable[..., Any]


def truthy(value: Any) -> bool:
    """Go template truth: the zero value of any type is false."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str | list | dict | tuple):
        return len(value) > 0
    return True


def go_number(value: float) -> str:
    """`fmt.Sprint(float64)`: shortest digits, exponent form from 1e+06 or below 1e-04."""
    if value == 0:
        return "0"
    if value != value or value in (float("inf"), float("-inf")):
        return {True: "+Inf", False: "-Inf"}[value > 0] if value == value else "NaN"
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    exp = len(text) + exponent - 1
    minus = "-" if sign else ""
    if exp < -4 or exp >= 6:  # strconv's shortest 'g' decides with precision 6
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exponent >= 0:
        return minus + text + "0" * exponent
    point = len(text) + exponent
    if point > 0:
        return minus + text[:point] + "." + text[point:]
    return minus + "0." + "0" * (-point) + text


def go_print(value: Any) -> str:
    """How an action prints a value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_number(value)
    if isinstance(value, str):
        return value
    raise TemplateError(f"printing a {type(value).__name__} is outside the supported subset")


class Executor:
    """Renders nodes against data with the given functions and named templates."""

    def __init__(self, functions: dict[str, Function], defines: dict[str, list[Node]]) -> None:
        self.functions = {**functions, "include": self.include}
        self.defines = defines

    def include(self, name: str, data: Any) -> str:
        """Helm's `include`: a named template rendered to a string."""
        if name not in self.defines:
            raise TemplateError(f"no template named {name!r}")
        return self.render(self.defines[name], data)

    def render(self, nodes: list[Node], data: Any) -> str:
        out: list[str] = []
        self._run(nodes, data, [{"$": data}], out)
        return "".join(out)

    def _run(
        self, nodes: list[Node], dot: Any, scopes: list[dict[str, Any]], out: list[str]
    ) -> None:
        for node in nodes:
            if isinstance(node, Text):
                out.append(node.text)
            elif isinstance(node, Action):
                value = self._pipeline(node.pipeline, dot, scopes)
                if not node.pipeline.variables:
                    out.append(go_print(value))
            elif isinstance(node, If):
                for condition, body in node.branches:
                    if truthy(self._pipeline(condition, dot, scopes)):
                        self._run(body, dot, [*scopes, {}], out)
                        break
                else:
                    self._run(node.otherwise, dot, [*scopes, {}], out)
            elif isinstance(node, With):
                value = self._pipeline(node.pipeline, dot, scopes)
                if truthy(value):
                    self._run(node.body, value, [*scopes, {}], out)
                else:
                    self._run(node.otherwise, dot, [*scopes, {}], out)
            elif isinstance(node, Range):
                self._range(node, dot, scopes, out)
            elif isinstance(node, TemplateCall):
                argument = (
                    None if node.pipeline is None else self._pipeline(node.pipeline, dot, scopes)
                )
                out.append(self.include(node.name, argument))

    def _range(self, node: Range, dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        pipeline = Pipeline(node.pipeline.commands)
        items = self._pipeline(pipeline, dot, scopes)
        if isinstance(items, dict):
            pairs = [(k, items[k]) for k in sorted(items)]
        elif isinstance(items, list | tuple):
            pairs = list(enumerate(items))
        elif items is None:
            pairs = []
        else:
            raise TemplateError(f"range over {type(items).__name__}")
        if not pairs:
            self._run(node.otherwise, dot, [*scopes, {}], out)
            return
        names = node.pipeline.variables
        for key, value in pairs:
            scope: dict[str, Any] = {}
            if len(names) == 1:
                scope[names[0]] = value
            elif len(names) == 2:
                scope[names[0]], scope[names[1]] = key, value
            self._run(node.body, value, [*scopes, scope], out)

    def _pipeline(self, pipeline: Pipeline, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        value: Any = _NOTHING
        for command in pipeline.commands:
            value = self._command(command, dot, scopes, value)
        if pipeline.variables:
            if len(pipeline.variables) != 1:
                raise TemplateError("several variables outside range")
            name = pipeline.variables[0]
            if pipeline.declare:
                scopes[-1][name] = value
            else:
                for scope in reversed(scopes):
                    if name in scope:
                        scope[name] = value
                        break
                else:
                    raise TemplateError(f"assignment to undeclared {name}")
        return value

    def _command(self, command: Command, dot: Any, scopes: list[dict[str, Any]], piped: Any) -> Any:
        head, *rest = command.operands
        if isinstance(head, Identifier):
            if head.name in ("and", "or"):
                return self._logic(head.name, rest, dot, scopes, piped)
            function = self.functions.get(head.name)
            if function is None:
                raise TemplateError(f"function {head.name!r} is outside the supported subset")
            args = [self._operand(o, dot, scopes) for o in rest]
            if piped is not _NOTHING:
                args.append(piped)
            return function(*args)
        if rest or piped is not _NOTHING:
            raise TemplateError("only functions take arguments")
        return self._operand(head, dot, scopes)

    def _logic(
        self, name: str, operands: list[Any], dot: Any, scopes: list[dict[str, Any]], piped: Any
    ) -> Any:
        values = [lambda o=o: self._operand(o, dot, scopes) for o in operands]
        if piped is not _NOTHING:
            values.append(lambda: piped)
        value: Any = None
        for get in values:
            value = get()
            if truthy(value) != (name == "and"):
                return value
        return value

    def _operand(self, operand: Any, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        if isinstance(operand, Literal):
            return operand.value
        if isinstance(operand, Identifier):
            function = self.functions.get(operand.name)
            if function is None:
                raise TemplateError(f"function {operand.name!r} is outside the supported subset")
            return function()
        if isinstance(operand, SubPipeline):
            return _walk(self._pipeline(operand.pipeline, dot, scopes), operand.chain)
        assert isinstance(operand, Field)
        if operand.base is None:
            return _walk(dot, operand.chain)
        for scope in reversed(scopes):
            if operand.base in scope:
                return _walk(scope[operand.base], operand.chain)
        raise TemplateError(f"undefined variable {operand.base}")


def _walk(value: Any, chain: list[str]) -> Any:
    for name in chain:
        if value is None:
            raise TemplateError(f"nil pointer evaluating .{name}")
        if not isinstance(value, dict):
            raise TemplateError(f"can't evaluate field {name} in {type(value).__name__}")
        value = value.get(name)
    return value


class _Nothing:
    pass


_NOTHING = _Nothing()
