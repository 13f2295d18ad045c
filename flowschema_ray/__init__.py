"""FlowSchema's Ray backend: process chunks in a pool of Ray actors.

``flowschema_ray`` never imports ``ray`` at import time; :class:`RayExecutor` imports it
when it starts and, when it is missing, raises
:class:`~flowschema_core.errors.MissingDependencyError` naming ``pip install
"flowschema[ray]"``. It is registered under the entry-point group
``flowschema.executors`` as ``ray``, so ``Pipeline(..., executor="ray")`` finds it.
"""

from .executor import RayExecutor

__all__ = ["RayExecutor"]
