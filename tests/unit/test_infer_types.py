"""How ``flowschema infer`` types one column and names its field."""

from __future__ import annotations

import datetime as dt
import keyword
from decimal import Decimal

import pytest
from pydantic import BaseModel

from flowschema_core.infer_render import field_names
from flowschema_core.infer_types import MISSING, column_type


def _type(values, *, empty_is_null=True, **kw):
    return column_type("c", values, empty_is_null=empty_is_null, **kw)


@pytest.mark.parametrize(("values", "expected"), [
    (["1", "2", "-3", " 4 "], "int"),
    (["12.50", "3.99", "7", "100.00"], "Decimal"),  # money: one fixed number of decimals
    (["0.5", "1.25", "3.125"], "float"),  # varying decimals
    (["52.520008", "13.404954"], "float"),  # fixed, but more decimals than money has
    (["1e3", "2.5"], "float"),
    (["2024-01-05", "2023-12-31"], "dt.date"),
    (["2024-01-05T10:00:00", "2024-01-05 11:30", "2024-01-06"], "dt.datetime"),
    (["true", "false", "yes", "no"], "bool"),
    (["0", "1", "1", "0"], "int"),  # a tie between int and bool goes to the narrower
    (["1700000000", "1700000100"], "int"),  # numbers are never timestamps
    (["00123", "04567", "12345"], "str"),  # leading zeros: a number would lose them
    (["abc", "def"], "str"),
])
def test_text_columns_get_the_narrowest_type_pydantic_accepts(values, expected):
    assert _type(values).type_name == expected


def test_a_few_values_that_fit_nothing_do_not_make_the_column_str():
    values = [f"{i}.50" for i in range(97)] + ["abc", "n/a", "12,5"]
    column = _type(values)
    assert column.type_name == "Decimal"
    assert (column.fit, column.misfits, column.empty) == (97, 3, 0)
    assert set(column.examples) == {"'abc'", "'n/a'", "'12,5'"}
    assert column.comment() == f"97 of 100 sampled: Decimal; 3 did not fit ({', '.join(column.examples)})"


def test_the_threshold_is_an_option():
    values = [str(i) for i in range(90)] + ["x"] * 10
    assert _type(values).type_name == "str"  # 90% < 95%
    assert _type(values, threshold=0.9).type_name == "int"


def test_empty_cells_make_the_field_optional_and_are_not_counted_as_misfits():
    column = _type(["1", "", "3", MISSING, None])
    assert (column.type_name, column.optional, column.empty, column.misfits) == ("int", True, 3, 0)
    assert column.comment() == "2 of 5 sampled: int; 3 empty"


def test_without_the_null_policy_an_empty_string_is_a_value():
    column = _type(["1", "2", ""] * 40, empty_is_null=False, threshold=0.6)
    assert column.type_name == "int" and column.misfits == 40 and not column.optional


def test_empty_cells_seen_outside_the_sample_still_make_it_optional():
    column = _type(["1", "2"], empty_elsewhere=True)
    assert column.optional and "outside the sample" in column.comment()


def test_a_column_with_no_value_is_optional_text():
    column = _type(["", None, MISSING])
    assert (column.type_name, column.optional) == ("str", True)


@pytest.mark.parametrize(("values", "expected"), [
    ([1, 2, None], "int"),
    ([1, 2.5], "float"),
    ([Decimal("1.10"), 3], "Decimal"),
    ([True, False], "bool"),
    ([dt.date(2024, 1, 1), dt.datetime(2024, 1, 1, 5)], "dt.datetime"),
    ([dt.date(2024, 1, 1)], "dt.date"),
    ([{"a": 1}, {"b": 2}], "dict[str, Any]"),
    ([[1], [2, 3]], "list[Any]"),
    ([1, "x", {"a": 1}, [1]], "Any"),
])
def test_typed_values_map_to_their_own_type(values, expected):
    assert _type(values, empty_is_null=False).type_name == expected


def test_a_mostly_numeric_column_with_a_stray_text_value_counts_it():
    column = _type([1.5] * 99 + ["abc"], empty_is_null=False)
    assert column.type_name == "float" and column.misfits == 1 and column.examples == ["'abc'"]


def test_enums_only_when_asked_and_rare_values_are_refused():
    values = ["paid"] * 500 + ["new"] * 300 + ["shipped"] * 199 + ["shiped"]
    assert _type(values).type_name == "str"
    column = _type(values, enums=True)
    assert column.type_name == "Literal['new', 'paid', 'shipped']"
    assert column.misfits == 1 and column.examples == ["'shiped'"]
    assert _type(values, enums=True, max_enum_values=2).type_name == "str"
    assert _type([f"v{i}" for i in range(10)], enums=True).type_name == "str"  # each value once: not an enum


def test_field_names_are_safe_unique_identifiers():
    columns = ["Order ID", "order_id", "class", "Größe", "naïve", "цена", "1st place", "x-y", "json", "model_name", "int", "dt", "", "配達", "orderId"]
    names = field_names(columns)
    assert names == ["order_id_2", "order_id", "class_", "große", "naive", "цена", "f_1st_place", "x_y", "json_", "field_model_name",
                     "int_", "dt_", "field_13", "配達", "order_id_3"]
    for name in names:
        assert name.isidentifier() and not keyword.iskeyword(name) and not hasattr(BaseModel, name)
