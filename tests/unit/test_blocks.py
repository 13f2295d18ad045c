"""Record boundaries in raw delimited bytes: quoted newlines, CRLF, no quotes."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowschema_core import blocks
from flowschema_core.blocks import first_boundary, last_boundary, middle_boundary

Q = b'"'


# -- last_boundary ---------------------------------------------------------------------
def test_last_boundary_plain_lines():
    buf = b"a,b\n1,2\n3,4"
    assert last_boundary(buf, Q) == len(b"a,b\n1,2\n")
    assert last_boundary(buf, None) == len(b"a,b\n1,2\n")


def test_last_boundary_at_end_of_buffer():
    buf = b"a,b\n1,2\n"
    assert last_boundary(buf, Q) == len(buf)


def test_last_boundary_skips_quoted_newline():
    buf = b'1,2\n3,"x\ny"\n4,"p\nq'
    # the newline after p sits inside a quote that is still open, and the one in "x\ny"
    # inside a closed field: the last record ends just after "x\ny".
    assert last_boundary(buf, Q) == len(b'1,2\n3,"x\ny"\n')


def test_last_boundary_only_quoted_newlines():
    buf = b'"a\nb\nc'
    assert last_boundary(buf, Q) == -1


def test_last_boundary_without_quote_handling_cuts_at_any_newline():
    buf = b'1,"a\nb"'
    assert last_boundary(buf, None) == len(b'1,"a\n')
    assert last_boundary(buf, Q) == -1


def test_last_boundary_no_newline():
    assert last_boundary(b"abc", Q) == -1
    assert last_boundary(b"", Q) == -1
    assert last_boundary(b"abc", None) == -1


def test_last_boundary_respects_end():
    buf = b"1\n2\n3\n"
    assert last_boundary(buf, Q, end=3) == 2
    assert last_boundary(buf, Q, end=4) == 4  # buf[:4] == b"1\n2\n"
    assert last_boundary(buf, Q, end=1) == -1


def test_last_boundary_with_end_inside_a_quoted_field():
    buf = b'h\n"a\nb"\nc\n'
    # within buf[:5] == b'h\n"a\n' the second newline is quoted
    assert last_boundary(buf, Q, end=5) == 2


def test_last_boundary_crlf():
    buf = b'a,b\r\n1,"x\r\ny"\r\n2,3'
    assert last_boundary(buf, Q) == len(b'a,b\r\n1,"x\r\ny"\r\n')


def test_last_boundary_escaped_quotes_count_as_pairs():
    buf = b'1,"say ""hi""\nthere"\n2,3'
    assert last_boundary(buf, Q) == len(b'1,"say ""hi""\nthere"\n')


def test_last_boundary_other_quote_char():
    buf = b"1,'a\nb'\n2,'c\nd"
    assert last_boundary(buf, b"'") == len(b"1,'a\nb'\n")
    assert last_boundary(buf, Q) == len(b"1,'a\nb'\n2,'c\n")


# -- first_boundary --------------------------------------------------------------------
def test_first_boundary_plain():
    assert first_boundary(b"a,b\n1,2\n", Q) == 4
    assert first_boundary(b"a,b\n1,2\n", None) == 4
    assert first_boundary(b"a,b\n1,2\n", Q, start=4) == 8


def test_first_boundary_skips_quoted_newlines():
    buf = b'"multi\nline\nheader",b\n1,2\n'
    assert first_boundary(buf, Q) == len(b'"multi\nline\nheader",b\n')
    assert first_boundary(buf, None) == len(b'"multi\n')


def test_first_boundary_none():
    assert first_boundary(b"abc", Q) == -1
    assert first_boundary(b'"a\nb', Q) == -1
    assert first_boundary(b"", None) == -1


def test_first_boundary_crlf_and_start():
    buf = b'a\r\n"b\r\nc"\r\nd\r\n'
    assert first_boundary(buf, Q) == 3
    assert first_boundary(buf, Q, start=3) == len(b'a\r\n"b\r\nc"\r\n')


# -- middle_boundary -------------------------------------------------------------------
def test_middle_boundary_picks_the_boundary_nearest_the_middle():
    buf = b"1\n2\n3\n4\n5\n"
    cut = middle_boundary(buf, Q)
    assert cut == 4 or cut == 6
    assert 0 < cut < len(buf)
    assert buf[cut - 1:cut] == b"\n"


def test_middle_boundary_one_record_is_unsplittable():
    assert middle_boundary(b"1,2\n", Q) == -1
    assert middle_boundary(b"1,2\r\n", Q) == -1
    assert middle_boundary(b"1,2", Q) == -1
    assert middle_boundary(b'1,"a\nb\nc"\n', Q) == -1
    assert middle_boundary(b"", Q) == -1


def test_middle_boundary_one_record_with_blank_lines_after_is_unsplittable():
    assert middle_boundary(b"1,2\n\n\r\n", Q) == -1


def test_middle_boundary_never_cuts_a_quoted_field():
    buf = b'1,"a\nb\nc\nd\ne\nf"\n2,3\n'
    assert middle_boundary(buf, Q) == len(b'1,"a\nb\nc\nd\ne\nf"\n')
    # without quote handling any newline will do
    assert middle_boundary(buf, None) not in (-1, len(b'1,"a\nb\nc\nd\ne\nf"\n'))


def test_middle_boundary_crlf():
    buf = b"a\r\nb\r\n"
    assert middle_boundary(buf, Q) == 3


# -- property: boundaries agree with the csv module -----------------------------------
cell = st.text(alphabet='ab,"\n\r', max_size=6)
rows = st.lists(st.lists(cell, min_size=1, max_size=3), min_size=1, max_size=8)


def _encode(rs, terminator):
    out = io.StringIO()
    csv.writer(out, lineterminator=terminator).writerows(rs)
    return out.getvalue().encode()


def _record_ends(data: bytes) -> set[int]:
    """Byte offsets just past each record, as csv sees them."""
    ends, pos = set(), 0
    text = data.decode()
    lines = text.splitlines(keepends=True)
    reader = csv.reader(lines)
    consumed = 0
    for _ in reader:
        pos += sum(len(line.encode()) for line in lines[consumed:reader.line_num])
        consumed = reader.line_num
        ends.add(pos)
    return ends


@settings(max_examples=80, deadline=None)
@given(rows, st.sampled_from(["\n", "\r\n"]), st.data())
def test_boundaries_are_record_ends(rs, terminator, data):
    buf = _encode(rs, terminator)
    ends = _record_ends(buf)
    end = data.draw(st.integers(min_value=0, max_value=len(buf)))
    cut = last_boundary(buf, Q, end)
    if cut != -1:
        assert cut in ends and cut <= end
    # no record end lies after the cut within buf[:end]
    assert not any(cut < e <= end for e in ends if buf[e - 1:e] == b"\n")
    first = first_boundary(buf, Q)
    assert first == min((e for e in ends if buf[e - 1:e] == b"\n"), default=-1)
    mid = middle_boundary(buf, Q)
    if mid != -1:
        assert mid in ends and 0 < mid < len(buf)


@pytest.mark.parametrize("quote", [Q, None])
def test_boundaries_on_unquoted_data_are_newlines(quote):
    buf = b"a;b\nc;d\ne;f\n"
    assert last_boundary(buf, quote) == len(buf)
    assert first_boundary(buf, quote) == 4
    assert middle_boundary(buf, quote) in (4, 8)


def test_parity_is_trusted_only_when_every_opening_quote_opens_a_field():
    assert blocks.parity_holds(b'1,"a\nb",c\n2,x,y\n', b'"', b",")
    assert not blocks.parity_holds(b'1,TV 55" screen,c\n2,"x\ny",z\n', b'"', b",")
    assert blocks.parity_holds(b'1, "a",c\n', b'"', b",", skipinitialspace=True)
    assert not blocks.parity_holds(b'1, "a",c\n', b'"', b",")


def test_exact_record_ends_follow_the_csv_module():
    buf = b'1,TV 55" screen\n2,"two\nlines"\n3,cable 3",x\n4,"open'
    ends = blocks.csv_record_ends(buf, {"delimiter": ",", "quotechar": '"'})
    assert [buf[:e].count(b"\n") for e in ends] == [1, 3, 4]  # record 4 is incomplete
    dialect = {"delimiter": ",", "quotechar": '"', "quoting_enabled": True}
    assert blocks.record_end(buf, dialect) == ends[-1]


def test_escaped_quotes_inside_quoted_fields_keep_parity_trusted():
    assert blocks.parity_holds(b'1,"size: 42, colour: ""navy""",x\n2,"",y\n', b'"', b",")
    assert not blocks.parity_holds(b'1,a""b,x\n', b'"', b",")
