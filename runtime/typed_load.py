"""Strict loading of plain data (parsed YAML) into frozen dataclasses, and their JSON Schema.

The runtime depends only on docker and pyyaml, so the registry model is made of
dataclasses and this small loader instead of pydantic. It rejects unknown keys,
missing fields and wrong types with a message that names the path, e.g.
``languages.node.tools[1].check: field required``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


class LoadError(ValueError):
    """Data that does not fit the model; `path` says where."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '(top level)'}: {message}")
        self.path = path
        self.message = message


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    origin = get_origin(tp)
    if origin in (list, tuple):
        return "list"
    if origin is dict:
        return "mapping"
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, str(tp))


def _is_optional(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


def load(cls: type[T], data: Any, path: str = "") -> T:
    """Build `cls` from `data`, or raise `LoadError` naming the offending path."""
    return typing.cast(T, _convert(cls, data, path))


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors: list[LoadError] = []
        meant: list[LoadError] = []  # from the options of the value's shape (mapping, list, scalar)
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except LoadError as err:
                errors.append(err)
                if _same_shape(option, value):
                    meant.append(err)
        for candidates in (errors, meant):  # a single candidate's own message says what is wrong
            if len(candidates) == 1:
                raise candidates[0]
        raise LoadError(path, f"expected {' or '.join(_type_name(o) for o in options)}")
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, path)
    if origin is Literal:
        if value not in get_args(tp):
            raise LoadError(path, f"expected one of {', '.join(repr(a) for a in get_args(tp))}, got {value!r}")
        return value
    if origin is tuple:  # tuple[X, ...]: YAML lists, kept immutable
        (item_type, _ellipsis) = get_args(tp)
        if not isinstance(value, list):
            raise LoadError(path, f"expected a list, got {_describe(value)}")
        return tuple(_convert(item_type, item, f"{path}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        key_type, item_type = get_args(tp)
        if not isinstance(value, dict):
            raise LoadError(path, f"expected a mapping, got {_describe(value)}")
        out = {}
        for key, item in value.items():
            if not isinstance(key, key_type):
                raise LoadError(_join(path, key), f"key must be a {_type_name(key_type)}")
            out[key] = _convert(item_type, item, _join(path, key))
        return out
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LoadError(path, f"expected a number, got {_describe(value)}")
        return float(value)
    if tp in (str, int, bool):
        # bool is an int in Python; YAML `yes` must not pass as a count, nor 1 as a flag.
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise LoadError(path, f"expected {_type_name(tp)}, got {_describe(value)}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported type in model at {path}: {tp!r}")


def _same_shape(tp: Any, value: Any) -> bool:
    """Whether `value` is the kind of data `tp` is loaded from (a mapping, a list or a scalar)."""
    if dataclasses.is_dataclass(tp) or get_origin(tp) is dict:
        return isinstance(value, dict)
    if get_origin(tp) in (list, tuple):
        return isinstance(value, list)
    return not isinstance(value, (dict, list))


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"[:80]


def _convert_dataclass(cls: Any, value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise LoadError(path, f"expected a mapping, got {_describe(value)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(value) - set(fields), key=str)
    if unknown:
        raise LoadError(_join(path, unknown[0]), f"unknown field (allowed: {', '.join(sorted(fields))})")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in value:
            has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
            if not has_default:
                raise LoadError(_join(path, name), "field required")
            continue
        kwargs[name] = _convert(hints[name], value[name], _join(path, name))
    try:
        return cls(**kwargs)
    except ValueError as err:  # __post_init__ cross-field checks
        raise LoadError(path, str(err)) from err


def json_schema(cls: type[Any], title: str) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a dataclass model, for editors validating the YAML."""
    definitions: dict[str, Any] = {}
    root = _schema(cls, definitions)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        **root,
        "$defs": dict(sorted(definitions.items())),
    }


def _schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema(o, defs) for o in get_args(tp)]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder: breaks recursion
            hints = get_type_hints(tp)
            fields = [f for f in dataclasses.fields(tp) if f.init]
            props = {}
            for f in fields:
                prop = _schema(hints[f.name], defs)
                if f.metadata.get("doc"):
                    prop = {**prop, "description": f.metadata["doc"]}
                props[f.name] = prop
            required = [
                f.name
                for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ]
            entry: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
            if required:
                entry["required"] = required
            if tp.__doc__:
                entry["description"] = " ".join(tp.__doc__.split())
            defs[name] = entry
        return {"$ref": f"#/$defs/{name}"}
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin is tuple:
        return {"type": "array", "items": _schema(get_args(tp)[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(get_args(tp)[1], defs)}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    if tp in simple:
        return {"type": simple[tp]}
    return {}
