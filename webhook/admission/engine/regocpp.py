"""rego-cpp (regopy) results read as structure: the node tree, never the text rendering.

regopy's own `Output` parses rego-cpp's text output, in which strings are written without
escaping; and rego-cpp aborts the process when asked for the expressions of an undefined
result. So the query goes through regopy's C bindings and this module walks the nodes
itself. The bindings are regopy internals: the version range in pyproject.toml pins them.
"""

from __future__ import annotations

import json
from typing import Any

from regopy import rego_shared as rs

from webhook.admission.engine.values import MAX_DEPTH, PolicyEngineError

_NODE = rs.NodeKind
_SCALARS = {_NODE.Int, _NODE.Float, _NODE.String, _NODE.True_, _NODE.False_, _NODE.Null}


class Undefined(PolicyEngineError):
    """The query has no value (the rule is not defined for this input)."""


def query(interpreter: Any, bundle: Any) -> Any:
    """Evaluate a built bundle against the interpreter's current input: the first expression
    of the single result, as Python data (strings exactly as the engine holds them)."""
    output = rs.rego_bundle_query(interpreter._impl, bundle._impl)
    if not output:
        raise PolicyEngineError("Rego evaluation returned nothing")
    try:
        if not rs.rego_output_ok(output):
            raise PolicyEngineError("Rego evaluation failed: " + rs.rego_output_string(output)[:500])
        root = rs.rego_output_node(output)
        if _kind(root) != _NODE.Results:
            raise Undefined("the Rego decision is undefined for this input")
        if rs.rego_node_size(root) != 1:
            raise PolicyEngineError(f"Rego evaluation returned {rs.rego_node_size(root)} results, expected 1")
        result = rs.rego_node_get(root, 0)
        terms = rs.rego_node_get(result, 0) if _kind(result) == _NODE.Result and rs.rego_node_size(result) >= 1 else None
        if terms is None or _kind(terms) != _NODE.Terms or rs.rego_node_size(terms) != 1:
            raise PolicyEngineError("Rego evaluation returned a result without exactly one expression")
        return _value(rs.rego_node_get(terms, 0), 0)
    finally:
        rs.rego_free_output(output)


def _kind(node: Any) -> int:
    return int(rs.rego.regoNodeType(node))


def _value(node: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise PolicyEngineError(f"the Rego result is nested more than {MAX_DEPTH} levels deep")
    kind = _kind(node)
    size = rs.rego_node_size(node)
    if kind in (_NODE.Term, _NODE.Scalar):
        if size != 1:
            raise PolicyEngineError(f"malformed Rego term with {size} children")
        return _value(rs.rego_node_get(node, 0), depth)
    if kind in _SCALARS:
        return _scalar(node, kind)
    if kind in (_NODE.Array, _NODE.Set):  # a set arrives as a list, in the engine's order
        return [_value(rs.rego_node_get(node, index), depth + 1) for index in range(size)]
    if kind == _NODE.Object:
        value: dict[str, Any] = {}
        for index in range(size):
            item = rs.rego_node_get(node, index)
            if _kind(item) != _NODE.ObjectItem or rs.rego_node_size(item) != 2:
                raise PolicyEngineError("malformed Rego object item")
            key = _value(rs.rego_node_get(item, 0), depth + 1)
            if not isinstance(key, str):
                raise PolicyEngineError(f"the Rego result has a non-string object key {key!r}")
            if key in value:
                raise PolicyEngineError(f"the Rego result has the key {key!r} twice")
            value[key] = _value(rs.rego_node_get(item, 1), depth + 1)
        return value
    raise PolicyEngineError(f"the Rego result holds a node of kind {kind}, which is not a JSON value")


def _string(text: str) -> str:
    """rego-cpp hands strings back in three forms: as held (input and data), as their JSON
    token (literals passed to functions, concat() results: `"abc"` with the quotes), or as a
    token's escaped body (literals with escapes). Input and data strings are encoded so that
    they hold no quote or backslash (values.py), so only engine-made strings take the
    last two forms, and no request string can make a string look like a token."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return _json_string(text)
    if "\\" in text:
        return _json_string(f'"{text}"')
    return text


def _json_string(token: str) -> str:
    try:
        value = json.loads(token)
    except ValueError:
        raise PolicyEngineError(f"the Rego result holds a malformed string {token[:60]!r}") from None
    if not isinstance(value, str):
        raise PolicyEngineError(f"the Rego result holds a malformed string {token[:60]!r}")
    return value


def _scalar(node: Any, kind: int) -> Any:
    if kind == _NODE.Null:
        return None
    if kind in (_NODE.True_, _NODE.False_):
        return kind == _NODE.True_
    text = rs.rego_node_value(node)
    if kind == _NODE.String:
        return _string(text)
    try:
        return int(text) if kind == _NODE.Int else float(text)
    except ValueError:
        raise PolicyEngineError(f"the Rego result holds a malformed number {text[:40]!r}") from None
