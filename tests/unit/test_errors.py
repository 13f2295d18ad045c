"""The error tree: branches a caller can act on, pickling, transience, CLI exit codes."""

from __future__ import annotations

import pickle

import pytest

import flowschema_core as fs
from flowschema_core.errors import Terminal, Transient, exit_code_for


def test_the_tree_has_the_documented_branches():
    assert issubclass(fs.MissingDependencyError, fs.ConfigError)
    assert issubclass(fs.MissingDependencyError, ImportError) and issubclass(fs.ConfigError, ValueError)
    for error in (fs.WorkerCrashedError, fs.WorkerPoolError, fs.WorkerError, fs.CodecError):
        assert issubclass(error, fs.ExecutionError)
    for error in (fs.ConfigError, fs.SourceError, fs.SinkError, fs.CheckpointError, fs.ExecutionError, fs.AccountingError):
        assert issubclass(error, fs.FlowSchemaError)


def test_transient_and_terminal_are_marked():
    assert fs.WorkerCrashedError("died").transient and isinstance(fs.WorkerCrashedError("died"), Transient)
    assert not fs.SourceError("bad file").transient and isinstance(fs.SourceError("bad file"), Terminal)


@pytest.mark.parametrize(
    "error",
    [
        fs.SourceError("orders.csv: not a CSV"),
        fs.WorkerCrashedError("the worker died 2 times", -9),
        fs.MissingDependencyError("the Ray executor", "ray"),
        fs.AccountingError("read 3 != 2"),
        fs.ConfigError("bad option"),
    ],
)
def test_every_error_survives_pickling_with_its_attributes(error):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.__dict__ == error.__dict__


def test_missing_dependency_names_the_extra():
    error = fs.MissingDependencyError("the Ray executor", "ray")
    assert 'pip install "flowschema[ray]"' in str(error)
    assert (error.feature, error.extra) == ("the Ray executor", "ray")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (fs.ConfigError("x"), 2),
        (fs.MissingDependencyError("f", "ray"), 2),
        (fs.CheckpointError("x"), 2),
        (fs.SourceError("x"), 1),
        (fs.SinkError("x"), 1),
        (fs.InvalidRecordsError("x"), 1),
        (fs.WorkerPoolError("x"), 1),
        (fs.AccountingError("x"), 70),
    ],
)
def test_cli_exit_codes_by_branch(error, code):
    assert exit_code_for(error) == code
