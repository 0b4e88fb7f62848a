"""Parser of the subset of Go's text/template that the Verdict chart uses.

No `helm` binary is available from the registries this project reaches, so the chart's templates
stay real Helm templates (the real `helm template` renders them) and this package renders the same
subset deterministically for the checks: text with `{{ }}` actions and `{{-`/`-}}` trimming,
comments, pipelines with `|`, parentheses, fields (`.Values.a.b`, `$.Release.Name`, `$v.x`),
variables (`$x := ...`, `$x = ...`), string/number/bool/nil literals, and the actions `if`/`else
if`/`else`, `range` (with `$k, $v :=`), `with`, `define`, `template`, `end`. Anything outside
the subset is a `TemplateError`, never a silent difference from Helm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class TemplateError(Exception):
    """A template outside the supported subset, or an error while executing it."""


# --- nodes -------------------------------------------------------------------------------------


@dataclass
class Text:
    text: str


@dataclass
class Field:
    """`.a.b` on the dot, `$.a` on the root, `$v.a` on a variable (`base` None: the dot)."""

    base: str | None
    chain: list[str]


@dataclass
class Literal:
    value: Any


@dataclass
class Identifier:
    """A function name."""

    name: str


@dataclass
class SubPipeline:
    pipeline: Pipeline
    chain: list[str] = field(default_factory=list)


Operand = Field | Literal | Identifier | SubPipeline


@dataclass
class Command:
    operands: list[Operand]


@dataclass
class Pipeline:
    commands: list[Command]
    variables: list[str] = field(default_factory=list)
    declare: bool = True  # `:=` declares, `=` assigns


@dataclass
class Action:
    pipeline: Pipeline


@dataclass
class If:
    branches: list[tuple[Pipeline, list[Node]]]
    otherwise: list[Node]


@dataclass
class Range:
    pipeline: Pipeline
    body: list[Node]
    otherwise: list[Node]


@dataclass
class With:
    pipeline: Pipeline
    body: list[Node]
    otherwise: list[Node]


@dataclass
class TemplateCall:
    name: str
    pipeline: Pipeline | None


Node = Text | Action | If | Range | With | TemplateCall


# --- lexing ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<declare>:=)
    | (?P<assign>=)
    | (?P<punct>[|(),])
    | (?P<variable>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), text[1:-1])


def _tokens(source: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            raise TemplateError(f"cannot read {source[pos:]!r}")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _split(source: str) -> list[tuple[str, str]]:
    """[("text", ...), ("action", ...)] with the `{{-`/`-}}` trimming applied."""
    parts: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    while True:
        start = source.find("{{", pos)
        text = source[pos:] if start < 0 else source[pos:start]
        if trim_next:
            text = text.lstrip()
        if start < 0:
            parts.append(("text", text))
            return parts
        inner_start = start + 2
        if source.startswith("- ", inner_start) or source.startswith("-\n", inner_start):
            text = text.rstrip()
            inner_start += 1
        parts.append(("text", text))
        end = _action_end(source, inner_start)
        inner = source[inner_start:end]
        trim_next = inner.endswith(" -") or inner.endswith("\n-")
        if trim_next:
            inner = inner[:-1]
        parts.append(("action", inner.strip()))
        pos = end + 2


def _action_end(source: str, pos: int) -> int:
    """The index of the `}}` closing an action, skipping quoted strings and comments."""
    quote: str | None = None
    i = pos
    while i < len(source):
        c = source[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = None
        elif source.startswith("/*", i):
            close = source.find("*/", i + 2)
            if close < 0:
                break
            i = close + 2
            continue
        elif c in '"`':
            quote = c
        elif source.startswith("}}", i):
            return i
        i += 1
    raise TemplateError("unclosed action")


# --- parsing -----------------------------------------------------------------------------------


class _Reader:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise TemplateError("unexpected end of action")
        self.i += 1
        return token


def _operand(reader: _Reader) -> Operand:
    kind, text = reader.next()
    if kind == "string":
        return Literal(_unquote(text))
    if kind == "raw":
        return Literal(text[1:-1])
    if kind == "number":
        return Literal(float(text) if any(c in text for c in ".eE") else int(text))
    if kind == "field":
        return Field(None, [] if text == "." else text[1:].split("."))
    if kind == "variable":
        name, *chain = text.split(".")
        return Field(name, chain)
    if kind == "word":
        if text in ("true", "false"):
            return Literal(text == "true")
        if text == "nil":
            return Literal(None)
        return Identifier(text)
    if (kind, text) == ("punct", "("):
        inner = _pipeline(reader, stop=")")
        reader.next()
        chain: list[str] = []
        follow = reader.peek()
        if follow is not None and follow[0] == "field" and follow[1] != ".":
            chain = reader.next()[1][1:].split(".")
        return SubPipeline(inner, chain)
    raise TemplateError(f"unexpected {text!r}")


def _pipeline(reader: _Reader, stop: str | None = None) -> Pipeline:
    variables: list[str] = []
    declare = True
    # `$a, $b :=` or `$a :=` / `$a =`
    save = reader.i
    names: list[str] = []
    while (token := reader.peek()) is not None and token[0] == "variable":
        names.append(reader.next()[1])
        follow = reader.peek()
        if follow == ("punct", ","):
            reader.next()
            continue
        if follow is not None and follow[0] in ("declare", "assign"):
            declare = reader.next()[0] == "declare"
            variables = names
        break
    if not variables:
        reader.i = save
    commands: list[Command] = [Command([])]
    while (token := reader.peek()) is not None:
        if stop is not None and token == ("punct", stop):
            break
        if token == ("punct", "|"):
            reader.next()
            commands.append(Command([]))
            continue
        commands[-1].operands.append(_operand(reader))
    if any(not c.operands for c in commands):
        raise TemplateError("empty command in pipeline")
    return Pipeline(commands, variables, declare)


def _parse_action(text: str) -> Pipeline:
    reader = _Reader(_tokens(text))
    pipeline = _pipeline(reader)
    if reader.peek() is not None:
        raise TemplateError(f"unexpected {reader.peek()!r} in {text!r}")
    return pipeline


def parse(source: str, defines: dict[str, list[Node]]) -> list[Node]:
    """The nodes of `source`; `define` blocks are added to `defines`."""
    parts = _split(source)
    nodes, stop, _ = _parse_block(parts, 0, defines, top=True)
    if stop is not None:
        raise TemplateError(f"unexpected {{{{{stop}}}}}")
    return nodes


_KEYWORD = re.compile(r"^(if|else if|else with|else|end|range|with|define|template|block)\b\s*")


def _parse_block(
    parts: list[tuple[str, str]], i: int, defines: dict[str, list[Node]], top: bool = False
) -> tuple[list[Node], str | None, int]:
    """Nodes until an `else`/`end` (returned with the index after it)."""
    nodes: list[Node] = []
    while i < len(parts):
        kind, text = parts[i]
        i += 1
        if kind == "text":
            if text:
                nodes.append(Text(text))
            continue
        if text.startswith("/*"):
            continue
        keyword = _KEYWORD.match(text)
        if keyword is None:
            nodes.append(Action(_parse_action(text)))
            continue
        word, rest = keyword.group(1), text[keyword.end() :]
        if word in ("end", "else"):
            return nodes, word, i
        if word == "else if":
            return nodes, "else if " + rest, i
        if word in ("else with", "block"):
            raise TemplateError(f"{word} is outside the supported subset")
        if word == "define":
            name = _unquote(rest.strip())
            body, stop, i = _parse_block(parts, i, defines)
            if stop != "end":
                raise TemplateError(f"define {name} without end")
            defines[name] = body
            continue
        if word == "template":
            reader = _Reader(_tokens(rest))
            name_token = reader.next()
            name = _unquote(name_token[1])
            argument = _pipeline(reader) if reader.peek() is not None else None
            nodes.append(TemplateCall(name, argument))
            continue
        pipeline = _parse_action(rest)
        body, stop, i = _parse_block(parts, i, defines)
        if word == "if":
            branches = [(pipeline, body)]
            otherwise: list[Node] = []
            while stop is not None and stop.startswith("else if "):
                condition = _parse_action(stop[len("else if ") :])
                body, stop, i = _parse_block(parts, i, defines)
                branches.append((condition, body))
            if stop == "else":
                otherwise, stop, i = _parse_block(parts, i, defines)
            if stop != "end":
                raise TemplateError("if without end")
            nodes.append(If(branches, otherwise))
            continue
        otherwise = []
        if stop == "else":
            otherwise, stop, i = _parse_block(parts, i, defines)
        if stop != "end":
            raise TemplateError(f"{word} without end")
        nodes.append(
            Range(pipeline, body, otherwise) if word == "range" else With(pipeline, body, otherwise)
        )
    return nodes, None, i
