"""Reading a policy file's YAML with the position of every key and value, and
mapping schema errors back to ``FILE:LINE:COL`` problems.

Plain YAML scalars are read as strings (``null``/``~``/empty stay null), so that
``2026-12-25`` and ``"2026-12-25"`` mean the same, and a country code ``NO`` is
Norway rather than ``False``; pydantic then converts strings where a field wants a
number, a date or a boolean.

A hostile or mistaken file cannot exhaust memory or the stack: nesting stops at
``MAX_DEPTH`` levels and what aliases repeat at ``MAX_ALIAS_NODES`` values, each a
problem at its line and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import UserError
from .schema import kinds_with

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One problem in a policy file, at a line and column (1-based)."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class PolicyError(UserError):
    """A policy file has problems; ``problems`` lists them all."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


MAX_DEPTH = 100  # levels of nesting; a policy file needs fewer than ten
MAX_ALIAS_NODES = 10_000  # values that aliases may repeat, in all; a "billion laughs" file wants billions


class _Loader(yaml.SafeLoader):
    """PyYAML's safe composer, which recurses once per level of nesting, stopped
    past ``MAX_DEPTH``; and each alias becomes a node of its own, at the alias's
    position, that shares the anchored node's contents (``aliases`` holds them)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0
        self.aliases: set[int] = set()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark: yaml.Mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            node = super().compose_node(parent, index)
            return self._alias(node, mark) if node is not None else None
        if self.depth >= MAX_DEPTH:
            raise _BadYaml(None, _too_deep(), self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def _alias(self, node: yaml.Node, mark: yaml.Mark) -> yaml.Node:
        copy: yaml.Node
        if isinstance(node, yaml.ScalarNode):
            copy = yaml.ScalarNode(node.tag, node.value, mark, mark, style=node.style)
        elif isinstance(node, yaml.SequenceNode):
            copy = yaml.SequenceNode(node.tag, node.value, mark, mark, flow_style=node.flow_style)
        else:
            assert isinstance(node, yaml.MappingNode)
            copy = yaml.MappingNode(node.tag, node.value, mark, mark, flow_style=node.flow_style)
        self.aliases.add(id(copy))
        return copy


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep: a policy file needs only a few levels"


@dataclass
class _Budget:
    """What building may still spend: values repeated by aliases, and the nodes
    being built (an alias of one of them would repeat forever)."""

    aliases: set[int]
    repeated: int = 0
    open: set[int] = field(default_factory=set)


def _build(
    node: yaml.Node,
    loc: Loc,
    marks: dict[Loc, tuple[int, int]],
    keymarks: dict[Loc, tuple[int, int]],
    budget: _Budget,
    alias: yaml.Node | None = None,
    depth: int = 1,
) -> Any:
    """Plain data from a YAML node, recording where every path starts.

    ``alias`` is the outermost alias being expanded: a problem inside it is its
    problem, reported where it stands."""
    if id(node) in budget.aliases and alias is None:
        alias = node
    if alias is not None:
        budget.repeated += 1
        if budget.repeated > MAX_ALIAS_NODES:
            raise _BadYaml(alias, f"aliases repeat more than {MAX_ALIAS_NODES} values in all: write the values "
                                  "out, or use fewer aliases")
    if depth > MAX_DEPTH:
        raise _BadYaml(alias or node, _too_deep())
    if id(node) in budget.open:
        raise _BadYaml(alias or node, "this alias names a collection that contains itself: it would never end")
    marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.ScalarNode):
        if node.style is None and node.tag == "tag:yaml.org,2002:null":
            return None
        return node.value
    budget.open.add(id(node))
    try:
        if isinstance(node, yaml.SequenceNode):
            return [_build(v, (*loc, i), marks, keymarks, budget, alias, depth + 1) for i, v in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            key = _build(knode, (*loc, "<key>"), {}, {}, budget, alias, depth + 1)
            if isinstance(key, (dict, list)) or key is None:
                raise _BadYaml(knode, "a key must be a plain word")
            skey = str(key)
            if skey in out:
                raise _BadYaml(knode, f"duplicate key {skey!r}")
            keymarks[(*loc, skey)] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
            out[skey] = _build(vnode, (*loc, skey), marks, keymarks, budget, alias, depth + 1)
        return out
    finally:
        budget.open.discard(id(node))


class _BadYaml(Exception):
    def __init__(self, node: yaml.Node | None, message: str, mark: yaml.Mark | None = None) -> None:
        super().__init__(message)
        self.mark = mark if mark is not None else node.start_mark if node is not None else None


@dataclass(frozen=True)
class _Located:
    data: Any
    marks: dict[Loc, tuple[int, int]]
    keymarks: dict[Loc, tuple[int, int]]

    def where(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """Line and column of a path: the key itself when asked, else the value."""
        loc = tuple(loc)
        while loc:
            if key and loc in self.keymarks:
                return self.keymarks[loc]
            if loc in self.marks:
                return self.marks[loc]
            loc = loc[:-1]
        return self.marks.get((), (1, 1))


def read_yaml(path: str, text: str) -> _Located:
    """The document with the position of every key and value; ``PolicyError`` for
    what is not YAML, or nests or repeats past the limits (``MAX_DEPTH``,
    ``MAX_ALIAS_NODES``)."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader refuses some characters at once
        node = loader.get_single_node()
        data, marks, keymarks = _plain(node, loader.aliases) if node is not None else (None, {}, {})
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PolicyError([Problem(path, line, col, f"not valid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([Problem(path, 1, 1, f"not valid YAML: {exc}")]) from None
    except _BadYaml as exc:
        line, col = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark else (1, 1)
        raise PolicyError([Problem(path, line, col, str(exc))]) from None
    except RecursionError:  # a safety net: the limits above stop well before Python's
        raise PolicyError([Problem(path, 1, 1, _too_deep())]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise PolicyError([Problem(path, 1, 1,
                                   "the file is empty: a policy needs name, calendars, levels and classify")])
    if not isinstance(data, dict):
        raise PolicyError([Problem(path, 1, 1,
                                   "a policy file is a mapping of keys (name, calendars, levels, classify...)")])
    return _Located(data, marks, keymarks)


def _plain(
    node: yaml.Node, aliases: set[int]
) -> tuple[Any, dict[Loc, tuple[int, int]], dict[Loc, tuple[int, int]]]:
    marks: dict[Loc, tuple[int, int]] = {}
    keymarks: dict[Loc, tuple[int, int]] = {}
    return _build(node, (), marks, keymarks, _Budget(aliases)), marks, keymarks


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _data_loc(data: Any, loc: Loc, keep_last: bool) -> Loc:
    """Drop the parts of a pydantic location that are not keys of the document
    (pydantic names union members and validators in it)."""
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if part == "[key]":
            continue
        if isinstance(node, dict) and str(part) in node:
            out.append(str(part))
            node = node[str(part)]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif last and keep_last:
            out.append(part)
        elif isinstance(node, dict) and part == "when" and "if" in node:
            out.append("if")
            node = node["if"]
    return tuple(out)


def pydantic_problems(path: str, doc: _Located, exc: ValidationError) -> list[Problem]:
    problems = []
    seen = set()
    for err in exc.errors(include_url=False):
        kind = err["type"]
        loc = _data_loc(doc.data, tuple(err["loc"]), keep_last=kind == "missing")
        msg = err["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            msg = _other_kinds_setting(doc.data, loc) or f"unknown key {loc[-1]!r}: remove it or check its spelling"
        elif kind == "missing":
            msg = f"missing key {loc[-1]!r}"
        elif kind == "literal_error":
            msg = msg.replace("Input should be", "should be")
        if kind == "missing":
            line, col = doc.where(loc[:-1], key=True)
        else:
            on_key = kind == "extra_forbidden" or "[key]" in err["loc"]
            line, col = doc.where(loc, key=on_key)
        text = f"{dotted(loc)}: {msg}" if loc else msg
        if (line, text) in seen:
            continue
        seen.add((line, text))
        problems.append(Problem(path, line, col, text))
    return problems


def _other_kinds_setting(data: Any, loc: Loc) -> str | None:
    """For a tracker setting that only other kinds have: say so, and which."""
    if len(loc) != 2 or loc[0] != "tracker" or not isinstance(data.get("tracker"), dict):
        return None
    kind, setting = data["tracker"].get("kind"), str(loc[1])
    owners = [k for k in kinds_with(setting) if k != kind]
    if not owners:
        return None
    return f"a {kind} tracker has no {setting!r} setting (only {' and '.join(owners)} have it): remove it"
