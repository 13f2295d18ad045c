"""The wire codec: exact round-trips of every supported value, the header check, and
clear CodecErrors for corrupt input."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid

import lz4.block
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowschema_core import CodecError, codec

# -- strategies ------------------------------------------------------------------------
# Every code point, lone surrogates included (they must survive a chunk).
any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=()), max_size=40)
lone_surrogates = st.lists(st.integers(min_value=0xD800, max_value=0xDFFF), min_size=1, max_size=4).map(lambda cps: "".join(map(chr, cps)))
big_ints = st.one_of(
    st.integers(),
    st.integers(min_value=2**64, max_value=2**200),
    st.integers(min_value=-(2**200), max_value=-(2**63) - 1),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 0, -1]),
)
offsets = st.sampled_from([
    dt.timezone.utc,
    dt.timezone(dt.timedelta(hours=5, minutes=30)),
    dt.timezone(dt.timedelta(hours=-8)),
    dt.timezone(dt.timedelta(hours=14)),
    dt.timezone(dt.timedelta(hours=-12)),
    dt.timezone(dt.timedelta(minutes=-1, seconds=-30)),
    dt.timezone(dt.timedelta(hours=1, microseconds=7)),
])
naive_datetimes = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
aware_datetimes = st.builds(lambda d, tz: d.replace(tzinfo=tz), naive_datetimes, offsets)
times = st.one_of(st.times(), st.builds(lambda t, tz: t.replace(tzinfo=tz), st.times(), offsets))
decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from([decimal.Decimal(s) for s in ("0", "-0", "0.000", "1E+3", "-1.10", "NaN", "Infinity", "-Infinity", "12345678901234567890.123456789")]),
)
scalars = st.one_of(
    st.none(), st.booleans(), big_ints, st.floats(allow_nan=True, allow_infinity=True),
    any_text, lone_surrogates, st.binary(max_size=64),
    naive_datetimes, aware_datetimes, st.dates(), times, decimals, st.uuids(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(any_text, st.integers(min_value=-(2**63), max_value=2**64 - 1)), inner, max_size=5),
    ),
    max_leaves=20,
)


def same(a, b) -> bool:
    """Exact equality: same type, nan equals nan, -0.0 differs from 0.0, tz offsets match."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, decimal.Decimal):
        if a.is_nan():
            return b.is_nan()
        return a.as_tuple() == b.as_tuple()  # keeps the exponent: 1.10 is not 1.1
    if isinstance(a, (dt.datetime, dt.time)):
        return a == b and a.utcoffset() == b.utcoffset() and a.isoformat() == b.isoformat()
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def test_same_helper_is_strict():
    assert not same(1, True)
    assert not same(0.0, -0.0)
    assert not same(decimal.Decimal("1.1"), decimal.Decimal("1.10"))
    assert not same(dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    assert not same({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert same(float("nan"), float("nan"))


@settings(max_examples=150, deadline=None)
@given(values)
def test_round_trip_is_exact(value):
    blob, n = codec.encode(value)
    assert n == len(codec.pack(value))
    assert same(codec.decode(blob), value)


@settings(max_examples=60, deadline=None)
@given(st.lists(values, min_size=0, max_size=60))
def test_round_trip_of_chunk_sized_payloads(rows):
    # Large enough to be LZ4-compressed, small enough not to be.
    blob, _ = codec.encode({"kind": "rows", "rows": rows})
    assert same(codec.decode(blob), {"kind": "rows", "rows": rows})


@pytest.mark.parametrize(
    "value",
    [
        "\ud800", "a\udfffb", "\udc80\udcff", "\U0001F600\ud83d",
        2**64, 2**64 + 1, -(2**63) - 1, 10**40, -(10**40),
        float("inf"), float("-inf"), -0.0, 5e-324,
        dt.datetime(2026, 11, 26, 18, 0, 0, 123456),
        dt.datetime(2026, 11, 26, 18, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
        dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45))),
        dt.date(1, 1, 1), dt.date(9999, 12, 31),
        dt.time(23, 59, 59, 999999), dt.time(1, 2, tzinfo=dt.timezone(dt.timedelta(hours=9))),
        decimal.Decimal("1.10"), decimal.Decimal("-0"), decimal.Decimal("1E+400"), decimal.Decimal("Infinity"),
        uuid.UUID(int=0), uuid.UUID("12345678-1234-5678-1234-567812345678"),
        b"", b"\x00\xff" * 300, True, False, None,
        {"nested": [{"a": [1, [2, [3, {"b": dt.date(2020, 2, 29)}]]]}]},
        {1: "int key", -2: "negative", "s": "str"},
    ],
)
def test_round_trip_examples(value):
    blob, _ = codec.encode(value)
    assert same(codec.decode(blob), value)


def test_nan_round_trips():
    out = codec.decode(codec.encode([float("nan"), decimal.Decimal("NaN")])[0])
    assert isinstance(out[0], float) and math.isnan(out[0])
    assert isinstance(out[1], decimal.Decimal) and out[1].is_nan()


def test_bool_stays_bool_and_int_stays_int():
    out = codec.decode(codec.encode([True, 1, False, 0])[0])
    assert [type(v) for v in out] == [bool, int, bool, int]


# -- sizes and header ------------------------------------------------------------------
@pytest.mark.parametrize("value", [{"a": 1}, ["x" * 1000] * 50, list(range(10_000)), {"kind": "csv", "data": b"a,b\n" * 5000}])
def test_encode_reports_msgpack_payload_length(value):
    blob, n = codec.encode(value)
    payload = codec.pack(value)
    assert n == len(payload)
    assert codec.unframe(blob) == payload
    # the payload is real msgpack: a plain msgpack reader sees the same top-level object
    assert msgpack.unpackb(payload, raw=False, strict_map_key=False, ext_hook=codec._ext_hook) == value


def test_large_payload_is_compressed_and_small_one_is_not():
    big, n_big = codec.encode("a" * 10_000)
    small, n_small = codec.encode("a")
    assert big[:3] == codec.MAGIC + bytes((codec.VERSION,)) and big[3] & 1
    assert len(big) < n_big
    assert small[3] == 0 and len(small) == 4 + n_small


@pytest.mark.parametrize("blob", [b"", b"F", b"FS\x01", b"XX\x01\x00\x90", b"fs\x01\x00\x90", b"\x00\x00\x00\x00"])
def test_wrong_magic_is_a_codec_error(blob):
    with pytest.raises(CodecError, match="not a FlowSchema chunk"):
        codec.decode(blob)


@pytest.mark.parametrize("version", [0, 1, 3, 255])  # 1: a worker from before the result allowance
def test_wrong_version_is_a_codec_error_naming_both_versions(version):
    blob = bytearray(codec.encode({"a": 1})[0])
    blob[2] = version
    with pytest.raises(CodecError) as info:
        codec.decode(bytes(blob))
    message = str(info.value)
    assert f"version {version}" in message
    assert f"speaks {codec.VERSION}" in message
    assert "same FlowSchema version" in message


def test_corrupt_lz4_is_a_codec_error():
    blob = bytearray(codec.encode("abc" * 1000)[0])
    assert blob[3] & 1
    blob[8:40] = b"\xff" * 32  # garbage in the LZ4 stream
    with pytest.raises(CodecError, match="corrupt"):
        codec.decode(bytes(blob))


def test_truncated_lz4_is_a_codec_error():
    blob = codec.encode("abc" * 1000)[0]
    with pytest.raises(CodecError):
        codec.decode(blob[: len(blob) // 2])


def test_lz4_claiming_a_huge_size_is_a_codec_error():
    # store_size prefix says 2 GiB; the body cannot hold it
    body = (2**31 - 1).to_bytes(4, "little") + lz4.block.compress(b"x" * 600, store_size=False)
    with pytest.raises(CodecError):
        codec.decode(codec.MAGIC + bytes((codec.VERSION, 1)) + body)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_garbage_after_a_good_header_is_a_codec_error(body, compressed):
    blob = codec.MAGIC + bytes((codec.VERSION, int(compressed))) + body
    try:
        codec.decode(blob)
    except CodecError:
        pass  # anything else (TypeError, MemoryError, ...) fails the test


def test_unencodable_value_is_a_codec_error():
    with pytest.raises(CodecError, match="cannot encode"):
        codec.encode({"a": object()})


def test_sets_travel_as_lists():
    assert sorted(codec.decode(codec.encode({1, 2, 3})[0])) == [1, 2, 3]


@pytest.mark.parametrize(
    "payload",
    [
        msgpack.packb(msgpack.ExtType(4, b"not a decimal")),  # decimal.InvalidOperation
        msgpack.packb(msgpack.ExtType(5, b"short")),  # UUID of the wrong length
        msgpack.packb(msgpack.ExtType(1, b"not a datetime")),
        msgpack.packb(msgpack.ExtType(6, b"1.5")),  # bigint that is not an int
        b"\x81\x91\x01\x02",  # a map whose key is a list (unhashable)
        b"\xc1",  # reserved byte
        b"\x92\x01",  # truncated array
    ],
)
def test_corrupt_payload_is_a_codec_error(payload):
    with pytest.raises(CodecError, match="cannot decode chunk"):
        codec.decode(codec.frame(payload))


def test_empty_compressed_body_is_a_codec_error():
    with pytest.raises(CodecError, match="corrupt"):
        codec.decode(codec.MAGIC + bytes((codec.VERSION, 1)))


def test_timedelta_round_trips():
    import datetime as dt

    from flowschema_core import codec

    values = [dt.timedelta(0), dt.timedelta(days=-3, seconds=5, microseconds=7), dt.timedelta(hours=1234, microseconds=1)]
    assert codec.decode(codec.encode(values)[0]) == values


# -- the result allowance in the header -------------------------------------------------
@pytest.mark.parametrize("payload", [{"a": 1}, "x" * 5000])  # uncompressed and compressed
def test_allowance_travels_in_front_of_the_blob_and_the_chunk_is_unchanged(payload):
    blob, n = codec.encode(payload)
    assert codec.allowance_of(blob) is None
    limited = codec.with_allowance(blob, 123_456_789_012)
    assert codec.allowance_of(limited) == 123_456_789_012
    assert len(limited) == len(blob) + 8
    assert codec.decode(limited) == payload and len(codec.unframe(limited)) == n
    again = codec.with_allowance(limited, 7)  # replaced, not stacked
    assert codec.allowance_of(again) == 7 and len(again) == len(limited)
    plain = codec.with_allowance(again, None)
    assert plain == blob


def test_a_header_announcing_an_allowance_it_lacks_is_a_codec_error():
    blob = codec.MAGIC + bytes((codec.VERSION, 2)) + b"\x01\x02"
    with pytest.raises(CodecError, match="announces a result allowance it does not hold"):
        codec.decode(blob)
    with pytest.raises(CodecError, match="not a FlowSchema chunk"):
        codec.allowance_of(b"XX")


def test_marking_a_stuck_record_keeps_the_allowance():
    from flowschema_core.watchdog import mark_stuck

    blob = codec.with_allowance(codec.encode({"kind": "rows", "rows": [[1], [2]]})[0], 4096)
    marked = mark_stuck(blob, 1, "too slow")
    assert codec.allowance_of(marked) == 4096
    assert codec.decode(marked)["stuck"] == {1: ["record_timeout", "too slow"]}
