"""The executor contract (:mod:`flowschema_core.testing`) on the inline and process executors.

The Ray executor runs the same suite in ``tests/ray/test_executor_contract.py``.
"""

from __future__ import annotations

import pytest

import flowschema_core as fs
from flowschema_core.testing import ExecutorContract


class TestInlineExecutor(ExecutorContract):
    @pytest.fixture
    def make_executor(self):
        return fs.InlineExecutor


class TestMultiprocessingExecutor(ExecutorContract):
    @pytest.fixture
    def make_executor(self):
        return lambda: fs.MultiprocessingExecutor(workers=2)
