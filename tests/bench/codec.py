"""Codec micro-benchmark: µs per encode and decode of one event, per implementation.

Implementations, measured in the same run, alternating within each round:

- ``fastavro``: ``schemaless_writer`` / ``schemaless_reader`` with the parsed
  schema, on the dict records fastavro reads and writes (no dataclasses, no
  header: the least fastavro does for these bytes);
- ``pure``: :class:`~agentlog.streams.codec.AvroCodec` running the generated
  Python code (what ``AGENTLOG_PURE_PYTHON_CODEC=1`` selects);
- ``compiled``: :class:`~agentlog.streams.codec.AvroCodec` running the Cython
  extension ``agentlog.streams._avro_fast`` (the default when it is built).

Events: the ``TaskRequested`` and ``TaskCompleted`` of the ping-pong benchmark
(``tests/bench/pingpong.py``), and a ``WorkflowStarted`` carrying the spec of
the ``pr-deploy`` demo workflow. Each number is the median over ``--rounds``
rounds of the mean time of a loop of calls lasting at least ``--min-time``
seconds (garbage collection off during loops, as ``timeit`` does); the machine
may be shared, so compare numbers of one run.

Run: ``python -m tests.bench.codec [--rounds 7] [--min-time 0.2]``.
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import fastavro

from agentlog.schemas.events import Event, WorkflowStarted, new_envelope
from agentlog.streams import codec as codec_module
from agentlog.streams.codec import HEADER_SIZE, AvroCodec
from agentlog.workflow.demos import PR_DEPLOY
from tests.bench.pingpong import task_completed, task_request

VARIANTS = ("fastavro", "pure", "compiled")


def sample_events() -> list[Event]:
    request = task_request(1, "wf-bench-0001")
    started = WorkflowStarted(
        envelope=new_envelope("WorkflowStarted", "wf-bench-0001", source="bench"),
        workflow_id="wf-bench-0001",
        definition=PR_DEPLOY.name,
        version=PR_DEPLOY.version,
        spec=PR_DEPLOY.to_json(),
        input={"repo": "acme/shop", "pr": 42, "environment": "staging"},
        request_event_id=request.envelope.event_id,
        labels={"team": "shop"},
    )
    return [request, task_completed(request), started]


def _per_call_us(fn: Callable[[Any], Any], arg: Any, calls: int) -> float:
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn(arg)
        elapsed = time.perf_counter_ns() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return elapsed / calls / 1000


def _calls_for(fn: Callable[[Any], Any], arg: Any, min_time: float) -> int:
    calls = 16
    while _per_call_us(fn, arg, calls) * calls < min_time * 1e6:
        calls *= 2
    return calls


def _operations(
    variant: str, event: Event, pure: AvroCodec, compiled: AvroCodec | None
) -> tuple[Callable[[Any], Any], Any, Callable[[Any], Any], Any] | None:
    """(encode, its argument, decode, its argument) of ``variant`` for ``event``."""
    data = pure.encode(event)
    if variant == "fastavro":
        schema = pure.catalogue.get(type(event).__name__).parsed
        record = pure.to_record(event)

        def write(datum: Any) -> bytes:
            out = io.BytesIO()
            fastavro.schemaless_writer(out, schema, datum)
            return out.getvalue()

        def read(body: bytes) -> Any:
            return fastavro.schemaless_reader(io.BytesIO(body), schema, None)

        return write, record, read, data[HEADER_SIZE:]
    codec = pure if variant == "pure" else compiled
    if codec is None:
        return None
    return codec.encode, event, codec.decode, data


def run(rounds: int, min_time: float) -> dict[tuple[str, str], dict[str, float]]:
    pure = AvroCodec(compiled=False)
    compiled = AvroCodec(compiled=True) if codec_module._avro_fast is not None else None
    events = sample_events()
    plans: dict[tuple[str, str], tuple[Any, ...]] = {}
    for event in events:
        for variant in VARIANTS:
            ops = _operations(variant, event, pure, compiled)
            if ops is None:
                continue
            encode, value, decode, data = ops
            assert (  # the codecs agree before anything is timed
                variant == "fastavro" or (encode(value) == data and decode(data) == event)
            )
            calls = (_calls_for(encode, value, min_time), _calls_for(decode, data, min_time))
            plans[type(event).__name__, variant] = (encode, value, decode, data, calls)
    samples: dict[tuple[str, str], dict[str, list[float]]] = {
        key: {"encode": [], "decode": []} for key in plans
    }
    for r in range(rounds):
        for key, (encode, value, decode, data, (enc_calls, dec_calls)) in plans.items():
            samples[key]["encode"].append(_per_call_us(encode, value, enc_calls))
            samples[key]["decode"].append(_per_call_us(decode, data, dec_calls))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    sizes = {type(e).__name__: len(pure.encode(e)) for e in events}
    return {
        key: {
            "encode_us": statistics.median(s["encode"]),
            "decode_us": statistics.median(s["decode"]),
            "bytes": sizes[key[0]],
        }
        for key, s in samples.items()
    }


def report(results: dict[tuple[str, str], dict[str, float]]) -> str:
    lines = [
        "| event | bytes | implementation | encode µs | decode µs | encode + decode µs | vs pure |",
        "|---|---|---|---|---|---|---|",
    ]
    for (name, variant), r in results.items():
        total = r["encode_us"] + r["decode_us"]
        pure = results.get((name, "pure"))
        ratio = f"{(pure['encode_us'] + pure['decode_us']) / total:.1f}x" if pure else "-"
        lines.append(
            f"| {name} | {r['bytes']:.0f} | {variant} | {r['encode_us']:.2f} | "
            f"{r['decode_us']:.2f} | {total:.2f} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds (median reported)")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per timed loop")
    args = parser.parse_args(argv)
    if codec_module._avro_fast is None:
        print("agentlog.streams._avro_fast is not built: no compiled row", file=sys.stderr)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {sys.version.split()[0]}")
    print(report(run(args.rounds, args.min_time)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
