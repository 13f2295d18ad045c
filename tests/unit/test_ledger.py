"""ByteLedger: size parsing, blocking, the lone-oversize rule, close(), stats, and a
multi-threaded property test (no over-commit, no deadlock, nothing left outstanding)."""

from __future__ import annotations

import random
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowschema_core import ByteLedger, ConfigError, parse_size
from flowschema_core.ledger import ResultAllowance


# -- sizes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64MiB", 64 * 2**20),
        ("500MB", 500 * 10**6),
        ("2GB", 2 * 10**9),
        ("1GiB", 2**30),
        ("1.5KiB", 1536),
        ("10kb", 10_000),
        ("100", 100),
        ("1_000_000", 1_000_000),
        (" 64 MiB ", 64 * 2**20),
        ("8b", 8),
        ("4K", 4096),
        (67108864, 67108864),
        (1, 1),
    ],
)
def test_parse_size_accepts(text, expected):
    assert parse_size(text) == expected
    assert ByteLedger(text).limit == expected


@pytest.mark.parametrize("bad", ["", "lots", "64 MiBs", "-5MB", "5 XB", "MB", "1e6", "0", "0MB", 0, -1, True, 1.5, None, [64]])
def test_parse_size_rejects_with_helpful_message(bad):
    with pytest.raises(ConfigError) as info:
        ByteLedger(bad)
    message = str(info.value)
    assert "max_bytes_in_flight" in message
    if isinstance(bad, str) and bad.strip() not in ("0", "0MB"):
        assert repr(bad) in message
        assert "64MiB" in message  # the message shows how to write a size


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_size("nonsense")


# -- acquire / release -----------------------------------------------------------------
def test_acquire_release_counts():
    ledger = ByteLedger(100)
    assert ledger.acquire(60)
    assert ledger.acquire(40)
    assert ledger.in_flight == 100 and ledger.outstanding == 2
    assert ledger.acquire(1, timeout=0.05) is False  # would exceed the budget
    assert ledger.in_flight == 100 and ledger.outstanding == 2
    ledger.release(60)
    assert ledger.in_flight == 40 and ledger.outstanding == 1
    assert ledger.acquire(60, timeout=0.05)
    ledger.release(60)
    ledger.release(40)
    assert ledger.in_flight == 0 and ledger.outstanding == 0
    assert ledger.peak == 100


def test_acquire_negative_is_refused():
    with pytest.raises(ValueError, match="negative"):
        ByteLedger(10).acquire(-1)


def test_release_more_than_in_flight_is_an_error():
    ledger = ByteLedger(10)
    with pytest.raises(RuntimeError):
        ledger.release(1)
    ledger.acquire(5)
    with pytest.raises(RuntimeError):
        ledger.release(6)
    assert ledger.in_flight == 5 and ledger.outstanding == 1


def test_blocked_acquire_proceeds_after_release():
    ledger = ByteLedger(100)
    ledger.acquire(80)
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(ledger.acquire(50)))
    t.start()
    time.sleep(0.1)
    assert got == [] and t.is_alive()  # blocked: 80 + 50 > 100
    ledger.release(80)
    t.join(timeout=5)
    assert not t.is_alive()
    assert got == [True]
    assert ledger.in_flight == 50
    assert ledger.waits == 1
    assert ledger.blocked_s >= 0.05


def test_lone_oversize_chunk_passes_when_nothing_in_flight():
    ledger = ByteLedger(100)
    assert ledger.acquire(1000, timeout=0.05)
    assert ledger.in_flight == 1000 and ledger.peak == 1000
    assert ledger.waits == 0
    # ... but nothing may join it while it is in flight
    assert ledger.acquire(1, timeout=0.05) is False
    ledger.release(1000)
    assert ledger.acquire(1, timeout=0.05)


def test_oversize_chunk_waits_until_ledger_empty():
    ledger = ByteLedger(100)
    ledger.acquire(10)
    assert ledger.acquire(500, timeout=0.05) is False
    ledger.release(10)
    assert ledger.acquire(500, timeout=0.05)
    assert ledger.peak == 500


def test_close_wakes_blocked_acquirers():
    ledger = ByteLedger(10)
    ledger.acquire(10)
    results: list[bool] = []
    lock = threading.Lock()

    def waiter():
        r = ledger.acquire(5)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    assert results == []
    ledger.close()
    for t in threads:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in threads)
    assert results == [False, False, False]
    assert ledger.in_flight == 10 and ledger.outstanding == 1  # nothing was granted
    assert ledger.acquire(1) is False  # a closed ledger grants nothing, even when it fits


def test_timeout_returns_false_and_counts_wait():
    ledger = ByteLedger(10)
    ledger.acquire(10)
    started = time.perf_counter()
    assert ledger.acquire(1, timeout=0.1) is False
    assert time.perf_counter() - started >= 0.09
    assert ledger.waits == 1
    assert 0.09 <= ledger.blocked_s < 5


def test_stats_peak_tracks_maximum_not_current():
    ledger = ByteLedger(1000)
    for n in (100, 300, 200):
        ledger.acquire(n)
    assert ledger.peak == 600
    for n in (100, 300, 200):
        ledger.release(n)
    ledger.acquire(50)
    assert ledger.peak == 600
    assert ledger.waits == 0 and ledger.blocked_s == 0.0


# -- result allowances -----------------------------------------------------------------
def test_allowance_reserves_the_ratio_of_the_input_plus_an_envelope():
    allowance = ResultAllowance()
    assert allowance.ratio == ResultAllowance.DEFAULT_RATIO == 4.0
    assert allowance.of(1000, room=10**9, limit=10**9) == 4000 + ResultAllowance.SLACK
    assert allowance.of(1, room=10**9, limit=10**9) == 4 + ResultAllowance.SLACK  # ceil, never 0 for a tiny chunk


def test_allowance_never_passes_the_room_the_budget_has_beside_the_input():
    allowance = ResultAllowance()
    assert allowance.of(1000, room=2500, limit=3500) == 2500  # input + result fit the budget together
    # Input alone over the budget (room <= 0): it goes alone, its result at most the budget again
    # (with the whole ratio's worth, a chunk of the budget's size peaked at five budgets).
    assert allowance.of(1000, room=0, limit=1000) == allowance.of(1000, room=-5, limit=995) + 5 == 1000
    assert allowance.of(1000, room=-100, limit=900) == 900


def test_ratio_learns_the_largest_seen_with_headroom_and_never_comes_down():
    allowance = ResultAllowance(ratio=2.0, headroom=1.25)
    allowance.observe(1000, 1000 + ResultAllowance.SLACK)  # ratio 1: below the start, nothing changes
    assert (allowance.ratio, allowance.largest_seen) == (2.0, 1.0)
    allowance.observe(1000, 8000 + ResultAllowance.SLACK)  # ratio 8
    assert (allowance.ratio, allowance.largest_seen) == (10.0, 8.0)
    allowance.observe(1000, 3000)  # a smaller one later: the ratio stays
    assert allowance.ratio == 10.0
    assert allowance.of(100, room=10**6, limit=10**6) == 1000 + ResultAllowance.SLACK
    allowance.observe(0, 5)  # an empty chunk (and a result smaller than the envelope) are harmless
    assert allowance.ratio == 10.0


@pytest.mark.parametrize(("ratio", "headroom"), [(0, 1.25), (-1, 1.25), (4.0, 0.9)])
def test_allowance_rejects_a_ratio_that_would_reserve_nothing(ratio, headroom):
    with pytest.raises(ValueError, match="ratio > 0 and headroom >= 1"):
        ResultAllowance(ratio, headroom)


def test_a_chunk_holds_its_input_and_its_result_allowance_together():
    ledger = ByteLedger(100)
    assert ledger.acquire(20, result=60)
    assert (ledger.in_flight, ledger.input_in_flight, ledger.peak) == (80, 20, 80)
    assert ledger.acquire(10, timeout=0.05, result=11) is False  # 80 + 21 > 100: the result counts
    assert ledger.acquire(10, result=10)
    with pytest.raises(RuntimeError):
        ledger.release(31)  # more input than is in flight
    ledger.release(20, result=60)
    assert (ledger.in_flight, ledger.input_in_flight, ledger.outstanding) == (20, 10, 1)
    with pytest.raises(ValueError):
        ledger.acquire(1, result=-1)


def test_overdraw_counts_at_once_and_repay_gives_back():
    ledger = ByteLedger(100)
    assert ledger.acquire(80)
    ledger.overdraw(70)  # a one-record result over its allowance: already here, never blocks
    assert ledger.in_flight == 150 and ledger.peak == 150 and ledger.waits == 0
    assert ledger.acquire(10, timeout=0.05) is False  # nothing joins while it is over
    ledger.repay(70)
    assert ledger.in_flight == 80 and ledger.outstanding == 1
    with pytest.raises(RuntimeError, match="repaid 81 bytes but only 80"):
        ledger.repay(81)
    with pytest.raises(ValueError):
        ledger.overdraw(-1)
    ledger.release(80)
    assert ledger.in_flight == 0 and ledger.outstanding == 0


def test_repay_cannot_eat_the_reserve():
    ledger = ByteLedger(100)
    ledger.reserve(30)
    assert ledger.reserved == 30
    with pytest.raises(RuntimeError, match="only 0 are in flight for chunks"):
        ledger.repay(1)


# -- many threads ----------------------------------------------------------------------
class _Checked(ByteLedger):
    """A ledger that records, under its own lock, every in-flight total it ever reached."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.violations: list[tuple[int, int]] = []

    def acquire(self, n: int, timeout: float | None = None) -> bool:
        ok = super().acquire(n, timeout)
        if ok:
            with self._cond:
                if self._in_flight > self.limit and self._in_flight != n:
                    # over budget is only allowed for a chunk that went alone
                    self.violations.append((self._in_flight, n))
        return ok


@settings(max_examples=30, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=1000),
    plans=st.lists(st.lists(st.integers(min_value=0, max_value=1500), min_size=1, max_size=12), min_size=4, max_size=4),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_threads_never_overcommit_nor_deadlock(limit, plans, seed):
    ledger = _Checked(limit)
    errors: list[BaseException] = []

    def worker(sizes: list[int], rng: random.Random) -> None:
        try:
            for n in sizes:
                assert ledger.acquire(n, timeout=10), f"acquire({n}) timed out: deadlock?"
                if rng.random() < 0.3:
                    time.sleep(0.0005)
                ledger.release(n)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(p, random.Random(seed + i)), daemon=True) for i, p in enumerate(plans)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a thread is stuck in the ledger"
    assert errors == []
    assert ledger.violations == []
    largest = max(n for p in plans for n in p)
    assert ledger.peak <= max(limit, largest)
    assert ledger.outstanding == 0
    assert ledger.in_flight == 0


def test_blocked_so_far_counts_the_wait_going_on():
    ledger = ByteLedger(100)
    assert ledger.acquire(80)
    waiter = threading.Thread(target=ledger.acquire, args=(50,), daemon=True)
    waiter.start()
    deadline = time.monotonic() + 30
    while ledger.waits == 0 and time.monotonic() < deadline:  # the waiter is blocked
        time.sleep(0.01)
    first = ledger.blocked_so_far
    while ledger.blocked_so_far <= first and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ledger.blocked_so_far > first > 0.0  # it grows while the wait goes on...
    assert ledger.blocked_s == 0.0  # ...while blocked_s only counts finished waits
    ledger.release(80)
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert ledger.blocked_so_far == ledger.blocked_s > 0.0


def test_try_acquire_never_waits_and_counts_no_wait():
    ledger = ByteLedger(100)
    assert ledger.try_acquire(60, result=20)
    assert not ledger.try_acquire(30)  # 80 + 30 > 100
    assert (ledger.in_flight, ledger.waits, ledger.outstanding) == (80, 0, 1)
    ledger.release(60, result=20)
    assert ledger.try_acquire(30) and ledger.in_flight == 30
    ledger.close()
    assert not ledger.try_acquire(1)
