"""``flowschema_core.__all__`` lists exactly the public names of the package (httpx style)."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import flowschema_core


def test_all_is_exactly_the_public_names():
    # dir(), not vars(): the public names load on first use (PEP 562), so a name defined
    # by the package is in dir() whether or not something has used it yet.
    public = {
        name
        for name in dir(flowschema_core)
        if not name.startswith("_") and not isinstance(getattr(flowschema_core, name), types.ModuleType)
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


def test_a_worker_imports_only_what_it_needs():
    # A worker process imports flowschema_core.worker; the package's public names load on
    # first use, so it pays for none of the driver's modules (start-up time and memory in
    # every worker). A fresh interpreter: this test process has imported everything.
    probe = "import sys, flowschema_core.worker; print(' '.join(sorted(m for m in sys.modules if m.startswith('flowschema_core'))))"
    loaded = set(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split())
    assert "flowschema_core.worker" in loaded
    driver_only = {"flowschema_core.pipeline", "flowschema_core.run", "flowschema_core.sources", "flowschema_core.sinks",
                   "flowschema_core.infer", "flowschema_core.executors", "flowschema_core.progress", "flowschema_core.dlq_summary"}
    assert not loaded & driver_only, sorted(loaded & driver_only)


def test_public_names_load_on_first_use_and_stay():
    probe = ("import sys, flowschema_core as fs; before = 'flowschema_core.pipeline' in sys.modules; p = fs.Pipeline; "
             "print(before, 'flowschema_core.pipeline' in sys.modules, 'Pipeline' in vars(fs), p is fs.Pipeline)")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    assert out == ["False", "True", "True", "True"]
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        flowschema_core.NoSuchThing  # noqa: B018 - the attribute access is the test
