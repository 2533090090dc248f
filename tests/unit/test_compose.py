"""compose.yaml and the Dockerfile, checked statically (no Docker engine runs here).

``problems`` and ``dockerfile_problems`` return every fault they find, so the
tests below both check the real files and show, on deliberately bad input,
that the checks can fail.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentlog.settings import KNOWN_VARIABLES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

BROKERS = 3
MIN_ISR = 2
_VERSION_RE = re.compile(r"\d+\.\d+")
_IMAGE_RE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._/:-]*?)(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_ENV_ITEM_RE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<value>.*))?$", re.DOTALL)
_VOTER_RE = re.compile(r"^(?P<id>\d+)@(?P<host>[^:]+):(?P<port>\d+)$")
_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


# --------------------------------------------------------------------------- helpers


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    """compose.yaml parsed with anchors, aliases and ``<<`` merge keys resolved."""
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


def image_problem(ref: str) -> str | None:
    """Why ``ref`` is not pinned to an exact version, or None if it is."""
    match = _IMAGE_RE.match(ref)
    if match is None:
        return f"image {ref!r} is not a valid image reference"
    tag, digest = match["tag"], match["digest"]
    if tag is None and digest is None:
        return f"image {ref!r} has no tag (means 'latest'); pin a version"
    if tag == "latest":
        return f"image {ref!r} uses 'latest'; pin a version"
    if tag is not None and not _VERSION_RE.search(tag):
        return f"image {ref!r} tag {tag!r} has no major.minor version"
    return None


def env_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (mapping or ``NAME=value`` list) as strings."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        env: dict[str, str] = {}
        for item in raw:
            match = _ENV_ITEM_RE.match(str(item))
            if match:
                env[match["name"]] = match["value"] or ""
        return env
    return {str(k): _scalar(v) for k, v in raw.items()}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def env_names(node: Any) -> Iterator[str]:
    """Every variable name set anywhere in ``node``: mapping keys and ``NAME=value`` items."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from env_names(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, str):
                match = _ENV_ITEM_RE.match(item)
                if match:
                    yield match["name"]
            else:
                yield from env_names(item)


def is_one_shot(service: Mapping[str, Any]) -> bool:
    """A service that runs to completion: explicit ``restart: "no"``, no healthcheck."""
    return service.get("restart") in ("no", False) and "healthcheck" not in service


def has_healthcheck(service: Mapping[str, Any]) -> bool:
    check = service.get("healthcheck")
    if not isinstance(check, Mapping) or check.get("disable"):
        return False
    test = check.get("test")
    if isinstance(test, str):
        return bool(test.strip())
    return isinstance(test, list) and len(test) > 1 and test[0] in ("CMD", "CMD-SHELL")


def is_kafka(service: Mapping[str, Any]) -> bool:
    return str(service.get("image", "")).startswith("apache/kafka")


def is_agentlog(service: Mapping[str, Any]) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("agentlog")


# --------------------------------------------------------------------------- the checks


def problems(compose: Mapping[str, Any]) -> list[str]:
    """Every fault found in a parsed compose file; empty means it passes."""
    services = compose.get("services")
    if not isinstance(services, Mapping) or not services:
        return ["no services defined"]
    found: list[str] = []
    found += _image_problems(services)
    found += _health_problems(services)
    found += _kafka_problems(services)
    found += _agentlog_env_problems(compose, services)
    found += _depends_on_problems(services)
    found += _port_problems(services)
    found += _volume_problems(compose, services)
    return found


def _image_problems(services: Mapping[str, Any]) -> list[str]:
    found = []
    for name, svc in services.items():
        if "image" in svc:
            problem = image_problem(str(svc["image"]))
            if problem:
                found.append(f"{name}: {problem}")
        elif "build" not in svc:
            found.append(f"{name}: neither image nor build")
    return found


def _health_problems(services: Mapping[str, Any]) -> list[str]:
    return [
        f"{name}: long-running service without a healthcheck"
        for name, svc in services.items()
        if not is_one_shot(svc) and not has_healthcheck(svc)
    ]


def _kafka_problems(services: Mapping[str, Any]) -> list[str]:  # noqa: PLR0912
    brokers = {name: env_of(svc) for name, svc in services.items() if is_kafka(svc)}
    if len(brokers) != BROKERS:
        return [f"expected exactly {BROKERS} Kafka brokers, found {len(brokers)}"]
    found: list[str] = []
    node_ids: dict[str, str] = {}
    for name, env in brokers.items():
        roles = {r.strip() for r in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
        if roles != {"broker", "controller"}:
            found.append(f"{name}: KAFKA_PROCESS_ROLES must be broker,controller (KRaft)")
        if any(k.startswith("KAFKA_ZOOKEEPER") for k in env):
            found.append(f"{name}: ZooKeeper settings in a KRaft cluster")
        node_ids[name] = env.get("KAFKA_NODE_ID", "")
        expected = {
            "KAFKA_DEFAULT_REPLICATION_FACTOR": str(BROKERS),
            "KAFKA_MIN_INSYNC_REPLICAS": str(MIN_ISR),
            "KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE": "false",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": str(BROKERS),
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": str(BROKERS),
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": str(MIN_ISR),
        }
        for key, want in expected.items():
            if env.get(key, "").lower() != want:
                found.append(f"{name}: {key} must be {want}, is {env.get(key)!r}")
        if not env.get("CLUSTER_ID"):
            found.append(f"{name}: no CLUSTER_ID")
        voters = [v.strip() for v in env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(",")]
        parsed = [_VOTER_RE.match(v) for v in voters]
        if len(voters) != BROKERS or not all(parsed):
            found.append(f"{name}: KAFKA_CONTROLLER_QUORUM_VOTERS must list {BROKERS} id@host:port")
            continue
        hosts = {m["host"]: m["id"] for m in parsed if m}
        for other, svc in services.items():
            if other in brokers:
                host = svc.get("hostname", other)
                if host not in hosts and other not in hosts:
                    found.append(f"{name}: quorum voters do not list broker {other}")
                elif hosts.get(host, hosts.get(other)) != env_of(svc).get("KAFKA_NODE_ID"):
                    found.append(f"{name}: quorum voter id for {other} is not its KAFKA_NODE_ID")
    if len(set(node_ids.values())) != BROKERS:
        found.append(f"Kafka node ids must be distinct, are {sorted(node_ids.values())}")
    found.extend(
        f"Kafka brokers disagree on {key}"
        for key in ("CLUSTER_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS")
        if len({env.get(key) for env in brokers.values()}) != 1
    )
    return found


def _agentlog_env_problems(compose: Mapping[str, Any], services: Mapping[str, Any]) -> list[str]:
    found = [
        f"unknown variable {name} (not in agentlog.settings.KNOWN_VARIABLES)"
        for name in sorted(set(env_names(compose)))
        if name.startswith("AGENTLOG_") and name not in KNOWN_VARIABLES
    ]
    envs = {name: env_of(svc) for name, svc in services.items() if is_agentlog(svc)}
    if not envs:
        return [*found, "no agentlog service"]
    first_name, first = next(iter(envs.items()))
    for name, env in envs.items():
        if env != first:
            found.append(f"{name}: environment differs from {first_name} (use x-agentlog-env)")
        if env.get("AGENTLOG_REPLICATION_FACTOR") != str(BROKERS):
            found.append(f"{name}: AGENTLOG_REPLICATION_FACTOR must be {BROKERS}")
    return found


def _depends_on_problems(services: Mapping[str, Any]) -> list[str]:
    found = []
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        items = {d: {} for d in deps} if isinstance(deps, list) else dict(deps)
        for dep, spec in items.items():
            if dep not in services:
                found.append(f"{name}: depends_on unknown service {dep!r}")
                continue
            condition = (spec or {}).get("condition", "service_started")
            if condition not in _CONDITIONS:
                found.append(f"{name}: depends_on {dep} with unknown condition {condition!r}")
            elif condition == "service_healthy" and not has_healthcheck(services[dep]):
                found.append(f"{name}: waits for {dep} to be healthy, but it has no healthcheck")
    return found


def _port_problems(services: Mapping[str, Any]) -> list[str]:
    found = []
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, Mapping) else None
            if host_ip is None and not isinstance(port, Mapping):
                parts = str(port).rsplit(":", 2)
                host_ip = parts[0] if len(parts) == 3 else None
            if host_ip != "127.0.0.1":
                found.append(f"{name}: port {port!r} is not published on 127.0.0.1 only")
    return found


def _volume_problems(compose: Mapping[str, Any], services: Mapping[str, Any]) -> list[str]:
    declared = set(compose.get("volumes") or {})
    found = []
    for name, svc in services.items():
        for volume in svc.get("volumes") or []:
            source = volume.get("source") if isinstance(volume, Mapping) else volume.split(":")[0]
            if source and not source.startswith((".", "/", "~")) and source not in declared:
                found.append(f"{name}: named volume {source!r} is not declared")
        if is_kafka(svc) and not svc.get("volumes"):
            found.append(f"{name}: Kafka data is not on a named volume")
    return found


def dockerfile_problems(text: str) -> list[str]:
    """Every fault found in a Dockerfile's text; empty means it passes."""
    lines = [
        line.strip()
        for line in re.sub(r"\\\n", " ", text).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    found: list[str] = []
    bases = [line.split()[1:] for line in lines if line.upper().startswith("FROM ")]
    stages = {args[2].lower() for args in bases if len(args) >= 3 and args[1].upper() == "AS"}
    if not bases:
        found.append("no FROM line")
    for args in bases:
        image = next((a for a in args if not a.startswith("--")), "")
        if image.lower() in stages:
            continue
        problem = image_problem(image)
        if problem:
            found.append(f"base {problem}")
    users = [line.split(maxsplit=1)[1] for line in lines if line.upper().startswith("USER ")]
    if not users:
        found.append("no USER: the container would run as root")
    elif users[-1].split(":")[0] in ("root", "0"):
        found.append(f"runs as root (USER {users[-1]})")
    entrypoints = [line for line in lines if line.upper().startswith("ENTRYPOINT ")]
    if not entrypoints or entrypoints[-1] != 'ENTRYPOINT ["agentlog"]':
        found.append('ENTRYPOINT must be ["agentlog"]')
    installs = [line for line in lines if re.search(r"\bpip3? install\b", line)]
    if not installs:
        found.append("the project is not installed with pip")
    if any(re.search(r"\[[^\]]*\b(dev|test)\b", line) for line in installs):
        found.append("installs dev/test extras")
    return found


# --------------------------------------------------------------------------- the real files


def test_compose_yaml_has_no_problems() -> None:
    assert problems(load_compose()) == []


def test_dockerfile_has_no_problems() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


def test_compose_runs_topics_then_the_projector_and_the_api() -> None:
    services = load_compose()["services"]
    agentlog = {name: svc for name, svc in services.items() if is_agentlog(svc)}
    assert set(agentlog) == {"agentlog-topics", "projector", "api"}
    projector, api = agentlog["projector"], agentlog["api"]
    assert projector["command"][:2] == ["projector", "run"]
    assert projector["depends_on"]["agentlog-topics"] == {
        "condition": "service_completed_successfully"
    }
    assert api["command"] == ["api"]
    env = env_of(api)
    assert env["AGENTLOG_API_HOST"] == "0.0.0.0"  # inside its container
    assert api["ports"] == [f"127.0.0.1:{env['AGENTLOG_API_PORT']}:{env['AGENTLOG_API_PORT']}"]
    for service in (projector, api):
        assert has_healthcheck(service)
        assert not is_one_shot(service)
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
    topics = agentlog["agentlog-topics"]
    assert topics["command"] == ["topics", "create"]
    assert is_one_shot(topics)
    assert env_of(topics)["AGENTLOG_KAFKA_BOOTSTRAP"].split(",") == [
        f"kafka-{i}:9092" for i in range(1, BROKERS + 1)
    ]


def test_agentlog_environment_comes_from_the_extension_field() -> None:
    compose = load_compose()
    shared = {k: _scalar(v) for k, v in compose["x-agentlog-env"].items()}
    assert set(shared) <= KNOWN_VARIABLES
    assert env_of(compose["services"]["agentlog-topics"]) == shared


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".venv/", ".git/", ".agentlog/", "build/"):
        assert entry in ignored


# --------------------------------------------------------------------------- the checks can fail


def _bad_compose() -> dict[str, Any]:
    compose = load_compose()
    bad = copy.deepcopy(compose)
    services = bad["services"]
    services["redis"]["image"] = "redis:latest"
    services["postgres"]["image"] = "postgres"
    del services["postgres"]["healthcheck"]
    del services["kafka-3"]
    bad["x-extra"] = {"environment": ["AGENTLOG_NO_SUCH_THING=1"]}
    services["agentlog-topics"]["environment"] = {
        **services["agentlog-topics"]["environment"],
        "AGENTLOG_REPLICATION_FACTOR": "1",
    }
    services["agentlog-topics"]["depends_on"] = {
        **services["agentlog-topics"]["depends_on"],
        "postgres": {"condition": "service_healthy"},
    }
    services["redis"]["ports"] = ["6379:6379"]
    return bad


@pytest.mark.parametrize(
    "expected",
    [
        "redis: image 'redis:latest' uses 'latest'",
        "postgres: image 'postgres' has no tag",
        "postgres: long-running service without a healthcheck",
        f"expected exactly {BROKERS} Kafka brokers, found 2",
        "unknown variable AGENTLOG_NO_SUCH_THING",
        "agentlog-topics: AGENTLOG_REPLICATION_FACTOR must be 3",
        "agentlog-topics: depends_on unknown service 'kafka-3'",
        "agentlog-topics: waits for postgres to be healthy, but it has no healthcheck",
        "redis: port '6379:6379' is not published on 127.0.0.1 only",
    ],
)
def test_problems_reports_a_bad_compose(expected: str) -> None:
    found = problems(_bad_compose())
    assert any(p.startswith(expected) for p in found), found


def test_problems_reports_bad_kafka_settings() -> None:
    compose = load_compose()
    services = compose["services"]
    services["kafka-1"]["environment"]["KAFKA_MIN_INSYNC_REPLICAS"] = "1"
    services["kafka-1"]["environment"]["KAFKA_PROCESS_ROLES"] = "broker"
    services["kafka-2"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] = (
        "1@kafka-1:9093,2@kafka-2:9093,3@elsewhere:9093"
    )
    services["kafka-3"]["environment"]["KAFKA_DEFAULT_REPLICATION_FACTOR"] = "1"
    services["kafka-3"]["environment"]["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] = True
    found = problems(compose)
    for expected in (
        "kafka-1: KAFKA_MIN_INSYNC_REPLICAS must be 2",
        "kafka-1: KAFKA_PROCESS_ROLES must be broker,controller",
        "kafka-2: quorum voters do not list broker kafka-3",
        "kafka-3: KAFKA_DEFAULT_REPLICATION_FACTOR must be 3",
        "kafka-3: KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE must be false",
        "Kafka brokers disagree on KAFKA_CONTROLLER_QUORUM_VOTERS",
    ):
        assert any(p.startswith(expected) for p in found), (expected, found)


def test_problems_reports_a_differing_agentlog_environment() -> None:
    compose = load_compose()
    services = compose["services"]
    services["agentlog-other"] = copy.deepcopy(services["agentlog-topics"])
    services["agentlog-other"]["environment"] = ["AGENTLOG_REPLICATION_FACTOR=3"]
    found = problems(compose)
    assert "agentlog-other: environment differs from agentlog-topics (use x-agentlog-env)" in (
        found
    )


def test_problems_on_an_empty_file() -> None:
    assert problems({}) == ["no services defined"]


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        ("apache/kafka:4.1.0", True),
        ("postgres:17.6", True),
        ("python:3.11.13-slim-bookworm", True),
        ("localhost:5000/agentlog:0.1.0", True),
        ("redis:7.4.5@sha256:" + "a" * 64, True),
        ("redis@sha256:" + "a" * 64, True),
        ("redis", False),
        ("redis:latest", False),
        ("redis:7", False),
        ("python:3-slim", False),
        ("apache/kafka:latest", False),
    ],
)
def test_image_problem(ref: str, ok: bool) -> None:
    assert (image_problem(ref) is None) is ok


def test_dockerfile_problems_reports_root_latest_and_dev_extras() -> None:
    bad = "\n".join(
        [
            "FROM python:latest",
            "COPY . /src",
            "RUN pip install '/src[dev]'",
            "USER agentlog",
            "USER root",
            "ENTRYPOINT agentlog",
        ]
    )
    assert dockerfile_problems(bad) == [
        "base image 'python:latest' uses 'latest'; pin a version",
        "runs as root (USER root)",
        'ENTRYPOINT must be ["agentlog"]',
        "installs dev/test extras",
    ]
    assert "no USER: the container would run as root" in dockerfile_problems("FROM python:3.11")


def test_dockerfile_problems_allows_a_named_build_stage() -> None:
    text = "\n".join(
        [
            "FROM python:3.11.13-slim AS build",
            "RUN pip install build",
            "FROM build",
            "USER 10001:10001",
            'ENTRYPOINT ["agentlog"]',
        ]
    )
    assert dockerfile_problems(text) == []
