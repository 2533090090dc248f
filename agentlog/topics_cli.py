"""``agentlog topics`` and ``agentlog schemas``: the topic catalogue and the event contract."""

from __future__ import annotations

import argparse
import json

from agentlog import cli as base


def add_topics_command(subparsers: base.Subparsers) -> None:
    """Register ``agentlog topics {create,list}``."""
    parser = base.add_command(
        subparsers,
        "topics",
        help="create or list agentlog's topics",
        description=(
            "Create agentlog's topics (idempotent: existing topics are left alone) or list\n"
            "the catalogue. Partition count and replication factor come from\n"
            "AGENTLOG_PARTITIONS and AGENTLOG_REPLICATION_FACTOR; requests, journal and\n"
            "responses are co-partitioned and must have equal partition counts."
        ),
        examples=(
            "  agentlog topics create\n"
            "  agentlog topics create --kind reviewer --kind deployer\n"
            "  AGENTLOG_REPLICATION_FACTOR=3 agentlog topics create --kafka broker1:9092\n"
            "  agentlog topics list --json"
        ),
    )
    parser.add_argument("action", choices=("create", "list"), help="what to do")
    parser.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="KIND",
        help="also the tasks topic of this agent kind (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    base.add_connection_options(parser)
    parser.set_defaults(run=run_topics)


async def run_topics(args: argparse.Namespace) -> int:
    """Create or list the topics; print one line per topic."""
    from agentlog.streams.topics import CATALOGUE, ensure_topics, tasks_topic

    settings = base.settings_from_args(args)
    base.configure_logging(settings.log_level)
    specs = [*CATALOGUE, *(tasks_topic(kind) for kind in args.kind)]
    if args.action == "list":
        if args.json:
            rows = [
                {
                    "topic": settings.topic(s.name),
                    "key": s.key,
                    "compacted": s.compacted,
                    "events": sorted(s.events),
                }
                for s in specs
            ]
            print(json.dumps(rows, indent=2))
        else:
            for s in specs:
                print(f"{settings.topic(s.name):32s} key={s.key:14s} {' '.join(sorted(s.events))}")
        return base.EXIT_OK
    created = await ensure_topics(settings, specs)
    if args.json:
        print(json.dumps(created, indent=2))
    else:
        for topic, new in created.items():
            print(f"{topic:32s} {'created' if new else 'exists'}")
    return base.EXIT_OK


def add_schemas_command(subparsers: base.Subparsers) -> None:
    """Register ``agentlog schemas``."""
    parser = base.add_command(
        subparsers,
        "schemas",
        help="list the event schemas with their fingerprints and files",
        description=(
            "The event contract: every Avro schema with its topic, its CRC-64-AVRO\n"
            "fingerprint (as written after C3 01 in single-object encoding) and the\n"
            ".avsc file another language can decode from. See docs/events.md."
        ),
        examples="  agentlog schemas\n  agentlog schemas --json",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=run_schemas)


def run_schemas(args: argparse.Namespace) -> int:
    """Print the schema catalogue."""
    from agentlog.schemas.catalogue import SchemaCatalogue

    catalogue = SchemaCatalogue.default()
    rows = [
        {
            "name": s.name,
            "topic": s.topic,
            "fingerprint": s.fingerprint.hex(),
            "file": str(s.path),
        }
        for s in (catalogue.get(n) for n in catalogue.names())
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['name']:22s} {row['topic']:11s} {row['fingerprint']}  {row['file']}")
    return base.EXIT_OK
