"""``flowschema_core.__all__`` lists exactly the public names of the package (httpx style)."""

from __future__ import annotations

import types

import flowschema_core


def test_all_is_exactly_the_public_names():
    public = {
        name
        for name, value in vars(flowschema_core).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public.add("__version__")
    assert set(flowschema_core.__all__) == public
    assert len(flowschema_core.__all__) == len(set(flowschema_core.__all__))  # no duplicates


def test_every_exported_name_is_defined():
    for name in flowschema_core.__all__:
        assert hasattr(flowschema_core, name), name
        value = getattr(flowschema_core, name)
        if isinstance(value, type) or callable(value):
            assert value.__module__.startswith("flowschema_core"), name
