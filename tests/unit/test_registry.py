"""The registry: one table per component kind, extras, key defaults, entry-point plugins."""

from __future__ import annotations

import pytest

import flowschema_core as fs
from flowschema_core import registry


class _EntryPoint:
    """What importlib.metadata gives for an installed plugin: a name, a value, load()."""

    def __init__(self, obj, value="plugin_pkg:Thing", error=None):
        self.obj, self.value, self.error = obj, value, error

    def load(self):
        if self.error:
            raise self.error
        return self.obj


class AvroSource(fs.CSVSource):  # stands for a plugin's source class
    pass


def test_tsv_implies_a_tab_delimiter(tmp_path):
    source = registry.source_for(str(tmp_path / "x.tsv"))
    assert isinstance(source, fs.CSVSource) and source.dialect["delimiter"] == "\t"
    assert registry.source_for(str(tmp_path / "x.tsv"), delimiter=";").dialect["delimiter"] == ";"  # the caller wins


def test_sources_and_sinks_from_plugins(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._entry_points, "source", {"avro": _EntryPoint(AvroSource)})
    monkeypatch.setitem(registry._entry_points, "sink", {"kafka": _EntryPoint(fs.JSONLSink)})
    assert isinstance(registry.source_for(str(tmp_path / "data.avro")), AvroSource)
    assert isinstance(registry.sink_for("kafka://broker/topic"), fs.JSONLSink)


def test_a_plugin_that_cannot_import_names_what_to_install(monkeypatch):
    monkeypatch.setitem(registry._entry_points, "executor", {"ray": _EntryPoint(None, error=ImportError("no ray", name="ray"))})
    with pytest.raises(fs.MissingDependencyError, match=r'pip install "flowschema\[ray\]"'):
        registry.make_executor("ray")


def test_unknown_kinds_list_what_is_known(monkeypatch):
    monkeypatch.setitem(registry._entry_points, "sink", {"kafka": _EntryPoint(fs.JSONLSink)})
    with pytest.raises(fs.ConfigError, match="kafka"):
        registry.sink_for("out.unknown")
    with pytest.raises(fs.ConfigError, match="unknown executor 'warp'"):
        registry.make_executor("warp")


def test_every_executor_takes_workers():
    assert registry.make_executor("process", workers=3).workers == 3
    assert isinstance(registry.make_executor("inline", workers=1), fs.InlineExecutor)
    with pytest.raises(fs.ConfigError, match="inline executor"):
        registry.make_executor("inline", workers=2)
