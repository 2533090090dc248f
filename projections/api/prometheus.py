"""``/metrics`` in the Prometheus text exposition format (0.0.4), from the read models.

Counters are totals over all rollup minutes; histograms use the rollups'
fixed buckets (``LATENCY_BOUNDS_MS``), cumulative, in seconds. The projector's
lag per partition is the last recorded log-end offset minus the stored next
offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from agentlog.projections.folds.metrics import BUCKETS, LATENCY_BOUNDS_MS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, object]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class Exposition:
    """Builds the text: one HELP/TYPE header per family, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        """Start a metric family."""
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: object) -> None:
        """One sample."""
        self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(self, name: str, buckets: Sequence[int], total_us: int, **labels: object) -> None:
        """Cumulative ``_bucket`` samples (``le`` in seconds), ``_sum`` and ``_count``."""
        counts = list(buckets) + [0] * (BUCKETS - len(buckets))
        running = 0
        for bound, count in zip(LATENCY_BOUNDS_MS, counts, strict=False):
            running += count
            self.sample(f"{name}_bucket", running, **labels, le=_number(bound / 1000))
        running += counts[-1]
        self.sample(f"{name}_bucket", running, **labels, le="+Inf")
        self.sample(f"{name}_sum", total_us / 1_000_000, **labels)
        self.sample(f"{name}_count", running, **labels)

    def text(self) -> str:
        """The whole exposition."""
        return "\n".join(self.lines) + "\n"


def render(data: dict[str, Any], now: datetime) -> str:
    """The exposition of what :func:`agentlog.projections.api.routes_ops.collect` read."""
    out = Exposition()
    out.family("agentlog_workflows", "gauge", "Workflows by status.")
    for status, count in sorted(data["workflows"].items()):
        out.sample("agentlog_workflows", count, status=status)
    _kinds(out, data["kinds"])
    _locks(out, data["locks"])
    out.family("agentlog_events_total", "counter", "Events archived, by topic and type.")
    for row in data["events"]:
        out.sample("agentlog_events_total", row["events"], topic=row["topic"], type=row["type"])
    out.family("agentlog_dead_letters_total", "counter", "Dead letters by error reason.")
    for row in data["dead_letters"]:
        out.sample("agentlog_dead_letters_total", row["n"], reason=row["error_reason"])
    out.family("agentlog_agents", "gauge", "Registered agents by state (alive, gone).")
    for state, count in sorted(data["agents"].items()):
        out.sample("agentlog_agents", count, state=state)
    _projector(out, data["lag"], now)
    return out.text()


def _kinds(out: Exposition, kinds: Iterable[Any]) -> None:
    kinds = list(kinds)
    out.family("agentlog_steps_total", "counter", "Step attempts by agent kind and outcome.")
    for r in kinds:
        for outcome in ("completed", "failed", "retried", "timed_out"):
            out.sample(
                "agentlog_steps_total", r[outcome], agent_kind=r["agent_kind"], outcome=outcome
            )
    out.family(
        "agentlog_step_latency_seconds",
        "histogram",
        "From StepScheduled to StepCompleted, by agent kind.",
    )
    for r in kinds:
        out.histogram(
            "agentlog_step_latency_seconds",
            r["latency_buckets"] or [],
            r["latency_us_sum"],
            agent_kind=r["agent_kind"],
        )
    for name, column, help_text in (
        ("agentlog_cache_hits_total", "cache_hits", "Agent cache hits."),
        ("agentlog_cache_misses_total", "cache_misses", "Agent cache misses."),
        ("agentlog_cache_tokens_saved_total", "cache_tokens_saved", "Model tokens saved by hits."),
    ):
        out.family(name, "counter", help_text)
        for r in kinds:
            out.sample(name, r[column], agent_kind=r["agent_kind"])
    out.family(
        "agentlog_cache_latency_saved_seconds_total",
        "counter",
        "Latency saved by cache hits (hits x (miss - hit latency)).",
    )
    for r in kinds:
        out.sample(
            "agentlog_cache_latency_saved_seconds_total",
            r["cache_latency_saved_us"] / 1_000_000,
            agent_kind=r["agent_kind"],
        )


def _locks(out: Exposition, locks: Any) -> None:
    out.family("agentlog_lock_events_total", "counter", "Lock requests by outcome.")
    for outcome in ("requested", "granted", "queued", "denied", "released", "expired"):
        out.sample("agentlog_lock_events_total", locks[outcome] or 0, outcome=outcome)
    out.family("agentlog_lock_wait_seconds", "histogram", "From LockRequested to LockGranted.")
    out.histogram(
        "agentlog_lock_wait_seconds", locks["wait_buckets"] or [], locks["wait_us_sum"] or 0
    )


def _projector(out: Exposition, lag: Iterable[Any], now: datetime) -> None:
    rows = list(lag)
    out.family("agentlog_projector_lag", "gauge", "Records in the topic not yet projected.")
    for r in rows:
        if r["lag"] is not None:
            out.sample(
                "agentlog_projector_lag", r["lag"], topic=r["topic"], partition=r["kafka_partition"]
            )
    out.family("agentlog_projector_next_offset", "gauge", "Next offset the projector reads.")
    for r in rows:
        out.sample(
            "agentlog_projector_next_offset",
            r["next_offset"],
            topic=r["topic"],
            partition=r["kafka_partition"],
        )
    out.family(
        "agentlog_projector_last_write_age_seconds",
        "gauge",
        "Seconds since the projector last stored offsets or end offsets of the partition.",
    )
    for r in rows:
        out.sample(
            "agentlog_projector_last_write_age_seconds",
            round((now - r["updated_at"]).total_seconds(), 3),
            topic=r["topic"],
            partition=r["kafka_partition"],
        )
