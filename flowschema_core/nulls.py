"""The null policy: what an empty cell means, decided per field from the model.

Text formats (CSV, Excel's cells) cannot say "no value" except by leaving a cell empty,
and an empty cell is not the same thing for every field. Each worker decides once per
field (by the names a source can carry for it: the field's name, alias, validation alias
and alias choices) what an empty cell — ``""``, an empty Excel cell, or one of the
source's ``null_values`` tokens — becomes:

======================================================  ======================================
field of the model                                      an empty cell becomes
======================================================  ======================================
admits ``None`` (``Optional[X]``, ``X | None``, ``Any``)  ``None``
has a default (and does not admit ``None``)             not given: the default applies
its type accepts ``""`` (``str``, ``Literal[""]``, …)   ``""``
anything else (required ``int``, ``Decimal``, ``date``)  not given: pydantic's ``missing`` error
not in the model (``extra="allow"``)                    ``""``
has its own ``before``/``wrap``/``plain`` validator      ``""`` (the validator decides)
======================================================  ======================================

The source chooses the mode: ``"model"`` (the table; the default), ``"none"`` (every
empty cell is ``None``, as pandas reads NaN for every type) or ``"keep"`` (cells stay as
read, as ``csv.DictReader`` gives them). The DLQ keeps cells as read, never converted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from .errors import ConfigError

#: How a source asks for empty cells to be read.
EmptyCells = Literal["model", "none", "keep"]
EMPTY_CELL_MODES = ("model", "none", "keep")

# What an empty cell of a column becomes.
TO_NONE, OMIT, KEEP = "none", "omit", "keep"


def empty_cells_mode(empty_cells: str | None, empty_as_none: bool | None) -> str:
    """The mode from a source's options (``empty_as_none`` is the older spelling)."""
    if empty_as_none is not None:
        if empty_cells not in (None, "model"):
            raise ConfigError("give empty_cells or empty_as_none, not both")
        return "none" if empty_as_none else "keep"
    mode = empty_cells or "model"
    if mode not in EMPTY_CELL_MODES:
        raise ConfigError(f"empty_cells must be one of {', '.join(EMPTY_CELL_MODES)}, not {mode!r}")
    return mode


def null_tokens(null_values: Iterable[str] | None) -> list[str]:
    """The tokens that mean "no value": always ``""``, plus the source's ``null_values``."""
    tokens = [""]
    for token in null_values or ():
        if not isinstance(token, str):
            raise ConfigError(f"null_values must be strings, not {token!r}")
        if token not in tokens:
            tokens.append(token)
    return tokens


class NullPolicy:
    """Per-field actions for empty cells, built once per worker from the model."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.by_name: dict[str, str] = {}
        own_rules = _fields_with_own_empty_rules(model)
        for name, info in model.model_fields.items():
            # A field with its own before/wrap/plain validator decides what an empty cell
            # means: it gets the cell as read, as a plain csv.DictReader loop would give it.
            action = KEEP if name in own_rules else _action(info)
            for key in _names(model, name, info):
                self.by_name.setdefault(key, action)

    def actions(self, fields: Sequence[str], mode: str) -> list[str]:
        """The action for each column of a source with these ``fields``."""
        if mode == "none":
            return [TO_NONE] * len(fields)
        if mode == "keep":
            return [KEEP] * len(fields)
        return [self.by_name.get(f, KEEP) for f in fields]


def apply(fields: Sequence[str], values: Sequence[Any], actions: Sequence[str], tokens: Iterable[Any]) -> dict[str, Any]:
    """One record from its cells, empty ones (those in ``tokens``) read per ``actions``."""
    record: dict[str, Any] = {}
    for name, value, action in zip(fields, values, actions):
        if value in tokens:
            if action == OMIT:
                continue
            value = None if action == TO_NONE else ""
        record[name] = value
    return record


def _fields_with_own_empty_rules(model: type[BaseModel]) -> set[str]:
    """Fields that a ``field_validator`` sees before pydantic's own parsing."""
    decorators = getattr(model, "__pydantic_decorators__", None)
    names: set[str] = set()
    for decorator in getattr(decorators, "field_validators", {}).values():
        if decorator.info.mode in ("before", "wrap", "plain"):
            fields = decorator.info.fields
            names.update(model.model_fields if "*" in fields else fields)
    return names


def _action(info: FieldInfo) -> str:
    annotation: Any = Annotated.__class_getitem__((info.annotation, *info.metadata)) if info.metadata else info.annotation  # type: ignore[attr-defined]
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    except Exception:  # noqa: BLE001 - an annotation a bare TypeAdapter cannot build (a forward reference)
        return KEEP if info.annotation is str else OMIT if not info.is_required() else TO_NONE
    if _accepts(adapter, None):
        return TO_NONE
    if not info.is_required():
        return OMIT
    return KEEP if _accepts(adapter, "") else OMIT


def _accepts(adapter: TypeAdapter[Any], value: Any) -> bool:
    try:
        adapter.validate_python(value)
    except Exception:  # noqa: BLE001 - ValidationError, or a validator that raised anything
        return False
    return True


def _names(model: type[BaseModel], name: str, info: FieldInfo) -> list[str]:
    """The keys a record may carry for this field."""
    from pydantic import AliasChoices

    names: list[str] = []
    alias = info.validation_alias if info.validation_alias is not None else info.alias
    if isinstance(alias, str):
        names.append(alias)
    elif isinstance(alias, AliasChoices):  # an AliasPath points into a nested value, never a cell
        names.extend(c for c in alias.choices if isinstance(c, str))
    config = model.model_config
    if alias is None or config.get("populate_by_name") or config.get("validate_by_name"):
        names.append(name)
    return names
