"""The text of the Pydantic module that ``flowschema infer`` writes: safe field names with
aliases, one commented field per column.

A column name becomes a field name by: accents dropped (``naïve`` → ``naive``), camelCase
split, lower case, runs of anything but letters, digits and ``_`` turned into one ``_``;
then ``f_`` before a leading digit, ``_`` after a Python keyword, a ``BaseModel``
attribute (``json``, ``copy``) or a name the module's annotations use (``int``, ``dt``);
``field_`` before ``model_…`` (Pydantic's namespace). Names that collide after that get
``_2``, ``_3``. A field whose name differs from its column reads it through
``Field(alias=...)``, and ``populate_by_name=True`` lets code build the model by field names.
"""

from __future__ import annotations

import keyword
import re
import unicodedata
from collections.abc import Sequence

from pydantic import BaseModel

from .infer_types import ColumnType

# Names the generated annotations use: a field with one of these names would shadow it
# for the fields after it in the class body.
_RESERVED = {"int", "float", "str", "bool", "bytes", "dict", "list", "dt", "Decimal", "Any", "Literal", "Field", "ConfigDict", "BaseModel"}
_BASE_ATTRIBUTES = set(dir(BaseModel))


def field_names(columns: Sequence[str]) -> list[str]:
    """A safe, unique Python identifier for each column name, in order. A column whose
    name is already its identifier keeps it; the others yield on a collision."""
    bases = [_identifier(column) or f"field_{index + 1}" for index, column in enumerate(columns)]
    names: list[str | None] = [base if base == column else None for base, column in zip(bases, columns)]
    taken = {name for name in names if name is not None}
    for index, base in enumerate(bases):
        if names[index] is not None and list(names).index(names[index]) == index:
            continue
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        names[index] = name
    return [name for name in names if name is not None]


def _identifier(column: str) -> str:
    text = "".join(ch for ch in unicodedata.normalize("NFKD", column) if not unicodedata.combining(ch))
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)  # orderId → order_Id
    text = re.sub(r"\W+", "_", unicodedata.normalize("NFKC", text).lower(), flags=re.UNICODE).strip("_")
    if not text:
        return ""
    if text[0].isdigit():
        text = "f_" + text
    if not text.isidentifier():  # a character Python does not allow in names: keep ASCII only
        text = re.sub(r"[^0-9a-z_]+", "_", text.encode("ascii", "ignore").decode()).strip("_")
        return "" if not text else text if text.isidentifier() else "f_" + text
    if text.startswith("model_"):
        text = "field_" + text
    if keyword.iskeyword(text) or text in _RESERVED or text in _BASE_ATTRIBUTES:
        text += "_"
    return text


def render(columns: list[ColumnType], *, class_name: str, docstring: str) -> str:
    """The module: imports for what the fields use, the class, one commented line a field."""
    names = field_names([c.name for c in columns])
    aliased = any(name != column.name for name, column in zip(names, columns))
    lines = []
    for name, column in zip(names, columns):
        annotation = column.type_name + (" | None" if column.optional else "")
        arguments = []
        if column.optional:
            arguments.append("default=None")
        if name != column.name:
            arguments.append(f"alias={column.name!r}")
        if arguments == ["default=None"]:
            value = " = None"
        else:
            value = f" = Field({', '.join(arguments)})" if arguments else ""
        lines.append(f"    {name}: {annotation}{value}  # {column.comment()}")
    used = " ".join(c.type_name for c in columns)
    imports = []
    if "dt." in used:
        imports.append("import datetime as dt")
    if "Decimal" in used:
        imports.append("from decimal import Decimal")
    typing_names = [n for n in ("Any", "Literal") if re.search(rf"\b{n}\b", used)]
    if typing_names:
        imports.append(f"from typing import {', '.join(typing_names)}")
    pydantic_names = ["BaseModel"] + (["ConfigDict", "Field"] if aliased else [])
    imports.append(f"from pydantic import {', '.join(sorted(pydantic_names))}")
    config = ["    model_config = ConfigDict(populate_by_name=True)", ""] if aliased else []
    body = lines or ["    pass"]
    return "\n".join([f'"""{docstring}"""', "", *_grouped(imports), "", "", f"class {class_name}(BaseModel):", *config, *body, ""])


def _grouped(imports: list[str]) -> list[str]:
    """Standard-library imports, a blank line, then pydantic (isort's order)."""
    stdlib = [i for i in imports if "pydantic" not in i]
    third = [i for i in imports if "pydantic" in i]
    return [*stdlib, *([""] if stdlib else []), *third]
