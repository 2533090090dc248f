"""``agentlog history`` (timeline, export, import) and ``agentlog verify`` (replay histories).

Register :data:`REPLAY_COMMANDS` in :func:`agentlog.cli.registered_commands`.
This module imports only :mod:`agentlog.cli`, :mod:`agentlog.client_cli` (whose
registry and JSON helpers it shares) and the standard library at the top;
handlers import the rest, which keeps ``agentlog --help`` fast.

Exit codes of ``verify``: 0 every history makes the same decisions, 1 one
differs, 2 a history (or a flag) could not be used: unreadable file, unknown
schema, a definition the registry lacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import agentlog.cli as base
from agentlog.client_cli import add_registry_options, print_json, registry_of
from agentlog.errors import ConfigError

if TYPE_CHECKING:
    from agentlog.schemas.events import JsonValue
    from agentlog.workflow import JournalEvent, WorkflowRegistry

    from .history import History
    from .replay import Verification

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# -- agentlog verify ---------------------------------------------------------------------

_VERIFY_DESCRIPTION = """\
Replay recorded workflow histories through this orchestrator's core and report
the first decision that differs from the recorded one: the input (by index,
counting from 0), the recorded events and the events this code decides, field
by field. Use it before deploying new orchestrator or workflow code, on
histories exported from production (`agentlog history ID --export FILE`) or
committed as fixtures (tests/replay/histories/).

Each PATH is a history file or a directory of *.avro history files. Requests
that named a definition are resolved from the registry, as the orchestrator
does: the five demos (unless --no-demos) plus every --definitions source.
Nothing connects to a server.

Exit status: 0 every history matches, 1 a decision differs, 2 a history could
not be verified (unreadable file, unknown schema, a definition the registry
lacks) or a flag is wrong."""

_VERIFY_EXAMPLES = """\
  agentlog verify tests/replay/histories
  agentlog verify wf-1234.avro --definitions flows.json --no-demos
  agentlog verify tests/replay/divergent/pr-deploy-edited.avro     # exits 1
  agentlog verify histories/ --json | jq '.histories[] | select(.status != "ok")'"""


def add_verify_command(subparsers: Subparsers) -> None:
    """Register ``agentlog verify``."""
    parser = base.add_command(
        subparsers,
        "verify",
        help="replay recorded histories; report the first decision that differs",
        description=_VERIFY_DESCRIPTION,
        examples=_VERIFY_EXAMPLES,
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="history files or directories"
    )
    add_registry_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(run=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    """Verify every history; print a line per history and the first divergence of each."""
    base.configure_logging("WARNING")
    registry = registry_of(args)
    results = [_verify_one(path, registry) for path in _expand(args.paths)]
    counts = {
        status: sum(1 for r in results if r["status"] == status)
        for status in ("ok", "diverged", "error")
    }
    for result in results:
        if result["status"] == "error":
            print(f"error: {result['error']}", file=sys.stderr)
    if args.json:
        print_json({"ok": counts["ok"] == len(results), "counts": counts, "histories": results})
    else:
        for result in results:
            _print_result(result)
        print(
            f"{len(results)} histor{'y' if len(results) == 1 else 'ies'}: {counts['ok']} ok, "
            f"{counts['diverged']} diverged, {counts['error']} could not be verified"
        )
    if counts["error"]:
        return base.EXIT_USAGE
    return base.EXIT_FAILURE if counts["diverged"] else base.EXIT_OK


def _expand(paths: list[Path]) -> list[Path | tuple[Path, str]]:
    from .history_file import SUFFIX, history_files

    found: list[Path | tuple[Path, str]] = []
    for path in paths:
        files = history_files(path)
        if not files:
            found.append((path, f"{path}: the directory holds no *{SUFFIX} history files"))
        found.extend(files)
    return found


def _verify_one(path: Path | tuple[Path, str], registry: WorkflowRegistry) -> dict[str, Any]:
    from .history import HistoryError
    from .history_file import read_history
    from .replay import divergence_lines, verification_to_json, verify_history

    if isinstance(path, tuple):
        return {"file": str(path[0]), "status": "error", "error": path[1]}
    try:
        history = read_history(path)
        verification: Verification = verify_history(history, registry)
    except HistoryError as e:
        message = str(e) if str(e).startswith(f"{path}:") else f"{path}: {e}"
        return {"file": str(path), "status": "error", "error": message}
    result: dict[str, Any] = {"file": str(path), **verification_to_json(verification)}
    if verification.divergence is not None:
        result["report"] = divergence_lines(verification.divergence)
    return result


def _print_result(result: dict[str, Any]) -> None:
    status, file = result["status"], result["file"]
    if status == "error":
        print(f"error     {file}")
        return
    what = _definition(result["definition"], result["version"])
    if status == "ok":
        print(f"ok        {file}  ({what}, {result['inputs']} inputs)")
        return
    index = result["divergence"]["index"]
    print(f"DIVERGED  {file}  ({what}, input {index} of {result['inputs']} differs)")
    for line in result["report"]:
        print(f"  {line}")


# -- agentlog history --------------------------------------------------------------------

_HISTORY_DESCRIPTION = """\
Show a workflow's history: every input the orchestrator decided on (requests,
agent answers, lock decisions, timers that fired), in order, each with the
journal events it led to. Read from the workflow's partition of the journal,
requests and responses topics (no database needed), or from a file.

--export FILE writes the history as an Avro object container file (one record
per input: the input event, the decision time, the recorded decisions) for
`agentlog verify` and for committing as a test fixture. --import FILE reads
such a file instead of the broker. The broker must still hold the workflow's
inputs (topic retention): export histories you want to keep.

An exported history holds the inputs that led to decisions; inputs the
orchestrator ignored (duplicates, late answers, progress) are left out, as the
topics do not record when it read them."""

_HISTORY_EXAMPLES = """\
  agentlog history 5f0392a8-…                          # the timeline
  agentlog history 5f0392a8-… --export wf.avro         # then: agentlog verify wf.avro
  agentlog history --import wf.avro --json | jq '.entries[].input.type'
  agentlog history 5f0392a8-… --kafka 127.0.0.1:9092 --topic-prefix team-a --json"""


def add_history_command(subparsers: Subparsers) -> None:
    """Register ``agentlog history``."""
    from agentlog.agents.orchestrator.cli import add_topic_prefix_option

    parser = base.add_command(
        subparsers,
        "history",
        help="a workflow's inputs and decisions; export/import as an Avro file",
        description=_HISTORY_DESCRIPTION,
        examples=_HISTORY_EXAMPLES,
    )
    parser.add_argument("workflow_id", nargs="?", help="the workflow id (read from the broker)")
    parser.add_argument(
        "--export", type=Path, metavar="FILE", help="write the history to FILE (Avro container)"
    )
    parser.add_argument(
        "--import",
        dest="import_file",
        type=Path,
        metavar="FILE",
        help="read the history from FILE instead of the broker",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    base.add_connection_options(parser)
    add_topic_prefix_option(parser)
    parser.set_defaults(run=run_history)


async def run_history(args: argparse.Namespace) -> int:
    """Read a history (broker or file); print it or export it."""
    from .history import HistoryError
    from .history_file import read_history, write_history

    if (args.workflow_id is None) == (args.import_file is None):
        raise ConfigError(
            "workflow_id",
            args.workflow_id,
            "give a workflow id or --import FILE (one of them)",
            "E.g. `agentlog history 5f0392a8-…` or `agentlog history --import wf.avro`.",
        )
    if args.import_file is not None and args.export is not None:
        raise ConfigError(
            "--export", str(args.export), "cannot be used with --import", "Copy the file instead."
        )
    try:
        if args.import_file is not None:
            base.configure_logging("WARNING")
            history = read_history(args.import_file)
        else:
            loaded = await _from_broker(args)
            if loaded is None:
                print(
                    f"error: no decision for workflow {args.workflow_id!r} in the journal; "
                    "check the id, the --topic-prefix, and that an orchestrator runs",
                    file=sys.stderr,
                )
                return base.EXIT_FAILURE
            history = loaded
        if args.export is not None:
            write_history(args.export, history)
    except HistoryError as e:
        print(f"error: {e}", file=sys.stderr)
        return base.EXIT_FAILURE
    if args.export is not None:
        _print_exported(history, args.export, as_json=args.json)
    elif args.json:
        from .history import history_to_json

        print_json(history_to_json(history))
    else:
        _print_timeline(history)
    return base.EXIT_OK


async def _from_broker(args: argparse.Namespace) -> History | None:
    from agentlog.agents.orchestrator.cli import settings_with_prefix

    from .history_export import export_history

    settings = settings_with_prefix(args)
    base.configure_logging(settings.log_level)
    return await export_history(settings, args.workflow_id)


def _print_exported(history: History, path: Path, *, as_json: bool) -> None:
    summary: dict[str, JsonValue] = {
        "file": str(path),
        "workflow_id": history.workflow_id,
        "definition": history.definition,
        "version": history.version,
        "inputs": len(history.entries),
        "decisions": len(history.journal),
    }
    if as_json:
        print_json(summary)
        return
    print(
        f"exported workflow {history.workflow_id} "
        f"({_definition(history.definition, history.version)}): "
        f"{summary['inputs']} inputs, {summary['decisions']} decisions -> {path}"
    )


def _print_timeline(history: History) -> None:
    from .history import describe_input

    print(
        f"workflow {history.workflow_id}  {_definition(history.definition, history.version)}  "
        f"{len(history.entries)} inputs, {len(history.journal)} decisions"
    )
    if history.source:
        print(f"  source: {history.source}")
    if history.note:
        print(f"  note: {history.note}")
    for index, entry in enumerate(history.entries):
        when = entry.decided_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        print(f"[{index}] {when}  {describe_input(entry.input)}")
        for event in entry.decisions:
            print(f"      {_event_line(event)}")
        if not entry.decisions:
            print("      (decided nothing)")


def _definition(name: str | None, version: int | None) -> str:
    """``"pr-deploy v1"``; ``"pr-deploy"`` when a request named no version."""
    if name is None:
        return "no definition"
    return name if version is None else f"{name} v{version}"


def _event_line(event: JournalEvent) -> str:
    parts = [type(event).__name__]
    task_id = getattr(event, "task_id", None)
    if task_id:  # <step>/<run>/<item>/<attempt>, or .../skip, .../join
        parts.append(f"task={task_id.removeprefix(event.workflow_id + '/')}")
    names = ("agent_kind", "resource", "fencing_token", "error_kind", "reason", "message")
    for name in ("step", *names) if not task_id else names:
        value = getattr(event, name, None)
        if value not in (None, ""):
            parts.append(f"{name}={value}")
    for name in ("retry_at", "deadline"):
        value = getattr(event, name, None)
        if value is not None:
            parts.append(f"{name}={value.isoformat()}")
    if type(event).__name__ in ("StepCompleted", "WorkflowSucceeded"):
        output = json.dumps(getattr(event, "output", None), ensure_ascii=False)
        parts.append(f"output={output[:120]}")
    return "  ".join(parts)


#: Every replay command, for :func:`agentlog.cli.registered_commands`.
REPLAY_COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    add_history_command,
    add_verify_command,
)
