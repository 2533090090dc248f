"""The Python client: start, cancel and signal workflows; read their state from the journal.

Writes only **produce events** to ``requests`` (``WorkflowRequested``,
``CancelRequested``, ``SignalSent``); the orchestrator decides. Reads fold the
workflow's journal partition (the partition Kafka's default partitioner gives
its id), so they need no database: for many workflows or long histories, use
the projections API instead.

```python
async with AgentlogClient(Settings.from_env()) as client:
    workflow_id = await client.submit("pr-deploy", {"repo": "acme/shop", "pr": 42})
    state = await client.wait(workflow_id, timeout=60)
    print(state.status, state.output)
```
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Iterable, Mapping
from datetime import datetime
from enum import Enum
from types import TracebackType
from typing import Any, cast, get_args

from aiokafka.structs import TopicPartition

from agentlog.agents.orchestrator.routing import partition_for
from agentlog.errors import AgentlogError
from agentlog.schemas.events import (
    EVENT_ID_NAMESPACE,
    PRIORITY_DEFAULT,
    PRIORITY_MAX,
    PRIORITY_MIN,
    CancelRequested,
    Envelope,
    Event,
    JsonValue,
    SignalSent,
    WorkflowRequested,
    new_envelope,
)
from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import JOURNAL, REQUESTS, ensure_topics
from agentlog.streams.tracing import new_traceparent
from agentlog.workflow import JournalEvent, WorkflowSpec, WorkflowState, evolve
from agentlog.workflow.state import TaskState

logger = logging.getLogger(__name__)

_MAX_ID = 200
_JOURNAL_TYPES = frozenset(t.__name__ for t in get_args(JournalEvent))


class RequestError(AgentlogError):
    """A request the client refuses to send; the message names the field and the fix."""


class WaitTimeoutError(AgentlogError, TimeoutError):
    """A workflow did not end within the time given; it may still end later."""

    retriable = True


class AgentlogClient:
    """Produces requests and reads workflow state from the journal.

    Use as ``async with AgentlogClient(settings) as client:``; :meth:`start`
    and :meth:`stop` are idempotent. :meth:`start` creates missing topics
    (with ``settings.partitions``), so the first request never auto-creates a
    topic with a partition count the orchestrator cannot use.

    Args:
        settings: the broker and the topic prefix.
        source: ``source`` of the events this client produces.
    """

    def __init__(self, settings: Settings, *, source: str = "client") -> None:
        self.settings = settings
        self.source = source
        self._producer: EventProducer | None = None
        self._partitions: int | None = None

    async def start(self) -> None:
        """Create missing topics and connect; idempotent."""
        if self._producer is not None:
            return
        await ensure_topics(self.settings)
        producer = EventProducer(self.settings, client_id=f"{self.source}-producer")
        await producer.start()
        try:
            self._partitions = len(await producer.partitions_for(self._topic(JOURNAL.name)))
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        """Disconnect; idempotent."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> AgentlogClient:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- writes --------------------------------------------------------------------

    async def submit(
        self,
        definition: str | WorkflowSpec | None,
        input: JsonValue = None,
        *,
        version: int | None = None,
        spec: WorkflowSpec | JsonValue = None,
        priority: int = PRIORITY_DEFAULT,
        idempotency_key: str | None = None,
        workflow_id: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Request a workflow; return its id once the request is acknowledged.

        Args:
            definition: a registered definition name, or a spec to run inline.
            input: the workflow input (JSON).
            version: the definition version; None means the latest.
            spec: an inline spec (a ``WorkflowSpec`` or its JSON) instead of a name.
            priority: 1 (lowest) to 5; 3 means "the spec's priority".
            idempotency_key: requests with the same key start at most one
                workflow. Without ``workflow_id`` the id derives from the key,
                so a retried submit returns the same id, on every partition.
            workflow_id: the id to use (default: derived from the key, or random).
            labels: free-form labels.

        Raises:
            RequestError: the request is malformed (nothing is sent).
        """
        if isinstance(definition, WorkflowSpec):
            definition, spec = None, definition
        spec_json = spec.to_json() if isinstance(spec, WorkflowSpec) else spec
        _check_request(definition, spec_json, input, priority, version)
        if workflow_id is None:
            workflow_id = derive_workflow_id(idempotency_key) if idempotency_key else _new_id()
        _check_id("workflow_id", workflow_id)
        if idempotency_key is not None:
            _check_text("idempotency_key", idempotency_key)
        request = self._request(
            workflow_id,
            definition=definition,
            version=version,
            spec=spec_json,
            input=input,
            priority=priority,
            idempotency_key=idempotency_key,
            labels=labels,
        )
        await self._require().send(self._topic(REQUESTS.name), request)
        logger.info("requested workflow %s (%s)", workflow_id, definition or "inline spec")
        return workflow_id

    async def submit_many(
        self,
        definition: str | WorkflowSpec | None,
        inputs: Iterable[JsonValue],
        *,
        version: int | None = None,
        spec: WorkflowSpec | JsonValue = None,
        priority: int = PRIORITY_DEFAULT,
        labels: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Request one workflow per input, all at once; return their ids once all are acknowledged.

        The requests go out as one record batch per partition
        (:meth:`EventProducer.enqueue_batch`), far cheaper than a :meth:`submit`
        each when starting thousands (a load test, a backfill). Every workflow
        gets a random id; for retry-safe requests use :meth:`submit` with an
        idempotency key.

        Raises:
            RequestError: a request is malformed, e.g. ``inputs[3]`` is not JSON
                (nothing is sent).
        """
        if isinstance(definition, WorkflowSpec):
            definition, spec = None, definition
        spec_json = spec.to_json() if isinstance(spec, WorkflowSpec) else spec
        values = list(inputs)
        _check_request(definition, spec_json, None, priority, version)
        for i, value in enumerate(values):
            _check_json(f"inputs[{i}]", value)
        requests = [
            self._request(
                _new_id(),
                definition=definition,
                version=version,
                spec=spec_json,
                input=value,
                priority=priority,
                idempotency_key=None,
                labels=labels,
            )
            for value in values
        ]
        if requests:
            await (await self._require().enqueue_batch(self._topic(REQUESTS.name), requests))
        logger.info("requested %s workflows (%s)", len(requests), definition or "inline spec")
        return [request.workflow_id for request in requests]

    async def cancel(self, workflow_id: str, reason: str = "") -> None:
        """Ask the orchestrator to cancel a running workflow (no-op if it already ended)."""
        _check_id("workflow_id", workflow_id)
        event = CancelRequested(
            envelope=self._envelope("CancelRequested", workflow_id),
            workflow_id=workflow_id,
            reason=reason,
        )
        await self._require().send(self._topic(REQUESTS.name), event)

    async def signal(self, workflow_id: str, name: str, payload: JsonValue = None) -> None:
        """Send signal ``name`` with ``payload`` to a workflow (e.g. a human approval)."""
        _check_id("workflow_id", workflow_id)
        if not name:
            raise RequestError("signal name is empty; name the signal a step waits for")
        _check_text("signal", name)
        _check_json("payload", payload)
        event = SignalSent(
            envelope=self._envelope("SignalSent", workflow_id),
            workflow_id=workflow_id,
            signal=name,
            payload=payload,
        )
        await self._require().send(self._topic(REQUESTS.name), event)

    # -- reads ---------------------------------------------------------------------

    async def partition_of(self, workflow_id: str) -> int:
        """The partition of ``requests`` / ``journal`` / ``responses`` the workflow lives on."""
        self._require()
        assert self._partitions is not None
        return partition_for(workflow_id, self._partitions)

    async def history(self, workflow_id: str) -> list[JournalEvent]:
        """The workflow's journal so far, in order (empty before the orchestrator decided)."""
        tp = TopicPartition(self._topic(JOURNAL.name), await self.partition_of(workflow_id))
        found: list[JournalEvent] = []
        async with self._reader() as reader:
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            end = (await reader.end_offsets([tp]))[tp]
            while end > 0 and reader.positions().get(tp, 0) < end:
                batch = await reader.poll(timeout_ms=100)
                found.extend(e for d in batch if (e := _journal_event(d.event, workflow_id)))
        return found

    async def status(self, workflow_id: str) -> WorkflowState | None:
        """The workflow's state folded from its journal; None if nothing is decided yet."""
        state: WorkflowState | None = None
        for event in await self.history(workflow_id):
            state = evolve(state, event)
        return state

    async def watch(
        self, workflow_id: str, *, from_beginning: bool = True
    ) -> AsyncGenerator[JournalEvent, None]:
        """The workflow's journal events as they are appended: history first, then live.

        Never ends by itself: break out, or use :meth:`wait`. Close it with
        ``contextlib.aclosing`` so its consumer stops at once.
        """
        tp = TopicPartition(self._topic(JOURNAL.name), await self.partition_of(workflow_id))
        async with self._reader() as reader:
            reader.assign([tp])
            if from_beginning:
                await reader.seek_to_beginning(tp)
            else:
                await reader.seek(tp, (await reader.end_offsets([tp]))[tp])
            while True:
                for delivered in await reader.poll(timeout_ms=250):
                    event = _journal_event(delivered.event, workflow_id)
                    if event is not None:
                        yield event

    async def wait(self, workflow_id: str, timeout: float | None = None) -> WorkflowState:  # noqa: ASYNC109 - the client API takes seconds, like asyncio.wait_for
        """Until the workflow is terminal (succeeded, failed, cancelled or rejected).

        Raises:
            WaitTimeoutError: it did not end within ``timeout`` seconds.
        """
        state: WorkflowState | None = None
        try:
            async with asyncio.timeout(timeout):
                async with contextlib.aclosing(self.watch(workflow_id)) as events:
                    async for event in events:
                        state = evolve(state, event)
                        if state is not None and state.status.terminal:
                            return state
        except TimeoutError:
            where = state.status.value if state is not None else "not started yet"
            raise WaitTimeoutError(
                f"workflow {workflow_id} did not end within {timeout} s ({where}); "
                "wait longer, or check that an orchestrator and its agents run"
            ) from None
        raise AssertionError("watch() ended")  # pragma: no cover - watch never ends

    async def wait_all(
        self,
        workflow_ids: Iterable[str],
        timeout: float | None = None,  # noqa: ASYNC109 - seconds, as in wait()
    ) -> dict[str, WorkflowState]:
        """Until every workflow is terminal; their end states by id.

        One reader over the journal partitions that hold them, read once from
        the beginning: waiting for many workflows one :meth:`wait` at a time
        reads a partition again for each.

        Raises:
            WaitTimeoutError: not all ended within ``timeout`` seconds (the message
                says how many are left and names one).
        """
        pending = set(workflow_ids)
        total = len(pending)
        states: dict[str, WorkflowState] = {}
        ended: dict[str, WorkflowState] = {}
        topic = self._topic(JOURNAL.name)
        parts = sorted({await self.partition_of(wf) for wf in pending})
        tps = [TopicPartition(topic, p) for p in parts]
        try:
            async with asyncio.timeout(timeout), self._reader() as reader:
                reader.assign(tps)
                await reader.seek_to_beginning(*tps)
                while pending:
                    for delivered in await reader.poll(timeout_ms=250):
                        wf = getattr(delivered.event, "workflow_id", None)
                        if wf not in pending:
                            continue
                        event = _journal_event(delivered.event, wf)
                        if event is None:
                            continue
                        state = evolve(states.get(wf), event)
                        if state is None:
                            continue
                        states[wf] = state
                        if state.status.terminal:
                            pending.discard(wf)
                            ended[wf] = state
        except TimeoutError:
            example = next(iter(pending))
            where = states[example].status.value if example in states else "not started yet"
            raise WaitTimeoutError(
                f"{len(pending)} of {total} workflows did not end within {timeout} s "
                f"(e.g. {example}: {where}); wait longer, or check that an orchestrator "
                "and its agents run"
            ) from None
        return ended

    # -- helpers -------------------------------------------------------------------

    def _require(self) -> EventProducer:
        if self._producer is None:
            raise RuntimeError("AgentlogClient is not started; use `async with` or await start()")
        return self._producer

    def _topic(self, name: str) -> str:
        return self.settings.topic(name)

    def _request(
        self,
        workflow_id: str,
        *,
        definition: str | None,
        version: int | None,
        spec: JsonValue,
        input: JsonValue,
        priority: int,
        idempotency_key: str | None,
        labels: Mapping[str, str] | None,
    ) -> WorkflowRequested:
        return WorkflowRequested(
            envelope=self._envelope("WorkflowRequested", workflow_id),
            workflow_id=workflow_id,
            definition=definition,
            version=version,
            spec=spec,
            input=input,
            priority=priority,
            idempotency_key=idempotency_key,
            labels=dict(labels or {}),
        )

    def _envelope(self, type_name: str, workflow_id: str) -> Envelope:
        return new_envelope(
            type_name, workflow_id, source=self.source, traceparent=new_traceparent()
        )

    def _reader(self) -> EventConsumer:
        # no record bound: history() stops at the reported end offset, which only
        # works when polls return whole record batches (see streams.partitions)
        return EventConsumer(
            self.settings,
            group_id=None,
            dead_letters=None,
            max_records=None,
            client_id=f"{self.source}-journal-reader",
        )


def derive_workflow_id(idempotency_key: str) -> str:
    """The workflow id a client derives from an idempotency key (stable, global)."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"idempotency-key/{idempotency_key}"))


def _new_id() -> str:
    return str(uuid.uuid4())


def _journal_event(event: Event, workflow_id: str) -> JournalEvent | None:
    if event.envelope.type not in _JOURNAL_TYPES:
        return None
    if getattr(event, "workflow_id", None) != workflow_id:
        return None
    return cast("JournalEvent", event)


def _check_id(field: str, value: str) -> None:
    if not value or len(value) > _MAX_ID:
        raise RequestError(f"{field}={value!r}: use 1-{_MAX_ID} characters")
    _check_text(field, value)


def _check_text(field: str, value: str) -> None:
    if "\x00" in value:
        raise RequestError(
            f"{field}={value!r} holds a NUL character (U+0000), which the read models "
            "(PostgreSQL text) cannot store; remove it"
        )


def _check_json(field: str, value: object) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise RequestError(f"{field} is not JSON: {e}; pass dicts, lists, str, numbers") from None


def _check_request(
    definition: str | None,
    spec: JsonValue,
    input: JsonValue,
    priority: int,
    version: int | None,
) -> None:
    if (definition is None) == (spec is None):
        raise RequestError(
            "give either a definition name or an inline spec (not both, not neither)"
        )
    if definition is not None and not definition:
        raise RequestError("definition is empty; name a registered workflow definition")
    if version is not None and version < 1:
        raise RequestError(f"version={version}: versions start at 1 (None: the latest)")
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise RequestError(f"priority={priority}: use {PRIORITY_MIN} (lowest) to {PRIORITY_MAX}")
    _check_json("input", input)
    _check_json("spec", spec)


# -- JSON views (CLI --json, logs) ----------------------------------------------------


def state_to_json(state: WorkflowState) -> dict[str, JsonValue]:
    """A JSON view of a workflow's state (what ``agentlog status --json`` prints)."""
    return {
        "workflow_id": state.workflow_id,
        "status": state.status.value,
        "definition": state.definition,
        "version": state.version,
        "priority": state.priority,
        "input": state.input,
        "output": state.output,
        "error": _failure(state.error),
        "failed_step": state.failed_step,
        "started_at": _iso(state.started_at),
        "ended_at": _iso(state.ended_at),
        "idempotency_key": state.idempotency_key,
        "labels": dict(state.labels),
        "steps": {
            name: {
                "status": step.status.value,
                "run": step.run,
                "output": step.output,
                "error": _failure(step.error),
                "tasks": [_task_json(task) for task in step.tasks],
            }
            for name, step in state.steps.items()
        },
    }


def event_to_json(event: Event) -> dict[str, JsonValue]:
    """A JSON view of any event: its fields, timestamps as ISO 8601, ``type`` first."""
    body = _jsonable(dataclasses.asdict(event))
    assert isinstance(body, dict)
    return {"type": event.envelope.type, **body}


def _task_json(task: TaskState) -> dict[str, JsonValue]:
    return {
        "item": task.item,
        "status": task.status.value,
        "task_id": task.task_id,
        "attempt": task.attempt,
        "agent_kind": task.scheduled.agent_kind,
        "deadline": _iso(task.deadline),
        "retry_at": _iso(task.retry_at),
        "output": task.output,
        "error": _failure(task.error),
    }


def _failure(failure: Any) -> JsonValue:
    if failure is None:
        return None
    return {"error_kind": failure.error_kind, "message": failure.message}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _jsonable(value: Any) -> JsonValue:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value  # type: ignore[no-any-return]
