"""The reservoir sample behind ``flowschema infer``: uniform over the whole input, bounded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from flowschema_core.infer import sample_records
from flowschema_core.sources.base import ParseFailure, RecordSource


class Numbers(RecordSource):
    """``n`` records ``{"i": i}``; every ``bad_every``-th one cannot be parsed."""

    name = "numbers"

    def __init__(self, n: int, bad_every: int = 0) -> None:
        self.n, self.bad_every = n, bad_every
        self.closed = False

    def records(self) -> Iterator[tuple[int | None, Any]]:
        for i in range(self.n):
            yield None, ParseFailure("bad", "x") if self.bad_every and i % self.bad_every == 0 else {"i": i}

    def close(self) -> None:
        self.closed = True


def test_every_part_of_the_input_is_sampled_alike():
    deciles: Counter[int] = Counter()
    for seed in range(20):
        sample = sample_records(Numbers(20_000), sample_size=1000, seed=seed)
        kept = [r["i"] for r in sample.records]
        assert len(kept) == len(set(kept)) == 1000
        deciles.update(i // 2000 for i in kept)
    assert sorted(deciles) == list(range(10))
    assert all(1800 <= n <= 2200 for n in deciles.values()), deciles  # 2,000 expected each


def test_the_same_seed_gives_the_same_sample():
    one = sample_records(Numbers(5000), sample_size=100, seed=7).records
    assert one == sample_records(Numbers(5000), sample_size=100, seed=7).records
    assert one != sample_records(Numbers(5000), sample_size=100, seed=8).records


def test_a_small_input_is_kept_whole_and_unparsable_records_are_counted_not_sampled():
    source = Numbers(300, bad_every=10)
    sample = sample_records(source, sample_size=1000)
    assert sorted(r["i"] for r in sample.records) == [i for i in range(300) if i % 10]
    assert (sample.scanned, sample.unparsed, sample.capped) == (300, 30, False)
    assert source.closed


def test_max_records_stops_the_scan():
    source = Numbers(100_000)
    sample = sample_records(source, sample_size=50, max_records=1000)
    assert (sample.scanned, sample.capped, len(sample.records)) == (1000, True, 50)
    assert max(r["i"] for r in sample.records) < 1000
    assert source.closed
