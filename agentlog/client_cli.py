"""Client commands: ``agentlog definitions|submit|status|watch|cancel|signal``.

Register each ``add_*_command`` of :data:`CLIENT_COMMANDS` in ``agentlog.cli.COMMANDS``.
Every command that talks to the broker takes the connection options and
``--topic-prefix``; every command prints text, or JSON with ``--json``.
Bad arguments exit 2 with ``error: …`` and produce nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import agentlog.cli as base
from agentlog.agents.orchestrator.cli import add_topic_prefix_option, settings_with_prefix
from agentlog.errors import ConfigError

if TYPE_CHECKING:
    from agentlog.client import AgentlogClient
    from agentlog.schemas.events import JsonValue
    from agentlog.workflow import WorkflowRegistry, WorkflowSpec, WorkflowState

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# -- agentlog definitions --------------------------------------------------------------


def add_definitions_command(subparsers: Subparsers) -> None:
    """Register ``agentlog definitions``."""
    parser = base.add_command(
        subparsers,
        "definitions",
        help="list the workflow definitions an orchestrator runs",
        description=(
            "List the built-in workflow definitions (the five demos) plus those of\n"
            "--definitions sources, with versions, steps and an example input.\n"
            "Pass the same sources as to `agentlog orchestrator run`."
        ),
        examples="  agentlog definitions\n  agentlog definitions --json --definitions flows.json",
    )
    add_registry_options(parser)
    _add_json_option(parser)
    parser.set_defaults(run=run_definitions)


def run_definitions(args: argparse.Namespace) -> int:
    """Print the registry."""
    registry = registry_of(args)
    if args.json:
        print_json([_definition_json(spec) for spec in registry])
        return base.EXIT_OK
    for spec in registry:
        agents = ", ".join(sorted({s.agent or f"signal:{s.signal}" for s in spec.steps}))
        print(f"{spec.name} v{spec.version}  {len(spec.steps)} steps  agents: {agents}")
        if spec.description:
            print(f"    {spec.description}")
        print(f"    example input: {json.dumps(spec.example_input)}")
    return base.EXIT_OK


# -- agentlog submit ---------------------------------------------------------------------


def add_submit_command(subparsers: Subparsers) -> None:
    """Register ``agentlog submit``."""
    parser = base.add_command(
        subparsers,
        "submit",
        help="start a workflow (produces a WorkflowRequested)",
        description=(
            "Start a workflow by producing one WorkflowRequested event; print its id.\n"
            "Name a definition (an orchestrator must have it) or pass --spec FILE with\n"
            "an inline spec. --input defaults to the example input of a known definition.\n"
            "With --wait, wait until it ends and exit 0 only if it succeeded."
        ),
        examples=(
            "  agentlog submit triage-chain\n"
            '  agentlog submit pr-deploy --input \'{"repo": "acme/shop", "pr": 7}\' --wait 60\n'
            "  agentlog submit --spec flow.json --input @input.json --json"
        ),
    )
    parser.add_argument("definition", nargs="?", help="a registered definition name")
    parser.add_argument("--spec", type=Path, metavar="FILE", help="an inline spec (JSON file)")
    parser.add_argument("--input", metavar="JSON", help="the input: JSON text, or @FILE")
    parser.add_argument("--version", type=int, metavar="N", help="definition version [latest]")
    parser.add_argument("--priority", type=int, default=3, metavar="1-5", help="priority [3]")
    parser.add_argument("--idempotency-key", metavar="KEY", help="start at most one workflow")
    parser.add_argument("--workflow-id", metavar="ID", help="the id to use [generated]")
    parser.add_argument(
        "--label", action="append", default=[], metavar="K=V", help="a label (repeatable)"
    )
    parser.add_argument(
        "--wait", type=float, metavar="SECONDS", help="wait until it ends, at most SECONDS"
    )
    base.add_connection_options(parser)
    add_topic_prefix_option(parser)
    add_registry_options(parser)
    _add_json_option(parser)
    parser.set_defaults(run=run_submit)


async def run_submit(args: argparse.Namespace) -> int:
    """Produce the request; with --wait, wait for the end."""
    from agentlog.client import AgentlogClient, RequestError, WaitTimeoutError

    settings = settings_with_prefix(args)
    base.configure_logging(settings.log_level)
    spec = _read_spec(args.spec) if args.spec else None
    if (args.definition is None) == (spec is None):
        raise ConfigError("definition", args.definition, "name a definition or pass --spec", "")
    input_value = _input(args, spec)
    labels = _labels(args.label)
    async with AgentlogClient(settings, source="cli") as client:
        try:
            workflow_id = await client.submit(
                args.definition or spec,
                input_value,
                version=args.version,
                priority=args.priority,
                idempotency_key=args.idempotency_key,
                workflow_id=args.workflow_id,
                labels=labels,
            )
        except RequestError as e:
            print(f"error: {e}", file=sys.stderr)
            return base.EXIT_USAGE
        if args.wait is None:
            if args.json:
                print_json({"workflow_id": workflow_id})
            else:
                print(workflow_id)
            return base.EXIT_OK
        try:
            state = await client.wait(workflow_id, timeout=args.wait)
        except WaitTimeoutError as e:
            print(f"error: {e}", file=sys.stderr)
            return base.EXIT_FAILURE
    _print_state(state, as_json=args.json)
    return base.EXIT_OK if state.status.value == "succeeded" else base.EXIT_FAILURE


# -- agentlog status / watch -------------------------------------------------------------


def add_status_command(subparsers: Subparsers) -> None:
    """Register ``agentlog status``."""
    parser = base.add_command(
        subparsers,
        "status",
        help="show a workflow's state, folded from its journal",
        description=(
            "Show a workflow's state: its status, every step and its output,\n"
            "folded from the workflow's journal partition (no database needed).\n"
            "Exits 1 if the orchestrator has decided nothing for that id yet."
        ),
        examples="  agentlog status 5f0392a8-…\n  agentlog status 5f0392a8-… --json",
    )
    parser.add_argument("workflow_id", help="the workflow id")
    base.add_connection_options(parser)
    add_topic_prefix_option(parser)
    _add_json_option(parser)
    parser.set_defaults(run=run_status)


async def run_status(args: argparse.Namespace) -> int:
    """Print the folded state."""
    from agentlog.client import AgentlogClient

    settings = settings_with_prefix(args)
    base.configure_logging(settings.log_level)
    async with AgentlogClient(settings, source="cli") as client:
        state = await client.status(args.workflow_id)
    if state is None:
        print(
            f"error: no decision for workflow {args.workflow_id!r} in the journal yet; "
            "check the id, and that an orchestrator runs",
            file=sys.stderr,
        )
        return base.EXIT_FAILURE
    _print_state(state, as_json=args.json)
    return base.EXIT_OK


def add_watch_command(subparsers: Subparsers) -> None:
    """Register ``agentlog watch``."""
    parser = base.add_command(
        subparsers,
        "watch",
        help="follow a workflow's journal events live",
        description=(
            "Print a workflow's journal events, its history first and then live,\n"
            "until it ends (or forever with --follow). --json prints one JSON object\n"
            "per line."
        ),
        examples="  agentlog watch 5f0392a8-…\n  agentlog watch 5f0392a8-… --json | jq .type",
    )
    parser.add_argument("workflow_id", help="the workflow id")
    parser.add_argument("--follow", action="store_true", help="keep going after it ends")
    base.add_connection_options(parser)
    add_topic_prefix_option(parser)
    _add_json_option(parser)
    parser.set_defaults(run=run_watch)


async def run_watch(args: argparse.Namespace) -> int:
    """Print events until the workflow ends."""
    from agentlog.client import AgentlogClient, event_to_json
    from agentlog.workflow import evolve

    settings = settings_with_prefix(args)
    base.configure_logging(settings.log_level)
    state: WorkflowState | None = None
    async with (
        AgentlogClient(settings, source="cli") as client,
        contextlib.aclosing(client.watch(args.workflow_id)) as events,
    ):
        async for event in events:
            if args.json:
                print(json.dumps(event_to_json(event), ensure_ascii=False), flush=True)
            else:
                print(_event_line(event), flush=True)
            state = evolve(state, event)
            if state is not None and state.status.terminal and not args.follow:
                break
    return base.EXIT_OK


# -- agentlog cancel / signal -----------------------------------------------------------


def add_cancel_command(subparsers: Subparsers) -> None:
    """Register ``agentlog cancel``."""
    parser = base.add_command(
        subparsers,
        "cancel",
        help="cancel a running workflow (produces a CancelRequested)",
        description="Ask the orchestrator to cancel a workflow; a no-op once it ended.",
        examples="  agentlog cancel 5f0392a8-… --reason 'wrong branch'",
    )
    parser.add_argument("workflow_id", help="the workflow id")
    parser.add_argument("--reason", default="", help="why (recorded in WorkflowCancelled)")
    base.add_connection_options(parser)
    add_topic_prefix_option(parser)
    parser.set_defaults(run=run_cancel)


async def run_cancel(args: argparse.Namespace) -> int:
    """Produce the cancellation."""
    from agentlog.client import AgentlogClient, RequestError

    settings = settings_with_prefix(args)
    base.configure_logging(settings.log_level)
    async with AgentlogClient(settings, source="cli") as client:
        try:
            await client.cancel(args.workflow_id, args.reason)
        except RequestError as e:
            print(f"error: {e}", file=sys.stderr)
            return base.EXIT_USAGE
        await _warn_if_unknown(client, args.workflow_id, "the cancellation")
    print(f"cancel requested for {args.workflow_id}")
    return base.EXIT_OK


def add_signal_command(subparsers: Subparsers) -> None:
    """Register ``agentlog signal``."""
    parser = base.add_command(
        subparsers,
        "signal",
        help="send a signal to a workflow (produces a SignalSent)",
        description="Send a named signal, e.g. a human approval, to a workflow.",
        examples='  agentlog signal 5f0392a8-… approve --payload \'{"by": "alice"}\'',
    )
    parser.add_argument("workflow_id", help="the workflow id")
    parser.add_argument("name", help="the signal name a step waits for")
    parser.add_argument("--payload", metavar="JSON", help="the payload: JSON text, or @FILE")
    base.add_connection_options(parser)
    add_topic_prefix_option(parser)
    parser.set_defaults(run=run_signal)


async def run_signal(args: argparse.Namespace) -> int:
    """Produce the signal."""
    from agentlog.client import AgentlogClient, RequestError

    settings = settings_with_prefix(args)
    base.configure_logging(settings.log_level)
    payload = _json_arg("--payload", args.payload) if args.payload is not None else None
    async with AgentlogClient(settings, source="cli") as client:
        try:
            await client.signal(args.workflow_id, args.name, payload)
        except RequestError as e:
            print(f"error: {e}", file=sys.stderr)
            return base.EXIT_USAGE
        await _warn_if_unknown(client, args.workflow_id, "the signal")
    print(f"signal {args.name} sent to {args.workflow_id}")
    return base.EXIT_OK


#: Every client command, to append to ``agentlog.cli.COMMANDS``.
CLIENT_COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    add_definitions_command,
    add_submit_command,
    add_status_command,
    add_watch_command,
    add_cancel_command,
    add_signal_command,
)

# -- helpers -----------------------------------------------------------------------------


def _add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def add_registry_options(parser: argparse.ArgumentParser) -> None:
    """``--definitions SOURCE`` (repeatable) and ``--no-demos``."""
    parser.add_argument(
        "--definitions",
        action="append",
        default=[],
        metavar="SOURCE",
        help="more definitions: a JSON file of specs or module:attr (repeatable)",
    )
    parser.add_argument("--no-demos", action="store_true", help="leave out the five demos")


def registry_of(args: argparse.Namespace) -> WorkflowRegistry:
    """The definitions named by :func:`add_registry_options`'s flags.

    With the orchestrator's default workflow deadline
    (``AGENTLOG_DEFAULT_WORKFLOW_TIMEOUT_MS``): ``verify`` must decide as it does.
    """
    from agentlog.agents.orchestrator.definitions import build_registry
    from agentlog.settings import Settings

    return build_registry(
        args.definitions,
        demos=not args.no_demos,
        default_timeout_ms=Settings.from_env().default_workflow_timeout_ms,
    )


def _read_spec(path: Path) -> WorkflowSpec:
    from agentlog.workflow import SpecError, WorkflowSpec

    try:
        return WorkflowSpec.from_json(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError("--spec", str(path), f"cannot read it: {e}", "Check the path.") from None
    except SpecError as e:
        raise ConfigError("--spec", str(path), f"invalid spec: {e}", "Fix the spec.") from None


def _input(args: argparse.Namespace, spec: WorkflowSpec | None) -> JsonValue:
    if args.input is not None:
        return _json_arg("--input", args.input)
    if spec is not None:
        return spec.example_input
    known = registry_of(args).find(args.definition, args.version)
    if known is None:
        print(
            f"warning: definition {args.definition!r} is not one this command knows (the demos"
            " and --definitions): submitting it with input {}; an orchestrator that does not"
            " know it either rejects it (see `agentlog status ID`, or use --wait)",
            file=sys.stderr,
        )
        return {}
    return known.example_input


#: Seconds ``signal`` / ``cancel`` spend looking for the workflow's journal at most.
_UNKNOWN_CHECK_S = 2.0


async def _warn_if_unknown(client: AgentlogClient, workflow_id: str, what: str) -> None:
    """A warning on stderr when no orchestrator has journaled ``workflow_id`` (yet).

    Finding out reads the workflow's journal partition; on a long one the check
    gives up after :data:`_UNKNOWN_CHECK_S` rather than delay the command.
    """
    try:
        async with asyncio.timeout(_UNKNOWN_CHECK_S):
            state = await client.status(workflow_id)
    except TimeoutError:
        return
    if state is None:
        print(
            f"warning: workflow {workflow_id} has no journal (never started, or not yet):"
            f" {what} was sent, and the orchestrator ignores it unless the workflow starts",
            file=sys.stderr,
        )


def _json_arg(flag: str, text: str) -> JsonValue:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(flag, text, f"cannot read the file: {e}", "Check the path.") from None
    try:
        value: JsonValue = json.loads(text)
    except ValueError as e:
        raise ConfigError(
            flag, text, f"not JSON ({e})", "Quote it for the shell, e.g. '{\"pr\": 42}'."
        ) from None
    return value


def _labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--label", item, "not KEY=VALUE", "Use e.g. --label team=risk.")
        labels[key] = value
    return labels


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout."""
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _print_state(state: WorkflowState, *, as_json: bool) -> None:
    from agentlog.client import state_to_json

    if as_json:
        print_json(state_to_json(state))
        return
    print(f"{state.workflow_id}  {state.status.value}  {state.definition} v{state.version}")
    if state.error is not None:
        where = f" (step {state.failed_step})" if state.failed_step else ""
        print(f"  error{where}: {state.error.error_kind}: {state.error.message}")
    for name, step in state.steps.items():
        attempts = ",".join(str(t.attempt) for t in step.tasks) or "-"
        print(f"  {name:<20} {step.status.value:<10} run {step.run}  attempt {attempts}")
    if state.output is not None:
        print(f"  output: {json.dumps(state.output, ensure_ascii=False)}")


def _event_line(event: Any) -> str:
    when = event.envelope.occurred_at.strftime("%H:%M:%S.%f")[:-3]
    parts = [when, f"{event.envelope.type:<18}"]
    for field in (
        "step",
        "attempt",
        "agent_kind",
        "resource",
        "fencing_token",
        "error_kind",
        "reason",
        "message",
    ):
        value = getattr(event, field, None)
        if value not in (None, ""):
            parts.append(f"{field}={value}")
    if event.envelope.type in ("StepCompleted", "WorkflowSucceeded"):
        parts.append(f"output={json.dumps(event.output, ensure_ascii=False)[:200]}")
    return "  ".join(parts)


def _definition_json(spec: WorkflowSpec) -> dict[str, JsonValue]:
    steps: list[JsonValue] = [s.name for s in spec.steps]
    kinds = {s.agent for s in spec.steps if s.agent}
    agents: list[JsonValue] = [*sorted(kinds)]
    required: list[JsonValue] = list(spec.required_input)
    return {
        "name": spec.name,
        "version": spec.version,
        "description": spec.description,
        "steps": steps,
        "agents": agents,
        "required_input": required,
        "example_input": spec.example_input,
        "spec": spec.to_json(),
    }
