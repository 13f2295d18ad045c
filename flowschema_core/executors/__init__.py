"""Executors: where chunks are processed (see :mod:`flowschema_core.executors.base`)."""

from .base import Executor, ExecutorStats
from .inline import InlineExecutor
from .process import MultiprocessingExecutor

__all__ = ["Executor", "ExecutorStats", "InlineExecutor", "MultiprocessingExecutor"]
