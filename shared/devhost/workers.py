"""The background workers ``dip-edge serve`` runs beside its HTTP server.

This is the hook for non-HTTP functions: ``background_workers`` receives the function
table, whose ``others`` maps each timer or queue function's name to its ``azure``
Function object (``get_user_function()``, ``get_function_json()``), and returns
:class:`~shared.devhost.server.Worker` objects (e.g. a timer runner for ``monitor``, a
queue poller for ``events``). Each runs in its own thread until the host stops.
"""

from __future__ import annotations

from shared.devhost.functions import FunctionTable
from shared.devhost.server import Worker
from shared.settings import Settings


def background_workers(settings: Settings, functions: FunctionTable,
                       language_worker=None) -> list[Worker]:
    """The timer and queue functions (``monitor``; ``events`` when EVENTS_STORAGE is set),
    run through ``language_worker`` when there is one."""
    from shared.devhost.triggers import trigger_workers

    return trigger_workers(settings, functions, language_worker)
