"""The Arrow schema of a Pydantic model, and the value conversions it needs.

========================  ===============================================================
model field               Arrow type
========================  ===============================================================
``int``                   ``int64`` (a value outside 64 bits is refused: DLQ stage ``sink``)
``float``                 ``float64``
``bool``                  ``bool``
``str``                   ``string``
``bytes``                 ``binary``
``Decimal``               ``decimal128(max_digits, decimal_places)`` from the field's
                          constraints; only ``decimal_places`` → ``(38, decimal_places)``;
                          only ``max_digits`` → ``(2 * max_digits, max_digits)`` (holds every
                          valid value exactly); neither → ``decimal128(38, 9)``, and a value
                          that does not fit (more than 9 decimals or 29 integer digits) is
                          refused: DLQ stage ``sink``, never rounded. Precision above 38 →
                          ``decimal256``.
``AwareDatetime``         ``timestamp("us", tz="UTC")``, values converted to UTC
``datetime``              ``timestamp("us", tz="UTC")`` too: an instant is the safe reading;
                          a naive value is taken as UTC
``NaiveDatetime``         ``timestamp("us")`` (an aware value is converted to UTC wall time)
``date``                  ``date32``
``time``                  ``time64("us")``
``UUID``                  ``string`` (canonical 36-character form): every reader (DuckDB,
                          Spark, pandas, Polars) shows and compares it as text, whereas
                          ``fixed_size_binary(16)`` comes back as opaque bytes in most of them
``Enum``                  ``string``: the member's value, as text
``Literal[...]``          ``string``: the value, as text
``Optional[X]``           X, nullable (other fields are not nullable)
nested ``BaseModel``      ``struct`` of its fields, recursively
``list[X]`` / ``set[X]``  ``list<X>``
``dict[str, X]``          ``map<string, X>``
========================  ===============================================================

pyarrow is imported inside the functions, so importing FlowSchema never needs it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from .errors import MissingDependencyError
from .model_types import FieldType, field_types

#: The decimal type of a Decimal field without max_digits / decimal_places.
DEFAULT_DECIMAL = (38, 9)

Converter = Callable[[Any], Any]


def import_pyarrow() -> Any:
    """Return the ``pyarrow`` module, or raise MissingDependencyError naming the extra."""
    try:
        import pyarrow
    except ImportError as exc:
        raise MissingDependencyError("Parquet support", "parquet", "pyarrow") from exc
    return pyarrow


def arrow_schema(model: type[BaseModel]) -> Any:
    """The ``pyarrow.Schema`` of ``model`` (see the module docstring for the mapping)."""
    pa = import_pyarrow()
    return pa.schema([pa.field(name, arrow_type(ft), nullable=ft.nullable) for name, ft in field_types(model).items()])


def arrow_type(ft: FieldType) -> Any:
    """The Arrow type of one described field."""
    pa = import_pyarrow()
    kind = ft.kind
    if kind == "int":
        return pa.int64()
    if kind == "float":
        return pa.float64()
    if kind == "bool":
        return pa.bool_()
    if kind in ("str", "uuid", "enum", "literal"):
        return pa.string()
    if kind == "bytes":
        return pa.binary()
    if kind == "decimal":
        precision, scale = decimal_precision(ft)
        return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    if kind == "datetime":
        return pa.timestamp("us") if ft.tz == "naive" else pa.timestamp("us", tz="UTC")
    if kind == "date":
        return pa.date32()
    if kind == "time":
        return pa.time64("us")
    if kind == "model":
        return pa.struct([pa.field(n, arrow_type(f), nullable=f.nullable) for n, f in ft.fields.items()])
    if kind == "list":
        assert ft.item is not None
        return pa.list_(pa.field("item", arrow_type(ft.item), nullable=ft.item.nullable))
    if kind == "dict":
        assert ft.item is not None
        return pa.map_(pa.string(), pa.field("value", arrow_type(ft.item), nullable=ft.item.nullable))
    raise AssertionError(f"unknown field kind {kind!r}")


def decimal_precision(ft: FieldType) -> tuple[int, int]:
    """``(precision, scale)`` of a Decimal field, by the rule in the module docstring."""
    digits, places = ft.max_digits, ft.decimal_places
    if digits is not None and places is not None:
        return max(digits, places, 1), places
    if places is not None:
        return max(38, places), places
    if digits is not None:
        return 2 * digits, digits
    return DEFAULT_DECIMAL


def converter(ft: FieldType) -> Converter | None:
    """A function turning a ``model_dump()`` value into what pyarrow takes for ``ft``'s
    type, or None when pyarrow takes the value as it is (the common, fast case)."""
    kind = ft.kind
    if kind == "uuid":
        return _uuid
    if kind in ("enum", "literal"):
        return as_text
    if kind == "model":
        members = {n: c for n, c in ((n, converter(f)) for n, f in ft.fields.items()) if c is not None}
        if not members:
            return None
        return lambda v: v if v is None else {k: (members[k](x) if k in members else x) for k, x in v.items()}
    if kind == "list":
        assert ft.item is not None
        inner = converter(ft.item)
        if inner is None:
            return _as_list
        return lambda v: v if v is None else [inner(x) for x in v]
    if kind == "dict":
        assert ft.item is not None
        inner_d = converter(ft.item)
        if inner_d is None:
            return None
        return lambda v: v if v is None else {k: inner_d(x) for k, x in v.items()}
    return None


def _uuid(value: Any) -> Any:
    return None if value is None else str(value)


def as_text(value: Any) -> Any:
    """An Enum member or Literal value as text (its ``value`` for an Enum)."""
    if value is None or (isinstance(value, str) and not isinstance(value, enum.Enum)):
        return value
    if isinstance(value, enum.Enum):
        value = value.value
    return value if isinstance(value, str) else str(value)


def _as_list(value: Any) -> Any:
    return value if value is None or isinstance(value, list) else list(value)


def json_text(value: Any) -> Any:
    """A DLQ cell as text: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(to_jsonable_python(value, fallback=repr), ensure_ascii=False)
