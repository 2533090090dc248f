"""Deterministic demo agents for the five demo workflows, plus ``noop`` for benchmarks.

No network, no model: each answer is a pure function of the task input (the
same functions the workflow unit tests use as fake agents), so a demo run is
reproducible and its outputs are the ones ``agentlog.workflow.demos`` expects.
Each handler also reports made-up token usage (a function of the input size)
so metrics have something to show.

Run them all in one process::

    python -m agentlog.agents.runtime run agentlog.agents.demo:DEMO_AGENTS

:func:`demo_agents` builds them with a simulated think time, for a livelier
demo timeline.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from agentlog.agents.runtime import Agent, Handler, TaskContext, TerminalError
from agentlog.schemas.events import JsonValue

Answer = Callable[[Any], JsonValue]

#: The specialists of the supervisor demo: each echoes its brief.
SPECIALISTS = ("researcher", "coder", "security-reviewer", "cost-analyst")
_BRIEF_NAMES = ("research", "code", "security", "cost")
#: Made-up price of one token, for the usage the demo agents report.
_USD_PER_TOKEN = 0.000002


def _supervisor(d: Any) -> JsonValue:
    if "reports" in d:  # the aggregate step
        return {"goal": d["goal"], "covered": sorted(d["reports"])}
    return {"briefs": {name: f"{name} for {d['goal']}" for name in _BRIEF_NAMES}}


def _specialist(kind: str) -> Answer:
    return lambda d: {"brief": d["brief"], "by": kind}


#: Agent kind -> its answer, a pure function of the task input.
ANSWERS: dict[str, Answer] = {
    # pr-deploy
    "reviewer": lambda d: {"approved": True, "comments": [f"LGTM {d['repo']}#{d['pr']}"]},
    "tester": lambda d: {"passed": True, "tests": 128},
    "deployer": lambda d: {
        "url": f"https://{d['environment']}.example.com",
        "version": f"pr-{d['pr']}",
    },
    # parallel-docs
    "writer": lambda d: {"section": d["section"], "text": f"{d['position'] + 1}. {d['section']}"},
    "aggregator": lambda d: {"document": "\n".join(s["text"] for s in d["sections"])},
    # self-healing: healthy from the third round on
    "detector": lambda d: {"service": d["service"], "alert": d["symptom"]},
    "diagnoser": lambda d: {"round": d["round"], "cause": f"cause-{d['round']}"},
    "fixer": lambda d: {
        "patch": f"patch-{d['diagnosis']['round']}",
        "round": d["diagnosis"]["round"],
    },
    "verifier": lambda d: {"issues_found": d["fix"]["round"] < 3},
    # triage-chain
    "triager": lambda d: {"category": "performance", "ticket": d["ticket"]["id"]},
    "data-analyst": lambda d: {"customer": d["customer"], "p95_export_minutes": 240},
    "optimizer": lambda d: {
        "ticket": d["triage"]["ticket"],
        "actions": ["add index", "batch writes"],
    },
    # supervisor
    "supervisor": _supervisor,
    **{kind: _specialist(kind) for kind in SPECIALISTS},
    # benchmarks: the input back
    "noop": lambda d: d,
}

_DESCRIPTIONS = {
    "reviewer": "reviews a pull request (always approves)",
    "tester": "runs a pull request's tests (always green)",
    "deployer": "deploys a pull request to an environment",
    "writer": "writes one section of a document",
    "aggregator": "joins sections into one document",
    "detector": "turns a symptom into an incident",
    "diagnoser": "names a cause for the incident",
    "fixer": "patches the diagnosed cause",
    "verifier": "checks the service; healthy from round 3",
    "triager": "classifies a support ticket",
    "data-analyst": "gathers the customer's numbers",
    "optimizer": "proposes optimisations",
    "supervisor": "plans briefs for specialists, then aggregates their reports",
    "noop": "answers with its input (benchmarks)",
}


def _handler(kind: str, answer: Answer, think_s: float) -> Handler:
    async def handle(ctx: TaskContext) -> JsonValue:
        if think_s > 0:
            await ctx.progress(0.0, f"{kind} thinking")
            await asyncio.sleep(think_s)
        try:
            output = answer(ctx.input)
        except (KeyError, TypeError, IndexError) as e:
            raise TerminalError(
                "bad_input",
                f"demo agent {kind!r} cannot read its input {ctx.input!r}: {type(e).__name__} {e}",
            ) from e
        if kind != "noop":
            tokens_in = len(json.dumps(ctx.input))
            tokens_out = len(json.dumps(output))
            ctx.record_usage(
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_usd=round((tokens_in + tokens_out) * _USD_PER_TOKEN, 8),
            )
        return output

    handle.__name__ = handle.__qualname__ = f"demo_{kind.replace('-', '_')}"
    return handle


def demo_agents(*, think_s: float = 0.0, concurrency: int = 8) -> list[Agent]:
    """One agent per demo kind (and ``noop``), each thinking ``think_s`` seconds per task."""
    return [
        Agent(
            kind=kind,
            handler=_handler(kind, answer, think_s),
            concurrency=concurrency,
            version="demo-1",
            description=_DESCRIPTIONS.get(kind, f"specialist: answers its brief as {kind}"),
        )
        for kind, answer in ANSWERS.items()
    ]


#: Every demo agent kind, answering at once.
DEMO_AGENTS: list[Agent] = demo_agents()
