"""What a Pydantic model's fields hold, in a form the typed sinks (Parquet, SQL) map from.

:func:`field_types` walks a model once and returns a :class:`FieldType` per field:
``Optional[X]`` and ``Annotated[X, ...]`` are unwrapped, the constraints a storage type
needs (``max_digits`` / ``decimal_places`` / ``max_length``) are collected, and nested
models, lists and dicts are described recursively. Both the Arrow schema
(:mod:`flowschema_core.arrow_schema`) and the SQL table (:mod:`flowschema_core.sinks.sql`)
are derived from this one description, so the two sinks agree on what a field is.

A type no typed sink can store (``Any``, a union of several types, ...) raises
:class:`~flowschema_core.errors.ConfigError` naming the field.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import types
import typing
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import AwareDatetime, BaseModel, NaiveDatetime
from pydantic.fields import FieldInfo

from .errors import ConfigError

#: kinds a FieldType may have
SCALARS = ("int", "float", "bool", "str", "bytes", "decimal", "datetime", "date", "time", "uuid", "enum", "literal")


@dataclass
class FieldType:
    """One field (or list item / struct member) of a model, as a typed sink sees it."""

    kind: str  # one of SCALARS, or "model", "list", "dict"
    nullable: bool = False
    max_digits: int | None = None
    decimal_places: int | None = None
    max_length: int | None = None
    #: for datetimes: "aware" (AwareDatetime), "naive" (NaiveDatetime) or None (plain datetime)
    tz: str | None = None
    item: FieldType | None = None  # list item, dict value
    fields: dict[str, FieldType] = field(default_factory=dict)  # nested model members
    python_type: Any = None


def field_types(model: type[BaseModel]) -> dict[str, FieldType]:
    """Describe every field of ``model``, in field order."""
    out = {}
    for name, info in model.model_fields.items():
        ft = describe(info.annotation, info.metadata, where=f"{model.__name__}.{name}")
        # A field whose default is None may hold None even if its annotation says otherwise
        # (Pydantic does not validate defaults).
        if info.default is None and not info.is_required():
            ft.nullable = True
        out[name] = ft
    return out


def describe(annotation: Any, metadata: list[Any] | tuple[Any, ...] = (), *, where: str) -> FieldType:
    """Describe one annotation (``where`` names the field in error messages)."""
    constraints: dict[str, Any] = {}
    _collect(metadata, constraints)
    nullable = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            args = typing.get_args(annotation)
            _collect(args[1:], constraints)
            annotation = args[0]
            continue
        if origin is typing.Union or origin is types.UnionType:
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != len(typing.get_args(annotation)):
                nullable = True
            if len(members) == 1:
                annotation = members[0]
                continue
            raise ConfigError(f"{where}: a union of several types ({annotation}) has no single storage type; use one type")
        break
    ft = _describe_bare(annotation, where)
    ft.nullable = ft.nullable or nullable
    ft.max_digits = constraints.get("max_digits")
    ft.decimal_places = constraints.get("decimal_places")
    ft.max_length = constraints.get("max_length")
    return ft


def _collect(metadata: Any, into: dict[str, Any]) -> None:
    for m in metadata:
        if isinstance(m, FieldInfo):
            _collect(m.metadata, into)
            continue
        for key in ("max_digits", "decimal_places", "max_length"):
            value = getattr(m, key, None)
            if isinstance(value, int):
                into[key] = value


def _describe_bare(t: Any, where: str) -> FieldType:
    origin = typing.get_origin(t)
    if origin is typing.Literal:
        return FieldType("literal", python_type=t)
    if origin in (list, set, frozenset, tuple) or t in (list, set, frozenset):
        args = typing.get_args(t)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise ConfigError(f"{where}: a fixed-length tuple ({t}) has no single storage type; use tuple[X, ...] or list[X]")
        if not args:
            raise ConfigError(f"{where}: say what the list holds, e.g. list[int]")
        return FieldType("list", item=describe(args[0], where=f"{where}[]"), python_type=t)
    if origin is dict:
        args = typing.get_args(t)
        if not args or args[0] is not str:
            raise ConfigError(f"{where}: only dict[str, X] can be stored")
        return FieldType("dict", item=describe(args[1], where=f"{where}{{}}"), python_type=t)
    if isinstance(t, type):
        if issubclass(t, BaseModel):
            return FieldType("model", fields=field_types(t), python_type=t)
        if issubclass(t, enum.Enum):  # before str/int: a str Enum is a str too
            return FieldType("enum", python_type=t)
        if t is AwareDatetime:
            return FieldType("datetime", tz="aware", python_type=t)
        if t is NaiveDatetime:
            return FieldType("datetime", tz="naive", python_type=t)
        for base, kind in _BASES:
            if issubclass(t, base):
                return FieldType(kind, python_type=t)
        # PastDatetime, FutureDate, ...: Pydantic's constrained date classes
        name = t.__name__
        if name.endswith("Datetime"):
            return FieldType("datetime", python_type=t)
        if name.endswith("Date"):
            return FieldType("date", python_type=t)
    raise ConfigError(f"{where}: no storage type for {t!r}; supported: int, float, bool, str, bytes, Decimal, datetime, "
                      "date, time, UUID, Enum, Literal, nested models, list[X], dict[str, X], Optional[...]")


# Order matters: bool before int, datetime before date.
_BASES: list[tuple[type, str]] = [
    (bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (bytes, "bytes"),
    (decimal.Decimal, "decimal"), (dt.datetime, "datetime"), (dt.date, "date"), (dt.time, "time"), (uuid.UUID, "uuid"),
]
