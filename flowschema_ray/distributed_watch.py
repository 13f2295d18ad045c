"""``record_timeout`` in distributed mode: the same mechanism as the single-driver Ray
mode (:mod:`flowschema_core.watchdog`), for range calls.

Each actor has a beacon: before each record of a ``process_range`` call it notes the
call's ordinal (the actor counts its ``process_range`` calls; the driver counts the ones
it sent that actor, which the actor runs in order) and the record's index in the range.
The driver polls ``where()`` (a concurrency group of its own, so it answers while a range
runs) from its task loop, feeding the answers to a :class:`RecordClock`:

* the same record for longer than the timeout: that record is stuck, and known exactly.
  The driver marks it in the range (``piece["stuck"]``), kills the actor and sends the
  range again, uncharged; the next actor writes the marked record to the DLQ (stage
  ``worker``, type ``record_timeout``) without running it and processes the rest of the
  range, so numbering stays exact.
* no answer for longer than the timeout (the record holds the interpreter lock): the
  actor is killed as if it had crashed; its range is retried and, if it hangs again,
  halved until the record stands alone (stage ``worker``, as after crashes).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from flowschema_core.watchdog import RecordClock, timeout_reason

log = logging.getLogger("flowschema")


@dataclass
class _Watched:
    """What the driver knows of one actor's beacon."""

    sent: int = 0  # process_range calls sent to it (its beacon's ordinals)
    calls: dict[int, Any] = field(default_factory=dict)  # ordinal -> the call's ref, while unanswered
    clock: RecordClock = field(default_factory=RecordClock)
    poll: Any = None  # the outstanding where() call (a concurrent.futures.Future)
    polled_at: float = 0.0


class RangeWatch:
    """Polls the actors' beacons; says which actor to stop and which range to mark."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.watched: dict[Any, _Watched] = {}  # by actor (a _RangeActor)

    @property
    def every(self) -> float:
        """How often to poll: the task loop waits at most this long."""
        return min(0.2, self.timeout / 4)

    def sent(self, actor: Any, ref: Any) -> None:
        watched = self.watched.setdefault(actor, _Watched())
        watched.sent += 1
        watched.calls[watched.sent] = ref

    def answered(self, actor: Any, ref: Any) -> None:
        watched = self.watched.get(actor)
        if watched is not None:
            watched.calls = {k: v for k, v in watched.calls.items() if v is not ref}

    def forget(self, actor: Any) -> None:
        self.watched.pop(actor, None)

    def check(self, actors: list[Any]) -> list[tuple[Any, Any, int | None]]:
        """Actors to stop: ``(actor, the stuck call's ref or None, record index or None)``;
        index None: the actor did not answer its poll (the record is not known)."""
        stop: list[tuple[Any, Any, int | None]] = []
        now = time.monotonic()
        for actor in actors:
            watched = self.watched.get(actor)
            if watched is None or not watched.calls:
                if watched is not None:
                    watched.poll = None
                continue
            poll = watched.poll
            if poll is None:
                watched.poll, watched.polled_at = actor.handle.where.options(concurrency_group="watch").remote().future(), now
                continue
            if not poll.done():
                if now - watched.polled_at > self.timeout:
                    log.warning("a Ray actor has not answered for %g s (record_timeout): a record holds it; stopping it", self.timeout)
                    watched.poll = None
                    stop.append((actor, None, None))
                continue
            watched.poll = None
            if poll.exception() is not None:
                continue  # the actor is dying: its calls report that
            stuck = watched.clock.stuck(poll.result(), self.timeout)
            if stuck is None:
                continue
            ordinal, index = stuck
            ref = watched.calls.get(ordinal)
            if ref is not None:  # else that range has been answered meanwhile
                log.warning("a record ran longer than record_timeout=%g s (record %d of a range); stopping its Ray actor",
                            self.timeout, index + 1)
                stop.append((actor, ref, index))
        return stop

    def reason(self) -> str:
        return timeout_reason(self.timeout)
