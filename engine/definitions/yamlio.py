"""Strict, safe YAML reading that keeps where every value came from.

Definition files are data. This reader builds on PyYAML's ``SafeLoader`` (no Python objects, no
tags beyond the core schema) and tightens it further:

* every mapping and sequence remembers the ``file:line:col`` of each key and item, so later checks
  can point at the exact place of a mistake;
* duplicate keys are an error (PyYAML silently keeps the last one);
* YAML 1.1 guesses are switched off: ``yes/no/on/off`` stay strings, only ``true/false`` are
  booleans, and dates stay strings for the schema to parse with an explicit format;
* aliases are refused outright: a policy file has no use for them and they are the vehicle of
  "billion laughs" expansion bombs, so refusing them is both simpler and faster than bounding them;
* any explicit tag (``!!python/object``, ``!include``...) is an error naming the tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.domain.errors import DefinitionError, Location

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MarkedDict",
    "MarkedList",
    "load_yaml_file",
    "load_yaml_text",
    "read_yaml",
]

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 50
_OPENING = (
    yaml.FlowSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.BlockMappingStartToken,
)
_CLOSING = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)
_CORE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


class MarkedDict(dict[str, Any]):
    """A mapping that knows where it and each of its keys were written."""

    location: Location
    key_locations: dict[str, Location]

    def where(self, key: str | None = None) -> Location:
        if key is not None and key in self.key_locations:
            return self.key_locations[key]
        return self.location


class MarkedList(list[Any]):
    """A sequence that knows where it and each of its items were written."""

    location: Location
    item_locations: list[Location]

    def where(self, index: int | None = None) -> Location:
        if index is not None and 0 <= index < len(self.item_locations):
            return self.item_locations[index]
        return self.location


class _StrictResolver(yaml.resolver.Resolver):
    """The core-schema resolver minus YAML 1.1's yes/no/on/off booleans and timestamps."""


_StrictResolver.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)


class _Loader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    yaml.constructor.SafeConstructor,
    _StrictResolver,
):
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _StrictResolver.__init__(self)


def _location(file: str, node: Node) -> Location:
    mark = node.start_mark
    return Location(file, mark.line + 1, mark.column + 1)


def _refuse_aliases(loader: _Loader, file: str) -> Iterator[yaml.Event]:
    while loader.check_event():
        event = loader.get_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            mark = event.start_mark
            raise DefinitionError(
                "YAML anchors and aliases are not allowed in definition files; write the value out",
                location=Location(file, mark.line + 1, mark.column + 1),
            )
        yield event


def _convert(node: Node, file: str, loader: _Loader) -> Any:
    where = _location(file, node)
    if node.tag not in _CORE_TAGS:
        raise DefinitionError(
            f"tag {node.tag!r} is not allowed: definition files are plain data "
            "(strings, numbers, true/false, null, lists and mappings)",
            location=where,
        )
    if isinstance(node, MappingNode):
        result = MarkedDict()
        result.location = where
        result.key_locations = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, file, loader)
            key_where = _location(file, key_node)
            if not isinstance(key, str):
                raise DefinitionError(
                    f"mapping keys must be strings, got {key!r}", location=key_where
                )
            if key in result:
                first = result.key_locations[key]
                raise DefinitionError(
                    f"duplicate key {key!r} (first defined at line {first.line})",
                    location=key_where,
                )
            result[key] = _convert(value_node, file, loader)
            result.key_locations[key] = key_where
        return result
    if isinstance(node, SequenceNode):
        items = MarkedList(_convert(item, file, loader) for item in node.value)
        items.location = where
        items.item_locations = [_location(file, item) for item in node.value]
        return items
    assert isinstance(node, ScalarNode)
    return loader.construct_object(node, deep=True)


def load_yaml_text(text: str, file: str = "<string>") -> Any:
    """Parse one YAML document into plain data with marks; ``DefinitionError`` on any problem."""
    if len(text.encode("utf-8", errors="replace")) > MAX_FILE_BYTES:
        raise DefinitionError(
            f"file is larger than {MAX_FILE_BYTES // 1024} KiB; definition files are small",
            location=Location(file),
        )
    _refuse_deep_nesting(text, file)
    loader = _Loader(text)
    try:
        events = list(_refuse_aliases(loader, file))
        if not events:
            return None
        documents = [n for n in _compose_all(events, loader)]
        if len(documents) > 1:
            raise DefinitionError(
                "a definition file holds one YAML document; found another after '---'",
                location=_location(file, documents[1]),
            )
        if not documents:
            return None
        return _convert(documents[0], file, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        problem = exc.problem or exc.context or "malformed YAML"
        raise DefinitionError(f"malformed YAML: {problem}", location=where) from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"malformed YAML: {exc}", location=Location(file, 1, 1)) from None
    except RecursionError:
        raise DefinitionError(
            "YAML nesting is too deep; definition files are a few levels deep",
            location=Location(file, 1, 1),
        ) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a scalar PyYAML cannot construct
        raise DefinitionError(
            f"malformed YAML value: {exc}", location=Location(file, 1, 1)
        ) from None
    finally:
        loader.dispose()


def _compose_all(events: list[yaml.Event], loader: _Loader) -> Iterator[Node]:
    """Compose documents from already-checked events (aliases were refused before this)."""
    replay = iter(events)
    current: list[yaml.Event] = []

    def check_event(*choices: type[yaml.Event]) -> bool:
        if not current:
            try:
                current.append(next(replay))
            except StopIteration:
                return False
        return not choices or isinstance(current[0], choices)

    def peek_event() -> yaml.Event:
        check_event()
        return current[0]

    def get_event() -> yaml.Event:
        check_event()
        return current.pop(0)

    loader.check_event = check_event  # type: ignore[method-assign, assignment]
    loader.peek_event = peek_event  # type: ignore[method-assign]
    loader.get_event = get_event  # type: ignore[method-assign]
    loader.get_event()  # StreamStart
    while not loader.check_event(yaml.StreamEndEvent):
        node = loader.compose_document()
        if node is not None:
            yield node


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a definition file; errors name the file as the user wrote it."""
    return read_yaml(Path(path))[1]


def read_yaml(path: Path) -> tuple[str, Any]:
    """The text and marked data of a YAML file; whole-file problems are reported at line 1."""
    file = str(path)
    try:
        with path.open("rb") as stream:  # read one byte past the limit, never a whole huge file
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise DefinitionError(f"cannot read: {exc.strerror}", location=Location(file)) from None
    if len(data) > MAX_FILE_BYTES:
        raise DefinitionError(
            f"file is larger than {MAX_FILE_BYTES // 1024} KiB; definition files are small",
            location=Location(file, 1, 1),
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DefinitionError(
            f"file is not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded; "
            "save the file as UTF-8",
            location=Location(file, line, column),
        ) from None
    return text, load_yaml_text(text, file)


def _refuse_deep_nesting(text: str, file: str) -> None:
    """Refuse nesting deeper than any definition needs, before the parser sees it.

    PyYAML's scanner does work proportional to the flow depth for every token, so a file of
    nothing but ``[`` takes quadratic time (hours for 2 MiB) and its composer recurses once per
    level. Scanning tokens lazily and stopping at the limit keeps the cost linear.
    """
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):  # tokens only: nothing is built
            if isinstance(token, _OPENING):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = token.start_mark
                    raise DefinitionError(
                        f"YAML nesting is deeper than {MAX_DEPTH} levels; definition files are a "
                        "few levels deep",
                        location=Location(file, mark.line + 1, mark.column + 1),
                    )
            elif isinstance(token, _CLOSING):
                depth -= 1
    except yaml.YAMLError:
        return  # malformed: the strict parser reports it, with its position
