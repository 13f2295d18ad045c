"""Models and hooks for the pipeline integration tests (importable by worker processes)."""

from __future__ import annotations

import ctypes
import os
import signal
import time
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

import flowschema_core as fs


class Item(BaseModel):
    id: int = Field(gt=0)
    name: str
    price: Decimal = Field(ge=0)
    note: str | None = None


class SlowItem(Item):
    """``Item`` that takes ``SLOW_ITEM_S`` seconds (env, default 0) per record: makes a CLI
    run long enough to signal, while the model's schema (and checkpoint digest) is fixed."""

    @field_validator("name")
    @classmethod
    def _slowly(cls, value: str) -> str:
        time.sleep(float(os.environ.get("SLOW_ITEM_S", "0")))
        return value


class KillOnce(fs.Hook):
    """SIGKILLs its own worker the first time it sees record ``id == target``."""

    def __init__(self, target: str, marker: str) -> None:
        self.target, self.marker = target, marker

    def before_validate(self, record):
        if record.get("id") == self.target and not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return record


class Anything(BaseModel):
    """Any columns, any values (here, not in a test module: workers import the model's
    module, and a test module may compute its parameters when imported)."""

    model_config = ConfigDict(extra="allow")


class IdName(BaseModel):
    id: int
    name: str


class Poison(fs.Hook):
    """Crashes the worker every time it sees a record whose name is ``poison-*``."""

    def __init__(self, how: str = "exit") -> None:
        self.how = how

    def before_validate(self, record):
        if str(record.get("name", "")).startswith("poison"):
            if self.how == "segfault":
                ctypes.string_at(0)
            os._exit(3)
        return record


class Slow(fs.Hook):
    """Sleeps ``seconds`` per record (to make runs long enough to interrupt or kill)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def before_validate(self, record):
        time.sleep(self.seconds)
        return record


class DropEven(fs.Hook):
    def after_validate(self, model):
        return None if model.id % 2 == 0 else model


def write_items_csv(path, rows: int, *, bad_every: int = 0, poison: set[int] = frozenset()) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("id,name,price,note\n")
        for i in range(1, rows + 1):
            name = f"poison-{i}" if i in poison else f"item {i}"
            if bad_every and i % bad_every == 0:
                f.write(f"{i},{name},-{i}.5,bad price\n")  # invalid: negative
            elif bad_every and i % bad_every == 1 and i > 1:
                f.write(f"{i},{name}\n")  # ragged
            elif i % 7 == 0:
                f.write(f'{i},"{name}, with comma",{i}.25,"two\nlines"\n')
            else:
                f.write(f"{i},{name},{i}.10,\n")


class Hog(fs.Hook):
    """Tries to allocate ``gib`` GiB for records whose name is ``hog``."""

    def __init__(self, gib: int) -> None:
        self.gib = gib

    def before_validate(self, record):
        if record.get("name") == "hog":
            record["blob"] = bytearray(self.gib << 30)
        return record
