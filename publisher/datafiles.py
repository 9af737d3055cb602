"""The one reader of the YAML, TOML and JSON a blog repository holds (front matter, the
engine's config files, data files, config.yaml), bounded in what it may cost.

A blog repository is input, and may be hostile. PyYAML expands aliases without limit: a
billion-laughs file of a few hundred bytes loads as a small graph of shared objects, but
everything that walks it (lowering keys, repr, JSON) walks the expanded tree, billions of
values. And nesting thousands of levels deep makes the TOML and JSON readers (and any
recursive walk after them) raise RecursionError. So before a YAML document is constructed,
its node graph (where an alias is the node it names) is measured once per node: the values it
expands to, and its depth; a document past the limits below is refused, as are TOML and JSON
nested past MAX_DEPTH. The limits are far beyond what a real site writes (a Hugo config with
menus nests ~6 levels; YAML's anchors in real files save a few dozen lines).

Every refusal is a DataError (a ValueError) with a message phrased for the user, without the
file's name: the caller names the file."""

from __future__ import annotations

import json
from itertools import chain
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode

MAX_DEPTH = 100  # levels of nested lists/mappings
MAX_ALIAS_VALUES = 100_000  # values aliases may add to a YAML document beyond those written

try:
    _LOADER = yaml.CSafeLoader  # libyaml's scanner and composer: ~5x faster than PyYAML's
except AttributeError:  # PyYAML built without libyaml
    _LOADER = yaml.SafeLoader


class DataError(ValueError):
    """A document refused for what reading it would cost; the message is for the user."""


def _too_deep() -> DataError:
    return DataError(f"nested more than {MAX_DEPTH} levels deep")


def check_nodes(root: yaml.Node) -> None:
    """Raise DataError if the YAML node graph `root` expands (aliases followed) to more than
    MAX_ALIAS_VALUES values beyond the nodes it holds, nests past MAX_DEPTH, or holds itself.
    Each collection is measured once (an alias is the very node it names), and the recursion
    stops at MAX_DEPTH, so this costs one visit per node written (~0.4 us)."""
    measured: dict[int, tuple[int, int]] = {}  # id(collection) -> (values it expands to, height)
    scalars = 0

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        """(values `node`, a collection, expands to; its height)."""
        nonlocal scalars
        key = id(node)
        found = measured.get(key)
        if found is None:
            if depth >= MAX_DEPTH:
                raise _too_deep()
            measured[key] = _OPEN
            size = 1
            height = 0
            children = node.value
            if node.__class__ is MappingNode:
                children = chain.from_iterable(children)
            for child in children:
                if child.__class__ is ScalarNode:  # most nodes: no call for them
                    scalars += 1
                    size += 1
                    continue
                child_size, child_height = measure(child, depth + 1)
                size += child_size
                if child_height > height:
                    height = child_height
            found = measured[key] = (size, height + 1)
            # Every node of this value is counted by now: what it expands to beyond them is
            # what its aliases add (and the whole document adds at least as much).
            if found[0] > len(measured) + scalars + MAX_ALIAS_VALUES:
                raise DataError(f"its aliases (*name) expand it to more than {MAX_ALIAS_VALUES:,} "
                                "values beyond those written (a YAML alias bomb?)")
        elif found is _OPEN:
            raise DataError("an alias refers to a value that holds it (a recursive anchor)")
        if depth + found[1] > MAX_DEPTH:
            raise _too_deep()
        return found

    if root.__class__ is not ScalarNode:
        measure(root, 0)


_OPEN = (-1, -1)  # a collection whose children are being measured: on the current path


def load_yaml(text: str, loader_class: Any = None) -> Any:
    """`text` as yaml.safe_load reads it, unless check_nodes refuses it. Raises
    yaml.YAMLError (syntax), DataError (limits) or ValueError (e.g. a date 2024-13-45).
    `loader_class`: a subclass of the loader with other constructors (frontmatter.py's)."""
    loader = (loader_class or _LOADER)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "&" in text or sum(map(text.count, "-:?[{")) >= MAX_DEPTH - 1:
            check_nodes(node)
        # else: no anchor, so no alias; and every collection needs one of those indicators
        # (`key:`, `- `, `? `, `[`, `{`), so there are too few to nest past MAX_DEPTH.
        return loader.construct_document(node)
    finally:
        loader.dispose()


def check_depth(data: Any) -> Any:
    """`data` (parsed TOML or JSON: no shared values) if it nests at most MAX_DEPTH levels,
    else DataError. Iterative: walking it costs no recursion."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth >= MAX_DEPTH:
            raise _too_deep()
        stack.extend((child, depth + 1) for child in value if isinstance(child, (dict, list)))
    return data


def load_json(text: str) -> Any:
    """json.loads, bounded in depth. Raises json.JSONDecodeError or DataError."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise _too_deep() from None
    return check_depth(data)


def decode_json(decoder: json.JSONDecoder, text: str, start: int) -> tuple[Any, int]:
    """decoder.raw_decode(text, start), bounded in depth (a JSON value at the top of a file)."""
    try:
        data, end = decoder.raw_decode(text, start)
    except RecursionError:
        raise _too_deep() from None
    return check_depth(data), end


def load_toml(text: str) -> dict:
    """tomllib.loads, bounded in depth. Raises tomllib.TOMLDecodeError or DataError."""
    import tomllib  # lazy: ~10 ms, for TOML files (Hugo's config and +++ front matter) alone

    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise _too_deep() from None
    return check_depth(data)


def brace_end(text: str, start: int) -> int:
    """Index just past the '}' closing the '{' at `start` in JavaScript-like text (a JS
    config's object literal, an MDX expression), string literals and their escapes
    respected; -1 if it is never closed."""
    depth, quote, pos = 0, "", start
    while pos < len(text):
        c = text[pos]
        if quote:
            if c == "\\":
                pos += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    return -1
