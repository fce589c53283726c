"""Reading a policy file: strict YAML with line numbers, and the ConfigMap that may hold it.

- **Duplicate keys are errors** naming both lines: PyYAML keeps the last value silently,
  so `mode: warn` written twice, the second time `enforce`, would be a policy nobody meant.
- **Lines**: every key and list item of the document is mapped to its line in the file the
  user edits, so validation errors can say `policy.yaml:12`.
- **ConfigMaps**: a `kind: ConfigMap` whose data holds the policy (`policy.yaml`, or its only
  `*.yaml` key) is read as that policy, with lines counted in the ConfigMap file (for a
  block scalar `|`; otherwise in the data value). The shipped
  `manifests/base/policy-configmap.yaml` is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]
MERGE_TAG = "tag:yaml.org,2002:merge"
POLICY_YAML_HINT = "fix the policy at that line and column: quote values that hold ': ' or '{', or start with '*'"


class PolicyYamlError(ValueError):
    """The text is not YAML a policy can be read from; the message names the line."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key given twice (merge keys `<<` may still be
    overridden, as YAML intends)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if first is not None:
                raise ConstructorError(None, None, f"duplicate key {key!r} (first given at line {first}); YAML keeps only one of them, "
                                                   "so remove the other", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def yaml_problem(exc: yaml.YAMLError, source: str, line_offset: int = 0, column_offset: int = 0) -> str:
    """`FILE is not valid YAML at line L, column C: problem`: one wording for policies and manifests."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return f"{source} is not valid YAML: {problem}"
    return f"{source} is not valid YAML at line {mark.line + 1 + line_offset}, column {mark.column + 1 + column_offset}: {problem}"


def load_strict(text: str | bytes, *, source: str, line_offset: int = 0, column_offset: int = 0) -> tuple[Any, Node | None]:
    """The document and its node tree; duplicate keys and YAML errors raise PolicyYamlError
    naming the line (counted from `line_offset`)."""
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            document = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise PolicyYamlError(yaml_problem(exc, source, line_offset, column_offset)) from None
    except RecursionError:
        raise PolicyYamlError(f"{source} is nested too deeply") from None
    return document, node


def key_lines(node: Node | None, line_offset: int = 0) -> dict[Path, int]:
    """Path -> 1-based line of every mapping key and sequence item under `node`."""
    lines: dict[Path, int] = {}
    stack: list[tuple[Node, Path]] = [(node, ())] if node is not None else []
    while stack:
        current, path = stack.pop()
        if isinstance(current, MappingNode):
            for key_node, value_node in current.value:
                if isinstance(key_node, ScalarNode):
                    child = (*path, key_node.value)
                    lines.setdefault(child, key_node.start_mark.line + 1 + line_offset)
                    stack.append((value_node, child))
        elif isinstance(current, SequenceNode):
            for index, item in enumerate(current.value):
                child = (*path, index)
                lines[child] = item.start_mark.line + 1 + line_offset
                stack.append((item, child))
    return lines


@dataclass(frozen=True)
class PolicySource:
    """A policy document and where its parts are in the file."""

    document: Any
    source: str  # how messages name it: the file, or "FILE (ConfigMap NAME, data.KEY)"
    lines: dict[Path, int] = field(default_factory=dict)
    configmap: str | None = None  # the ConfigMap's name when the policy came from one

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def at(self, path: Path) -> str:
        line = self.line_of(path)
        return f"{self.source}:{line}" if line else self.source


def is_configmap(document: Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == "ConfigMap" and str(document.get("apiVersion", "")) == "v1"


def _data_key(document: dict[str, Any], source: str, wanted: str | None) -> str:
    data = document.get("data")
    if not isinstance(data, dict) or not data:
        raise PolicyYamlError(f"{source} is a ConfigMap without data; put the policy under data.policy.yaml")
    if wanted is not None:
        if wanted not in data:
            raise PolicyYamlError(f"{source}: ConfigMap data has no key {wanted!r} (keys: {', '.join(sorted(map(str, data)))})")
        return wanted
    if "policy.yaml" in data:
        return "policy.yaml"
    candidates = [str(k) for k in data if str(k).endswith((".yaml", ".yml"))]
    if len(candidates) != 1:
        raise PolicyYamlError(f"{source}: ConfigMap data has {len(candidates)} YAML keys ({', '.join(sorted(candidates)) or 'none'}); "
                              "name the policy policy.yaml")
    return candidates[0]


def read_policy_source(text: str | bytes, *, source: str, data_key: str | None = None) -> PolicySource:
    """The policy document in `text`: the document itself, or the one a ConfigMap holds."""
    document, node = load_strict(text, source=source)
    if not is_configmap(document):
        return PolicySource(document=document, source=source, lines=key_lines(node))
    assert isinstance(node, MappingNode)
    key = _data_key(document, source, data_key)
    inner = document["data"][key]
    name = str((document.get("metadata") or {}).get("name") or "?") if isinstance(document.get("metadata"), dict) else "?"
    where = f"{source} (ConfigMap {name}, data.{key})"
    if not isinstance(inner, str):
        raise PolicyYamlError(f"{where} must be a string holding the policy YAML (write `{key}: |` and the policy below it)")
    value_node = _data_value_node(node, key)
    # A block scalar's content starts on the line after its indicator: lines map one to one.
    offset = value_node.start_mark.line + 1 if value_node is not None and value_node.style in ("|", ">") else 0
    shown = source if offset else where
    # ...and columns by the block's indentation (that of its first line)
    lines = (text.decode(errors="replace") if isinstance(text, bytes) else text).splitlines()
    first = lines[offset] if offset and offset < len(lines) else ""
    indent = len(first) - len(first.lstrip(" ")) if offset else 0
    inner_document, inner_node = load_strict(inner, source=shown, line_offset=offset, column_offset=indent)
    return PolicySource(document=inner_document, source=shown, lines=key_lines(inner_node, offset), configmap=name)


def _data_value_node(node: MappingNode, key: str) -> ScalarNode | None:
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == "data" and isinstance(value_node, MappingNode):
            for inner_key, inner_value in value_node.value:
                if isinstance(inner_key, ScalarNode) and inner_key.value == key and isinstance(inner_value, ScalarNode):
                    return inner_value
    return None
