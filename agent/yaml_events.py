"""YAML loading for big configs: ``yaml.safe_load`` semantics, built from the event stream.

PyYAML's loaders compose a node tree for the whole document (every scalar a
node with two position marks) before building Python objects; for a config
with a thousand checks that tree costs about 6 MB at its peak, an eighth of
the agent's memory budget. This module builds the objects straight from the
parser's events, using PyYAML's own resolver and safe scalar constructors, so
values come out exactly as ``safe_load`` gives them.
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


class _Builder:
    """Collects values into the containers that are open, innermost last."""

    def __init__(self) -> None:
        self.root: object = None
        self._open: list[list[Any] | dict[Any, Any]] = []
        self._keys: list[object] = []  # per open mapping: the key awaiting its value
        self._anchors: dict[str, object] = {}

    def add(self, value: object, anchor: str | None = None) -> None:
        if anchor:
            self._anchors[anchor] = value
        if not self._open:
            self.root = value
            return
        container = self._open[-1]
        if isinstance(container, list):
            container.append(value)
        elif self._keys[-1] is _NO_KEY:
            try:
                hash(value)
            except TypeError:
                raise yaml.YAMLError(
                    f"a mapping key must be a plain value, not {value!r}"
                ) from None
            self._keys[-1] = value
        else:
            container[self._keys[-1]] = value
            self._keys[-1] = _NO_KEY

    def alias(self, anchor: str) -> None:
        if anchor not in self._anchors:
            raise yaml.YAMLError(f"alias *{anchor} names no anchor")
        self.add(self._anchors[anchor])

    def open(self, container: list[Any] | dict[Any, Any], anchor: str | None) -> None:
        self.add(container, anchor)
        self._open.append(container)
        self._keys.append(_NO_KEY)

    def close(self) -> None:
        self._open.pop()
        self._keys.pop()


_NO_KEY = object()


def _scalar(loader: Any, event: Any) -> object:  # Any: libyaml and PyYAML marks differ
    tag = event.tag
    if tag is None or tag == "!":
        tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag == "tag:yaml.org,2002:merge":
        raise yaml.YAMLError(f"YAML merge keys (<<) are not supported here ({event.start_mark})")
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    constructor = loader.yaml_constructors.get(tag) or loader.yaml_constructors[None]
    return constructor(loader, node)


def _plain_collection(event: yaml.CollectionStartEvent, kind: str) -> None:
    # safe_load refuses tagged collections (e.g. !!python/object); so do we.
    if event.tag not in (None, "!", f"tag:yaml.org,2002:{kind}"):
        raise yaml.YAMLError(
            f"could not determine a constructor for the tag {event.tag!r} ({event.start_mark})"
        )


def load(text: str) -> object:
    """Parse one YAML document like ``yaml.safe_load``; raise ``yaml.YAMLError`` if invalid."""
    loader = _LOADER(text)
    builder = _Builder()
    documents = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.ScalarEvent):
                builder.add(_scalar(loader, event), event.anchor)
            elif isinstance(event, yaml.MappingStartEvent):
                _plain_collection(event, "map")
                builder.open({}, event.anchor)
            elif isinstance(event, yaml.SequenceStartEvent):
                _plain_collection(event, "seq")
                builder.open([], event.anchor)
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                builder.close()
            elif isinstance(event, yaml.AliasEvent):
                builder.alias(event.anchor or "")
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise yaml.YAMLError("expected one YAML document, found several")
    finally:
        loader.dispose()
    return builder.root
