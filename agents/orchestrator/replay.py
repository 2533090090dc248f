"""``agentlog verify``: replay recorded histories through the current core, find the first change.

For each input of a :class:`~.history.History`, in order, :func:`verify_history`
calls ``handle`` with the state folded from the recorded journal before it, the
recorded decision time and the recorded idempotency-key claim, exactly as the
runner did, and compares the events it returns with the recorded ones, field
by field. The first input whose decisions differ is the :class:`Divergence`;
nothing after it is checked (its state would no longer be the recorded one).

Values are compared by their JSON views (``1``, ``1.0`` and ``true`` differ;
tuples and lists do not), envelopes field by field: a decision that gets a new
id or another ``occurred_at`` is a different decision.

Pure: no I/O; nothing here imports fastavro or aiokafka.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime

from agentlog.schemas.events import JsonValue
from agentlog.workflow import (
    Input,
    JournalError,
    JournalEvent,
    WorkflowRegistry,
    WorkflowState,
    fold,
    handle,
)

from .history import History, HistoryError, describe_event, describe_input, to_json

#: ``field`` of a difference where one side has no event at that position.
MISSING_EVENT = "(event)"


@dataclass(frozen=True, slots=True)
class FieldDifference:
    """One field of one decision event that differs.

    Attributes:
        event: the event's position among the input's decisions, from 0.
        field: the field, dotted for envelope fields (``"envelope.occurred_at"``);
            ``"type"`` when the event types differ, :data:`MISSING_EVENT` when
            one side has no event at ``event``.
        expected: the recorded value (JSON view; the whole event when missing).
        actual: the value the current code decided (JSON view).
    """

    event: int
    field: str
    expected: JsonValue
    actual: JsonValue


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first input whose decisions differ from the recorded ones.

    Attributes:
        index: the input's position in the history, from 0.
        input: the input.
        decided_at: its recorded decision time.
        expected: the recorded decisions.
        actual: what the current code decides (empty when it raised).
        differences: field by field, in event order.
        problem: set when the current code could not decide or fold at all
            (it raised, or cannot fold the recorded journal).
    """

    index: int
    input: Input
    decided_at: datetime
    expected: tuple[JournalEvent, ...]
    actual: tuple[JournalEvent, ...]
    differences: tuple[FieldDifference, ...]
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of replaying one history.

    Attributes:
        history: the history replayed.
        checked: inputs whose decisions matched (all of them when ``ok``).
        divergence: the first input that differs, or None.
    """

    history: History
    checked: int
    divergence: Divergence | None

    @property
    def ok(self) -> bool:
        """True when the current code makes every recorded decision."""
        return self.divergence is None


def check_definitions(history: History, registry: WorkflowRegistry) -> None:
    """Raise unless ``registry`` has the definition the recorded workflow started with.

    A request that named a definition (no inline spec) is resolved from the
    registry on replay; without that definition and version the replay would
    only show a rejection. Inline specs and recorded rejections need nothing.

    Raises:
        HistoryError: naming the definition, the versions known and the fix.
    """
    started, request = history.started, history.request
    if started is None or request is None or request.spec is not None:
        return
    if registry.find(started.definition, started.version) is not None:
        return
    known = registry.versions(started.definition)
    have = f"versions {', '.join(map(str, known))}" if known else "no version"
    raise HistoryError(
        f"workflow {history.workflow_id} ran definition {started.definition!r} "
        f"v{started.version}, and the registry has {have} of it; pass the definitions "
        "it ran with --definitions (a JSON file or module:attr)"
    )


def verify_history(history: History, registry: WorkflowRegistry) -> Verification:
    """Replay ``history`` through the current core and find the first decision that differs.

    Raises:
        HistoryError: the registry lacks the definition the history ran
            (:func:`check_definitions`).
    """
    check_definitions(history, registry)
    state: WorkflowState | None = None
    for index, entry in enumerate(history.entries):
        expected = entry.decisions
        try:
            decision = handle(
                state,
                entry.input,
                registry=registry,
                now=entry.decided_at,
                idempotency_keys=entry.idempotency_keys,
            )
        except Exception as e:  # noqa: BLE001 - the core must never raise; report it, not crash
            problem = f"the core raised {type(e).__name__}: {e}"
            return _diverged(history, index, (), problem=problem)
        differences = compare_decisions(expected, decision.events)
        if differences:
            return _diverged(history, index, decision.events, differences=differences)
        try:
            state = fold(expected, state)
        except JournalError as e:
            problem = f"the current code cannot fold the recorded decisions: {e}"
            return _diverged(history, index, decision.events, problem=problem)
    return Verification(history=history, checked=len(history.entries), divergence=None)


def _diverged(
    history: History,
    index: int,
    actual: tuple[JournalEvent, ...],
    *,
    differences: tuple[FieldDifference, ...] = (),
    problem: str = "",
) -> Verification:
    entry = history.entries[index]
    divergence = Divergence(
        index=index,
        input=entry.input,
        decided_at=entry.decided_at,
        expected=entry.decisions,
        actual=actual,
        differences=differences,
        problem=problem,
    )
    return Verification(history=history, checked=index, divergence=divergence)


def compare_decisions(
    expected: tuple[JournalEvent, ...], actual: tuple[JournalEvent, ...]
) -> tuple[FieldDifference, ...]:
    """Every field that differs between two decisions, event by event."""
    found: list[FieldDifference] = []
    for position in range(max(len(expected), len(actual))):
        if position >= len(actual):
            found.append(
                FieldDifference(position, MISSING_EVENT, to_json(expected[position]), None)
            )
        elif position >= len(expected):
            found.append(FieldDifference(position, MISSING_EVENT, None, to_json(actual[position])))
        else:
            found.extend(_compare_events(position, expected[position], actual[position]))
    return tuple(found)


def _compare_events(
    position: int, expected: JournalEvent, actual: JournalEvent
) -> list[FieldDifference]:
    if type(expected) is not type(actual):
        return [FieldDifference(position, "type", type(expected).__name__, type(actual).__name__)]
    found: list[FieldDifference] = []
    for name, want, got in _flat_fields(expected, actual):
        a, b = to_json(want), to_json(got)
        if _canonical(a) != _canonical(b):
            found.append(FieldDifference(position, name, a, b))
    return found


def _flat_fields(
    expected: object, actual: object, prefix: str = ""
) -> list[tuple[str, object, object]]:
    """``(dotted name, expected value, actual value)`` of every field, nested records flattened."""
    pairs: list[tuple[str, object, object]] = []
    for f in dataclasses.fields(expected):  # type: ignore[arg-type]
        want, got = getattr(expected, f.name), getattr(actual, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(want) and type(want) is type(got):
            pairs.extend(_flat_fields(want, got, f"{name}."))
        else:
            pairs.append((name, want, got))
    return pairs


def _canonical(value: JsonValue) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


# -- reports -------------------------------------------------------------------------


def verification_to_json(verification: Verification) -> dict[str, JsonValue]:
    """A JSON view of one result (without the file; the CLI adds it)."""
    history = verification.history
    divergence = verification.divergence
    return {
        "status": "ok" if divergence is None else "diverged",
        "workflow_id": history.workflow_id,
        "definition": history.definition,
        "version": history.version,
        "inputs": len(history.entries),
        "checked": verification.checked,
        "divergence": None if divergence is None else divergence_to_json(divergence),
    }


def divergence_to_json(divergence: Divergence) -> dict[str, JsonValue]:
    """A JSON view of a divergence: the input, both decisions, and every differing field."""
    return {
        "index": divergence.index,
        "input": to_json(divergence.input),
        "decided_at": divergence.decided_at.isoformat(),
        "problem": divergence.problem or None,
        "expected": [to_json(e) for e in divergence.expected],
        "actual": [to_json(e) for e in divergence.actual],
        "differences": [
            {"event": d.event, "field": d.field, "expected": d.expected, "actual": d.actual}
            for d in divergence.differences
        ],
    }


def divergence_lines(divergence: Divergence, *, width: int = 160) -> list[str]:
    """A human-readable report of a divergence, one line per item (no trailing newlines)."""
    lines = [
        f"input {divergence.index}: {describe_input(divergence.input)}",
        f"  decided at {divergence.decided_at.isoformat()}",
        f"  recorded ({len(divergence.expected)}): {_summary(divergence.expected)}",
        f"  current code ({len(divergence.actual)}): {_summary(divergence.actual)}",
    ]
    if divergence.problem:
        lines.append(f"  problem: {divergence.problem}")
    for d in divergence.differences:
        recorded = d.event < len(divergence.expected)
        event = divergence.expected[d.event] if recorded else divergence.actual[d.event]
        if d.field == MISSING_EVENT:
            side = "only recorded" if d.actual is None else "only decided by the current code"
            lines.append(f"  event {d.event} ({describe_event(event)}): {side}")
            continue
        lines.append(f"  event {d.event} ({describe_event(event)}) {d.field}:")
        lines.append(f"    recorded:     {_short(d.expected, width)}")
        lines.append(f"    current code: {_short(d.actual, width)}")
    return lines


def _summary(events: tuple[JournalEvent, ...]) -> str:
    return ", ".join(describe_event(e) for e in events) or "(nothing)"


def _short(value: JsonValue, width: int) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= width else f"{text[: width - 1]}…"
