"""Infer a Pydantic model from a file: ``flowschema infer`` and :func:`infer_model_source`.

::

    source.chunks() ─► codec.decode ─► kind.parse(chunk, _Collector) ─► records, as read
        (any kind FlowSchema reads:      (the workers' own parsing:      │
         CSV, JSON, Parquet, SQL, …)       same cells, same null tokens)   ▼
                                       reservoir sample (seed, bounded) ─► a type per column
                                                                        ─► module text

Records come from the same sources and the same chunk parsing as a run, so the model
sees cells exactly as validation will. The sample is a reservoir sample (Vitter's
algorithm L, fixed seed): ``sample_size`` records spread uniformly over everything
scanned, in memory bounded by the sample plus one chunk, whatever the size of the file.
``max_records`` caps the records scanned for huge inputs (the sample then comes from the
first ``max_records``). Empty cells are tallied over every record scanned, so a column
with rare empty cells is still ``Optional``. How a column's type is chosen:
:mod:`flowschema_core.infer_types`; field names: :mod:`flowschema_core.infer_render`.
"""

from __future__ import annotations

import itertools
import math
import operator
import os
import random
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from . import codec
from .errors import ConfigError, SourceError
from .infer_render import render
from .infer_types import MISSING, ColumnType, column_type
from .kinds import kind_of
from .nulls import KEEP, CellPlan, NullPolicy
from .worker import Batch, ChunkProcessor, WorkerSpec

DEFAULT_SAMPLE_SIZE = 10_000
DEFAULT_MAX_RECORDS = 1_000_000
DEFAULT_THRESHOLD = 0.95
DEFAULT_MAX_ENUM_VALUES = 20
_CHUNK_BYTES = 1 << 20


@dataclass
class Sample:
    """A reservoir sample of a source's records, and what the scan saw on the way."""

    records: list[dict[str, Any]]  # at most sample_size records, as read
    fields: list[str]  # every column seen, in order (the header, or keys by first appearance)
    scanned: int = 0  # records read (parse failures included)
    unparsed: int = 0  # records the source could not parse (ragged rows, bad JSON)
    capped: bool = False  # stopped at max_records before the end of the input
    empty_is_null: bool = False  # "" means "no value" (CSV, Excel under the null policy)
    empty_anywhere: set[str] = field(default_factory=set)  # columns with an empty cell in any scanned record


@dataclass
class Inference:
    """What :func:`infer_model` found: the module's text and the columns behind it."""

    source: str
    class_name: str
    columns: list[ColumnType]
    sample: Sample
    module: str


def infer_model_source(source: Any, *, class_name: str = "Record", sample_size: int = DEFAULT_SAMPLE_SIZE, max_records: int | None = DEFAULT_MAX_RECORDS,
                       threshold: float = DEFAULT_THRESHOLD, enums: bool = False, max_enum_values: int = DEFAULT_MAX_ENUM_VALUES, seed: int = 0,
                       **source_options: Any) -> str:
    """The text of a runnable Pydantic v2 module whose model ``class_name`` fits ``source``.

    ``source`` is a path or URL (its kind from the extension or scheme, as ``flowschema
    run`` reads it; ``source_options`` go to that source) or a :class:`~flowschema_core.Source`.
    See :func:`infer_model` for the options.
    """
    return infer_model(source, class_name=class_name, sample_size=sample_size, max_records=max_records, threshold=threshold, enums=enums,
                       max_enum_values=max_enum_values, seed=seed, **source_options).module


def infer_model(source: Any, *, class_name: str = "Record", sample_size: int = DEFAULT_SAMPLE_SIZE, max_records: int | None = DEFAULT_MAX_RECORDS,
                threshold: float = DEFAULT_THRESHOLD, enums: bool = False, max_enum_values: int = DEFAULT_MAX_ENUM_VALUES, seed: int = 0,
                **source_options: Any) -> Inference:
    """Sample ``source`` and infer a type per column.

    :param sample_size: records kept in the reservoir sample (memory grows with it).
    :param max_records: stop scanning after this many records (None or 0: read everything).
    :param threshold: the share of a column's non-empty sampled values its type must fit
        (0.95: up to 5% may be refused; they are counted in the field's comment).
    :param enums: text columns with at most ``max_enum_values`` distinct values (each seen
        twice on average) become ``Literal[...]``.
    :param seed: the reservoir's random seed: the same file and seed give the same module.
    """
    if not class_name.isidentifier():
        raise ConfigError(f"class name must be a Python identifier, not {class_name!r}")
    if sample_size < 1:
        raise ConfigError(f"sample_size must be at least 1, not {sample_size}")
    if not 0 < threshold <= 1:
        raise ConfigError(f"threshold must be a share in (0, 1], such as 0.95, not {threshold}")
    if isinstance(source, (str, os.PathLike)):
        from .registry import source_for

        source = source_for(os.fspath(source), **source_options)
    elif source_options:
        raise ConfigError("source options apply to a path or URL, not to a Source instance")
    name = str(getattr(source, "name", "") or type(source).__name__)
    sample = sample_records(source, sample_size=sample_size, max_records=max_records or None, seed=seed)
    if not sample.fields:
        raise SourceError(f"{name}: no columns to infer a model from (the input is empty)")
    columns = [
        column_type(f, [r.get(f, MISSING) for r in sample.records], empty_is_null=sample.empty_is_null, threshold=threshold, enums=enums,
                    max_enum_values=max_enum_values, empty_elsewhere=f in sample.empty_anywhere)
        for f in sample.fields
    ]
    module = render(columns, class_name=class_name, docstring=_docstring(name, sample, seed, threshold))
    _check_runnable(module, class_name)
    return Inference(name, class_name, columns, sample, module)


def sample_records(source: Any, *, sample_size: int = DEFAULT_SAMPLE_SIZE, max_records: int | None = DEFAULT_MAX_RECORDS, seed: int = 0) -> Sample:
    """A reservoir sample of ``source``'s records, read chunk by chunk (bounded memory)."""
    rng = random.Random(seed)
    sample = Sample([], [])
    known: dict[str, None] = {}  # every column seen, in order
    keys: Any = None  # the keys of the last record, to notice a record with other keys cheaply
    # Algorithm L (Vitter): after the reservoir fills, jump straight to the next record to
    # keep, so the work is per kept record, not per record read.
    weight = math.exp(math.log(_uniform(rng)) / sample_size)
    take = sample_size + _skip(rng, weight)
    parsed = 0  # records parsed so far: the reservoir's indexes
    try:
        for chunk_records, same_keys in _records(source, sample):
            if max_records is not None and sample.scanned + len(chunk_records) >= max_records:
                chunk_records = chunk_records[:max_records - sample.scanned]
                sample.capped = True
            sample.scanned += len(chunk_records)
            records = [r for r in chunk_records if r is not None]
            if not same_keys:  # JSON objects: each may have its own keys
                for record in records:
                    if record.keys() != keys:
                        _note_other_keys(record, known, sample, first=keys is None)
                        keys = record.keys()
            elif records and not known:
                known.update(dict.fromkeys(records[0]))
            _note_empty_cells(records, known, sample, same_keys)
            first = parsed
            parsed += len(records)
            sample.records.extend(records[:sample_size - len(sample.records)])
            while take < parsed:
                sample.records[rng.randrange(sample_size)] = records[take - first]
                weight *= math.exp(math.log(_uniform(rng)) / sample_size)
                take += _skip(rng, weight) + 1
            if sample.capped:
                break
    finally:
        source.close()
    sample.fields = sample.fields or list(known)
    return sample


def _uniform(rng: random.Random) -> float:
    """A uniform draw in (0, 1): never 0, whose log algorithm L takes."""
    return rng.random() or 0.5


def _skip(rng: random.Random, weight: float) -> int:
    """How many records algorithm L passes over before the next one it keeps."""
    if weight >= 1.0:  # only when the reservoir is larger than every draw can tell apart
        return 0
    return int(math.log(_uniform(rng)) / math.log1p(-weight))


def _note_empty_cells(records: list[dict[str, Any]], known: dict[str, None], sample: Sample, same_keys: bool) -> None:
    """Columns with an empty cell in these records. A column already known to have one is
    not looked at again; the others are checked all at once at C speed (``in`` on one flat
    list of their cells), and one by one only when that finds an empty cell."""
    pending = [name for name in known if name not in sample.empty_anywhere]
    if not pending or not records:
        return
    if same_keys:
        get = operator.itemgetter(*pending) if len(pending) > 1 else lambda r: (r[pending[0]],)
        flat = list(itertools.chain.from_iterable(map(get, records)))
    else:
        flat = [r.get(name) for r in records for name in pending]
    if None not in flat and not (sample.empty_is_null and "" in flat):
        return
    for j, name in enumerate(pending):
        cells = flat[j::len(pending)]
        if None in cells or (sample.empty_is_null and "" in cells):
            sample.empty_anywhere.add(name)


def _note_other_keys(record: dict[str, Any], known: dict[str, None], sample: Sample, *, first: bool) -> None:
    """A record whose keys differ from the last one's (JSON objects): a key it lacks has
    no value there; a key new to the scan had none in the records before."""
    sample.empty_anywhere.update(k for k in known if k not in record)
    new = [k for k in record if k not in known]
    if not first:
        sample.empty_anywhere.update(new)
    known.update(dict.fromkeys(new))


class _AnyRecord(BaseModel):
    """The model a :class:`_Collector` is built with; it never validates anything."""

    model_config = ConfigDict(extra="allow")


class _CellsAsRead(NullPolicy):
    """A null plan that keeps every cell (null tokens read as ``""``), and notes whether the
    source's empty cells follow the null policy: only those sources ask for a plan."""

    def __init__(self, sample: Sample) -> None:
        super().__init__(_AnyRecord)
        self.sample = sample

    def plan(self, fields: Sequence[str], mode: str, tokens: Iterable[Any]) -> CellPlan:
        self.sample.empty_is_null = mode != "keep"  # "" then means "no value"
        return CellPlan(list(fields), [KEEP] * len(fields), frozenset(tokens))


class _Collector(ChunkProcessor):
    """A worker's ``ChunkProcessor`` (so a chunk kind's ``parse`` finds everything it looks
    for) whose every parsed record is "valid" as read: no hooks, no validation, cells kept."""

    def __init__(self, sample: Sample) -> None:
        super().__init__(WorkerSpec(_AnyRecord, output_form="python"))
        self.nulls = _CellsAsRead(sample)
        self.validate = self.dump = _as_read

    def record(self, record: dict[str, Any], i: int, line: int | None, batch: Batch, raw: Any = None) -> None:
        batch.valid.append(record)
        batch.valid_i.append(i)


def _as_read(record: Any) -> Any:
    return record


def _records(source: Any, sample: Sample) -> Iterator[tuple[list[dict[str, Any] | None], bool]]:
    """Each chunk's records in order, ``None`` where a record could not be parsed, and
    whether they all have the chunk's fields as keys (else they are JSON objects)."""
    collector = _Collector(sample)
    for blob, _ in source.chunks(_CHUNK_BYTES):
        chunk = codec.decode(blob)
        if chunk.get("fields") and not sample.fields:
            sample.fields = list(chunk["fields"])
        batch = Batch()
        kind_of(chunk).parse(chunk, collector, batch)
        records: list[dict[str, Any] | None] = [None] * batch.seen
        for i, record in zip(batch.valid_i, batch.valid):
            records[i] = record
        sample.unparsed += len(batch.errors)
        yield records, bool(chunk.get("fields"))
    if not sample.fields and getattr(source, "fields", None):
        sample.fields = list(source.fields)  # a header and no records


def _docstring(name: str, sample: Sample, seed: int, threshold: float) -> str:
    safe = name.replace("\\", "\\\\").replace('"', '\\"')
    scanned = f"{sample.scanned:,} records" + (" (stopped at --max-records)" if sample.capped else "")
    lines = [f"Pydantic model inferred by `flowschema infer` from {safe}.", ""]
    if not sample.records:
        lines.append("No record could be read (only a header, or none parsed): every field is str | None. Fix the types by hand.")
    else:
        lines.append(f"Sampled {len(sample.records):,} of {scanned} (reservoir sample, seed {seed}).")
        lines.append(f"A field's type fits at least {threshold:.0%} of its non-empty sampled values; the values that did")
        lines.append("not fit are counted in its comment: records holding them go to the dead-letter queue.")
    if sample.unparsed:
        lines.append(f"{sample.unparsed:,} records could not be parsed at all (they go to the DLQ whatever the model).")
    lines.append("Review the types (and add constraints) before you rely on them.")
    return "\n".join(lines) + "\n"


def _check_runnable(module: str, class_name: str) -> None:
    """Import the module once: what ``infer`` prints must import (a failure here is a bug)."""
    name = "_flowschema_inferred_model"
    scratch = types.ModuleType(name)
    sys.modules[name] = scratch  # Pydantic resolves annotations through the class's module
    try:
        exec(compile(module, "<inferred model>", "exec"), scratch.__dict__)  # our own generated text, never the data
        getattr(scratch, class_name).model_json_schema()
    finally:
        del sys.modules[name]
