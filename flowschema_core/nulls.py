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

        self._plans: dict[tuple[Any, ...], CellPlan] = {}

    def plan(self, fields: Sequence[str], mode: str, tokens: Iterable[Any]) -> CellPlan:
        """How the empty cells of a source with these columns are read; built once per
        header (sources send the same fields, mode and tokens with every chunk)."""
        key = (tuple(fields), mode, tuple(tokens))
        plan = self._plans.get(key)
        if plan is None:
            if mode == "none":
                actions = [TO_NONE] * len(fields)
            elif mode == "keep":
                actions = [KEEP] * len(fields)
            else:
                actions = [self.by_name.get(f, KEEP) for f in fields]
            plan = self._plans[key] = CellPlan(list(fields), actions, frozenset(key[2]))
        return plan


class CellPlan:
    """The null policy for one source's columns. The CSV hot loop reads ``untouched`` and
    ``in_place`` and fixes cells inline; other paths call :meth:`record`."""

    def __init__(self, fields: list[str], actions: list[str], tokens: frozenset[Any]) -> None:
        self.fields, self.actions, self.tokens = fields, actions, tokens
        #: No cell is ever changed: a row goes in as read.
        self.untouched = tokens == {""} and all(action == KEEP for action in actions)
        #: When "" is the only token and names are unique, the columns to fix, found in a row
        #: with list.count / list.index at C speed: index → (name, True: None / False: drop).
        self.in_place: dict[int, tuple[str, bool]] | None = None
        if tokens == {""} and len(set(fields)) == len(fields):
            self.in_place = {j: (fields[j], action == TO_NONE) for j, action in enumerate(actions) if action != KEEP}

    def record(self, row: Sequence[Any]) -> tuple[dict[str, Any], bool]:
        """The record from its cells, and whether the policy changed it (then the DLQ must
        be given the cells as read, not the record)."""
        if self.untouched or self.tokens.isdisjoint(row):
            return dict(zip(self.fields, row)), False
        record: dict[str, Any] = {}
        for name, value, action in zip(self.fields, row, self.actions):
            if value in self.tokens:
                if action == OMIT:
                    continue
                value = None if action == TO_NONE else ""
            record[name] = value
        return record, True


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
