"""The error budget: stop a run whose records are mostly refused, instead of filling the DLQ.

A file read with the wrong delimiter, the wrong model or a sheet with a title block fails
on nearly every record; without a budget the run goes on and writes millions of DLQ
records. ``Pipeline(max_invalid=...)`` takes a count (``1000``: stop once more than 1,000
records are invalid) or a share (``"5%"``: stop once more than 5% of the records read are
invalid, checked from the ``MIN_RECORDS``-th record on, so that a bad first chunk of a good
file does not stop it). The run then raises :class:`~flowschema_core.errors.InvalidRecordsError`
with the share so far and the most common reasons; the DLQ keeps what it has.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .errors import ConfigError, InvalidRecordsError

#: A share is judged only once this many records have been read.
MIN_RECORDS = 1000


@dataclass(frozen=True)
class ErrorBudget:
    """``limit`` invalid records (``share`` False), or ``limit`` percent of those read.
    Configuration: the run counts the reasons (:class:`~flowschema_core.error_groups.ErrorGroups`)."""

    limit: float
    share: bool

    @classmethod
    def parse(cls, value: int | str | None) -> ErrorBudget | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"max_invalid must be a count (1000) or a share ('5%'), not {value!r}")
        if isinstance(value, int) or value.strip().isdigit():
            count = int(value)
            if count < 0:
                raise ConfigError(f"max_invalid must not be negative, got {value!r}")
            return cls(count, share=False)
        text = value.strip()
        try:
            percent = float(text[:-1]) if text.endswith("%") else None
        except ValueError:
            percent = None
        if percent is None or not 0 <= percent <= 100:
            raise ConfigError(f"max_invalid must be a count (1000) or a share between 0% and 100% ('5%'), not {value!r}")
        return cls(percent, share=True)

    def describe(self) -> str:
        return f"{self.limit:g}%" if self.share else f"{int(self.limit):,}"

    def check(self, read: int, invalid: int, reasons: Counter[tuple[str, str, str]], source: str, dlq: str) -> None:
        """Raise :class:`InvalidRecordsError` if the run is over its budget; ``reasons``
        (stage, first error type, field) give the most common ones in the message."""
        if self.share:
            if read < MIN_RECORDS or invalid * 100 <= self.limit * read:
                return
        elif invalid <= self.limit:
            return
        top = ", ".join(f"{stage} {kind}" + (f" on {loc!r}" if loc else "") + f" ({n:,})" for (stage, kind, loc), n in reasons.most_common(3))
        raise InvalidRecordsError(
            f"stopped {source}: {invalid:,} of the {read:,} records read so far are invalid ({invalid / max(read, 1):.1%}), "
            f"over max_invalid={self.describe()}. Most common: {top}. Is the delimiter, the header row or the model right? "
            f"The refused records so far are in {dlq}; nothing was written under the sink's final name."
        )

