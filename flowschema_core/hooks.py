"""Hooks: user code that transforms records in the workers.

* ``before_validate(record: dict) -> dict | None`` runs on the raw record.
* ``after_validate(model) -> model | None`` runs on the validated model.

Returning ``None`` drops the record on purpose; it is counted as *filtered*. An exception
in a hook sends that record to the DLQ with stage ``transform`` and the hook's name.

Hooks are built once per worker (pickled with cloudpickle together with the model, so a
hook defined in the user's ``__main__`` works); ``setup()`` runs once per worker before
the first chunk, for things like loading a lookup table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

Record = dict[str, Any]


class Hook:
    """Base class for hooks; override ``before_validate`` and/or ``after_validate``."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def setup(self) -> None:
        """Called once in each worker before its first chunk."""

    def before_validate(self, record: Record) -> Record | None:
        return record

    def after_validate(self, model: BaseModel) -> BaseModel | None:
        return model


class _FunctionHook(Hook):
    def __init__(self, fn: Callable[[Any], Any], stage: str) -> None:
        self.fn, self.stage = fn, stage

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))

    def before_validate(self, record: Record) -> Record | None:
        return self.fn(record) if self.stage == "before" else record

    def after_validate(self, model: BaseModel) -> BaseModel | None:
        return self.fn(model) if self.stage == "after" else model


def before_validate(fn: Callable[[Record], Record | None]) -> Hook:
    """Turn ``fn(record) -> record | None`` into a hook that runs before validation."""
    return _FunctionHook(fn, "before")


def after_validate(fn: Callable[[BaseModel], BaseModel | None]) -> Hook:
    """Turn ``fn(model) -> model | None`` into a hook that runs after validation."""
    return _FunctionHook(fn, "after")


def as_hook(obj: Hook | Callable[[Record], Record | None]) -> Hook:
    """Accept a :class:`Hook` or a plain callable (taken as a ``before_validate`` hook)."""
    if isinstance(obj, Hook):
        return obj
    if callable(obj):
        return before_validate(obj)
    raise TypeError(f"a hook must be a flowschema Hook or a callable, not {type(obj).__name__}")


def overrides(hook: Hook, method: str) -> bool:
    """True when ``hook`` does something in ``method`` (so the worker can skip no-ops)."""
    if isinstance(hook, _FunctionHook):
        return hook.stage == method.split("_")[0]
    return getattr(type(hook), method) is not getattr(Hook, method)
