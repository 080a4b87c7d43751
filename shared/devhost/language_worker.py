"""Microsoft's Python language worker (``azure-functions-runtime``) driven in-process, the
way the Functions host drives it over gRPC.

The host speaks ``FunctionRpc.proto``: ``WorkerInitRequest`` (the worker indexes
``function_app.py``), ``FunctionsMetadataRequest`` (it answers with each function's
bindings), ``FunctionLoadRequest`` per function, then one ``InvocationRequest`` per call
with the trigger as ``TypedData`` (``RpcHttp``, a queue message, a timer's JSON). This
module sends those messages, from the generated message classes that the
``azure-functions-runtime-v1`` wheel ships (``tests/protos``: Microsoft's own build of the
worker's proto files), to the worker's handlers, and converts the answers back.

The worker keeps its state in module globals, so a process has one :class:`LanguageWorker`
(:func:`language_worker`), which lives as long as the process. It runs its handlers on an
event loop in a thread of its own and sync functions in its own thread pool;
:meth:`LanguageWorker.invoke` may be called from any thread. Both libraries are development
dependencies (``requirements-dev.txt``): a deployed app gets its worker from the platform,
never from its own packages.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.machinery
import importlib.metadata
import json
import sys
import threading
import types
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROTOS_DISTRIBUTION = "azure-functions-runtime-v1"
_PROTOS_PACKAGE = "_dip_edge_function_rpc"  # its own name: the wheel calls it ``tests.protos``
INVOCATION_TIMEOUT = 300.0  # the Functions host's default functionTimeout on Consumption


class WorkerUnavailable(RuntimeError):
    """The worker libraries are not installed, or the worker refused the app."""


class FunctionFailed(RuntimeError):
    """An invocation ended in ``StatusResult.Failure`` (the function raised).

    Its message names only the exception's type (the worker's ``RpcException`` carries the
    function's own message and stack trace, which may hold anything); ``rpc_exception``
    keeps the worker's report for whoever needs it.
    """

    def __init__(self, function: str, rpc_exception) -> None:
        self.function = function
        self.rpc_exception = rpc_exception
        self.exception_type = rpc_exception.message.split(":", 1)[0]
        super().__init__(f"function {function} failed with {self.exception_type}")


@dataclass(frozen=True)
class IndexedFunction:
    """One function as the worker's metadata response describes it."""

    name: str
    function_id: str
    bindings: tuple[dict, ...]  # the raw bindings (function.json entries), parsed

    @property
    def trigger(self) -> dict:
        return next(b for b in self.bindings if b["direction"].lower() == "in"
                    and b["type"].endswith("Trigger"))


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: tuple = ()  # RpcHttpCookie messages (the worker moves Set-Cookie there)


def load_protos() -> types.SimpleNamespace:
    """The host's protocol messages, as the host hands them to the worker
    (``request.properties["protos"]``): every message and enum of ``FunctionRpc.proto`` and
    ``shared/NullableTypes.proto``."""
    try:
        directory = Path(str(importlib.metadata.distribution(PROTOS_DISTRIBUTION)
                             .locate_file("tests/protos")))
    except importlib.metadata.PackageNotFoundError as exc:
        raise WorkerUnavailable(f"{PROTOS_DISTRIBUTION} is not installed") from exc
    if _PROTOS_PACKAGE not in sys.modules:
        # A package of our own over the wheel's directory, without its __init__ (which
        # imports grpc, a transport this in-process host does not need).
        package = types.ModuleType(_PROTOS_PACKAGE)
        package.__path__ = [str(directory)]
        package.__spec__ = importlib.machinery.ModuleSpec(_PROTOS_PACKAGE, None,
                                                          is_package=True)
        package.__spec__.submodule_search_locations = [str(directory)]
        sys.modules[_PROTOS_PACKAGE] = package
    rpc = importlib.import_module(f"{_PROTOS_PACKAGE}.FunctionRpc_pb2")
    nullable = importlib.import_module(f"{_PROTOS_PACKAGE}.shared.NullableTypes_pb2")
    names: dict[str, Any] = {}
    for module in (nullable, rpc):
        for name in (*module.DESCRIPTOR.message_types_by_name,
                     *module.DESCRIPTOR.enum_types_by_name):
            names[name] = getattr(module, name)
    return types.SimpleNamespace(**names)


@dataclass
class _Envelope:
    """What the worker's handlers receive: the host's message and the host's properties."""

    request: Any  # a StreamingMessage
    properties: dict


class LanguageWorker:
    """The worker with ``function_app.py`` of ``app_dir`` indexed and every function loaded."""

    def __init__(self, app_dir: Path) -> None:
        try:
            import azure_functions_runtime as runtime
        except ImportError as exc:
            raise WorkerUnavailable("azure-functions-runtime is not installed") from exc
        self.app_dir = Path(app_dir).resolve()
        self.protos = load_protos()
        self._runtime = runtime
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="language-worker")
        self._thread.start()
        runtime.start_threadpool_executor()
        self.init_response = self._init()
        self.version = self.init_response.worker_metadata.worker_version
        self.metadata_response = self._call(runtime.functions_metadata_request(
            self._message(functions_metadata_request=self.protos.FunctionsMetadataRequest(
                function_app_directory=str(self.app_dir)))))
        self._check(self.metadata_response.result, "FunctionsMetadataRequest")
        self.functions: dict[str, IndexedFunction] = {}
        for metadata in self.metadata_response.function_metadata_results:
            loaded = self._call(runtime.function_load_request(self._message(
                function_load_request=self.protos.FunctionLoadRequest(
                    function_id=metadata.function_id, metadata=metadata))))
            self._check(loaded.result, f"FunctionLoadRequest {metadata.name}")
            self.functions[metadata.name] = IndexedFunction(
                metadata.name, metadata.function_id,
                tuple(json.loads(raw) for raw in metadata.raw_bindings))

    def _init(self):
        # The worker imports function_app itself. In Azure that is a process of its own;
        # here the process may import it too, and an app object can be indexed only once:
        # the worker gets a fresh import of its own, and sys.modules is left as it was.
        if str(self.app_dir) not in sys.path:
            sys.path.insert(0, str(self.app_dir))
        existing = sys.modules.pop("function_app", None)
        try:
            response = self._call(self._runtime.worker_init_request(self._message(
                worker_init_request=self.protos.WorkerInitRequest(
                    function_app_directory=str(self.app_dir),
                    capabilities={}))))
        finally:
            sys.modules.pop("function_app", None)
            if existing is not None:
                sys.modules["function_app"] = existing
        self._check(response.result, "WorkerInitRequest")
        return response

    def _message(self, **payload):
        message = self.protos.StreamingMessage(request_id=uuid.uuid4().hex, **payload)
        return _Envelope(message, {"protos": self.protos, "host": "127.0.0.1"})

    def _call(self, coroutine, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _check(self, result, what: str) -> None:
        if result.status != self.protos.StatusResult.Success:
            raise WorkerUnavailable(f"{what} failed: {result.exception.message}")

    # -- invocation -------------------------------------------------------------------

    def invoke(self, name: str, data, trigger_metadata: Mapping[str, Any] | None = None):
        """One ``InvocationRequest`` with ``data`` (TypedData) as the trigger; the
        ``InvocationResponse`` on success, :class:`FunctionFailed` when the function raised."""
        function = self.functions[name]
        request = self.protos.InvocationRequest(
            invocation_id=str(uuid.uuid4()), function_id=function.function_id,
            input_data=[self.protos.ParameterBinding(name=function.trigger["name"],
                                                     data=data)],
            trigger_metadata=dict(trigger_metadata or {}))
        response = self._call(self._runtime.invocation_request(
            self._message(invocation_request=request)), INVOCATION_TIMEOUT)
        if response.result.status != self.protos.StatusResult.Success:
            raise FunctionFailed(name, response.result.exception)
        return response

    def invoke_http(self, name: str, method: str, url: str, headers: Mapping[str, str],
                    query: Mapping[str, str], route_params: Mapping[str, str],
                    body: bytes) -> HttpReply:
        """An HTTP function called with an ``RpcHttp`` (the body as bytes: the worker
        announces ``RawHttpBodyBytes``), its ``$return`` ``RpcHttp`` converted back."""
        p = self.protos
        http = p.RpcHttp(method=method, url=url, headers=dict(headers), query=dict(query),
                         params=dict(route_params), body=p.TypedData(bytes=body))
        returned = self.invoke(name, p.TypedData(http=http)).return_value
        kind = returned.WhichOneof("data")
        if kind != "http":
            raise FunctionFailed(name, p.RpcException(
                message=f"UnexpectedReturn: $return is {kind}, not http"))
        return HttpReply(int(returned.http.status_code or 200), dict(returned.http.headers),
                         typed_data_bytes(returned.http.body), tuple(returned.http.cookies))

    def invoke_queue(self, name: str, body: str | bytes, *, message_id: str,
                     dequeue_count: int = 1, pop_receipt: str = "",
                     inserted: datetime | None = None) -> None:
        """A queue trigger: the message body as string or bytes TypedData, its properties
        in the trigger metadata (JSON-encoded, as the host's metadata values arrive)."""
        p = self.protos
        inserted = inserted or datetime.now(UTC)
        data = p.TypedData(string=body) if isinstance(body, str) else p.TypedData(bytes=body)

        def js(value) -> Any:
            return p.TypedData(json=json.dumps(value))

        metadata = {
            "Id": js(message_id), "DequeueCount": js(dequeue_count),
            "PopReceipt": js(pop_receipt), "InsertionTime": js(inserted.isoformat()),
            "ExpirationTime": js((inserted + timedelta(days=7)).isoformat()),
            "NextVisibleTime": js((datetime.now(UTC) + timedelta(minutes=10)).isoformat()),
        }
        self.invoke(name, data, metadata)

    def invoke_timer(self, name: str, *, past_due: bool = False) -> None:
        """A timer trigger: the host's TimerInfo as JSON TypedData."""
        now = datetime.now(UTC)
        info = {"Schedule": {"AdjustForDST": True}, "IsPastDue": past_due,
                "ScheduleStatus": {"Last": now.isoformat(), "Next": now.isoformat(),
                                   "LastUpdated": now.isoformat()}}
        self.invoke(name, self.protos.TypedData(json=json.dumps(info)))


def typed_data_bytes(data) -> bytes:
    """The bytes of a body TypedData, whichever kind the worker chose."""
    kind = data.WhichOneof("data")
    if kind is None:
        return b""
    if kind == "bytes":
        return data.bytes
    if kind in ("string", "json"):
        return getattr(data, kind).encode()
    raise ValueError(f"unexpected body TypedData {kind}")


_started: LanguageWorker | None = None
_starting = threading.Lock()


def language_worker(app_dir: Path) -> LanguageWorker:
    """The process's one worker, started for ``app_dir`` on first call (the worker keeps its
    state in module globals, so a second one for another directory is refused)."""
    global _started
    with _starting:
        if _started is None:
            _started = LanguageWorker(app_dir)
        elif _started.app_dir != Path(app_dir).resolve():
            raise WorkerUnavailable(f"this process's worker already serves {_started.app_dir}")
        return _started
