"""Settings: parsed once from AGENTLOG_* and flags; every bad value names itself and the fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agentlog.errors import ConfigError
from agentlog.settings import KNOWN_VARIABLES, KafkaSecurity, Settings, check_bootstrap
from agentlog.streams.capabilities import fetch_wait_ms


def test_defaults_without_environment() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert s.kafka_bootstrap is None
    assert s.postgres_dsn is None
    assert s.redis_url is None
    assert s.topic_prefix == "agentlog"
    assert s.data_dir == Path(".agentlog")
    assert s.kafka_security == KafkaSecurity()


def test_reads_every_typed_variable() -> None:
    s = Settings.from_env(
        {
            "AGENTLOG_KAFKA_BOOTSTRAP": "b1:9092,b2:9093",
            "AGENTLOG_POSTGRES_DSN": "postgresql://u:p@db:5432/agentlog",
            "AGENTLOG_REDIS_URL": "redis://cache:6379/1",
            "AGENTLOG_TOPIC_PREFIX": "team-a.agentlog",
            "AGENTLOG_PARTITIONS": "12",
            "AGENTLOG_REPLICATION_FACTOR": "3",
            "AGENTLOG_FETCH_MAX_WAIT_MS": "50",
            "AGENTLOG_LINGER_MS": "2",
            "AGENTLOG_MAX_BATCH_BYTES": "65536",
            "AGENTLOG_GC_THRESHOLD": "5000",
            "AGENTLOG_SOURCE": "worker-1",
            "AGENTLOG_DATA_DIR": "/var/lib/agentlog",
            "AGENTLOG_LOG_LEVEL": "DEBUG",
            "PATH": "/usr/bin",  # not ours: ignored
            "AGENTLOG_SOMETHING_ELSE": "x",  # unknown: ignored
        }
    )
    assert s.kafka_bootstrap == "b1:9092,b2:9093"
    assert s.postgres_dsn == "postgresql://u:p@db:5432/agentlog"
    assert s.redis_url == "redis://cache:6379/1"
    assert s.topic_prefix == "team-a.agentlog"
    assert (s.partitions, s.replication_factor) == (12, 3)
    assert (s.fetch_max_wait_ms, s.linger_ms, s.max_batch_bytes) == (50, 2, 65536)
    assert s.source == "worker-1"
    assert s.data_dir == Path("/var/lib/agentlog")
    assert s.log_level == "DEBUG"


def test_empty_addresses_mean_unset() -> None:
    env = {"AGENTLOG_KAFKA_BOOTSTRAP": "", "AGENTLOG_POSTGRES_DSN": "", "AGENTLOG_REDIS_URL": ""}
    s = Settings.from_env(env)
    assert (s.kafka_bootstrap, s.postgres_dsn, s.redis_url) == (None, None, None)


def test_the_fetch_wait_is_chosen_per_broker_unless_set() -> None:
    assert Settings.from_env({}).fetch_max_wait_ms is None
    assert Settings.from_env({"AGENTLOG_FETCH_MAX_WAIT_MS": ""}).fetch_max_wait_ms is None
    assert Settings.from_env({"AGENTLOG_FETCH_MAX_WAIT_MS": "0"}).fetch_max_wait_ms == 0


async def test_a_set_fetch_wait_is_used_without_asking_the_broker() -> None:
    # nothing listens on port 1: asking would fail
    settings = Settings(kafka_bootstrap="127.0.0.1:1", fetch_max_wait_ms=7)
    assert await fetch_wait_ms(settings) == 7


def test_overrides_win_over_environment_and_none_means_not_given() -> None:
    env = {"AGENTLOG_KAFKA_BOOTSTRAP": "env:9092", "AGENTLOG_PARTITIONS": "3"}
    s = Settings.from_env(env, kafka_bootstrap="flag:9092", partitions=None, data_dir=Path("d"))
    assert s.kafka_bootstrap == "flag:9092"
    assert s.partitions == 3
    assert s.data_dir == Path("d")


def test_security_variables_build_kafka_security() -> None:
    s = Settings.from_env(
        {
            "AGENTLOG_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "AGENTLOG_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "AGENTLOG_KAFKA_SASL_USERNAME": "me",
            "AGENTLOG_KAFKA_SASL_PASSWORD": "secret",
        }
    )
    assert s.kafka_security.protocol == "SASL_SSL"
    assert s.kafka_security.sasl_mechanism == "SCRAM-SHA-512"
    assert "secret" not in repr(s)  # the password never shows in logs


def test_plaintext_client_options() -> None:
    assert Settings().kafka_client_options() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AGENTLOG_KAFKA_BOOTSTRAP", "no-port"),
        ("AGENTLOG_KAFKA_BOOTSTRAP", "host:99999"),
        ("AGENTLOG_KAFKA_BOOTSTRAP", "good:9092,:9092"),
        ("AGENTLOG_POSTGRES_DSN", "mysql://u@h/db"),
        ("AGENTLOG_POSTGRES_DSN", "postgresql://h:notaport/db"),
        ("AGENTLOG_REDIS_URL", "http://cache:6379"),
        ("AGENTLOG_TOPIC_PREFIX", "has space"),
        ("AGENTLOG_PARTITIONS", "six"),
        ("AGENTLOG_PARTITIONS", "0"),
        ("AGENTLOG_REPLICATION_FACTOR", "33"),
        ("AGENTLOG_FETCH_MAX_WAIT_MS", "-1"),
        ("AGENTLOG_LINGER_MS", "60001"),
        ("AGENTLOG_MAX_BATCH_BYTES", "16383"),
        ("AGENTLOG_MAX_BATCH_BYTES", "1048577"),
        ("AGENTLOG_GC_THRESHOLD", "-5"),
        ("AGENTLOG_DEFAULT_WORKFLOW_TIMEOUT_MS", "0"),
        ("AGENTLOG_LOG_LEVEL", "LOUD"),
        ("AGENTLOG_KAFKA_SECURITY_PROTOCOL", "TLS"),
    ],
)
def test_bad_value_names_the_variable_and_the_value(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    error = caught.value
    assert error.setting == variable
    assert str(error.value) == value
    assert variable in str(error)
    assert value in str(error)
    assert error.fix
    assert error.fix in str(error)
    assert not error.retriable


def test_sasl_without_mechanism_names_the_mechanism_variable() -> None:
    with pytest.raises(ConfigError, match="AGENTLOG_KAFKA_SASL_MECHANISM"):
        Settings.from_env({"AGENTLOG_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"})


def test_bad_override_is_rejected_like_a_bad_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({}, kafka_bootstrap="nonsense")
    assert caught.value.setting == "AGENTLOG_KAFKA_BOOTSTRAP"


def test_with_overrides_validates_and_keeps_the_rest() -> None:
    s = Settings(topic_prefix="x")
    changed = s.with_overrides(kafka_bootstrap="h:1", redis_url=None)
    assert changed.kafka_bootstrap == "h:1"
    assert changed.topic_prefix == "x"
    with pytest.raises(ConfigError, match="AGENTLOG_PARTITIONS"):
        s.with_overrides(partitions=0)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().partitions = 2  # type: ignore[misc]


def test_topic_names_use_the_prefix() -> None:
    assert Settings().topic("requests") == "agentlog.requests"
    assert Settings(topic_prefix="").topic("requests") == "requests"


def test_check_bootstrap_parses_hosts() -> None:
    assert check_bootstrap("a:1, b:2,[::1]:3") == [("a", 1), ("b", 2), ("::1", 3)]


def test_known_variables_cover_every_setting() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)} - {"kafka_security"}
    security = {f.name for f in dataclasses.fields(KafkaSecurity)} - {"protocol"}
    expected = {f"AGENTLOG_{name.upper()}" for name in fields}
    expected |= {f"AGENTLOG_KAFKA_{name.upper()}" for name in security}
    expected.add("AGENTLOG_KAFKA_SECURITY_PROTOCOL")
    assert expected == KNOWN_VARIABLES
    assert all(v.startswith("AGENTLOG_") for v in KNOWN_VARIABLES)


def test_every_known_variable_is_read() -> None:
    samples = {
        "AGENTLOG_KAFKA_BOOTSTRAP": "h:1",
        "AGENTLOG_POSTGRES_DSN": "postgresql://h/db",
        "AGENTLOG_REDIS_URL": "redis://h",
        "AGENTLOG_PARTITIONS": "2",
        "AGENTLOG_REPLICATION_FACTOR": "2",
        "AGENTLOG_FETCH_MAX_WAIT_MS": "7",
        "AGENTLOG_LINGER_MS": "7",
        "AGENTLOG_MAX_BATCH_BYTES": "16384",
        "AGENTLOG_GC_THRESHOLD": "7",
        "AGENTLOG_DEFAULT_WORKFLOW_TIMEOUT_MS": "86400000",
        "AGENTLOG_LOG_LEVEL": "ERROR",
        "AGENTLOG_KAFKA_SECURITY_PROTOCOL": "SSL",
        "AGENTLOG_KAFKA_SASL_MECHANISM": "PLAIN",
        "AGENTLOG_PROJECTION_SCHEMA": "ops",
        "AGENTLOG_API_PORT": "8081",
    }
    env = {name: samples.get(name, "value-of-" + name.lower()) for name in KNOWN_VARIABLES}
    s = Settings.from_env(env)
    assert s != Settings()
    assert s.kafka_security.ssl_cafile == "value-of-agentlog_kafka_ssl_cafile"
    assert s.source == "value-of-agentlog_source"
    assert (s.projection_schema, s.api_port) == ("ops", 8081)
    assert s.api_token == "value-of-agentlog_api_token"
    assert s.api_host == "value-of-agentlog_api_host"


def test_projection_and_api_variables() -> None:
    s = Settings.from_env({})
    assert (s.projection_schema, s.api_token, s.api_host, s.api_port) == (
        "agentlog",
        None,
        "127.0.0.1",
        None,
    )
    s = Settings.from_env({"AGENTLOG_API_TOKEN": "hunter2", "AGENTLOG_API_PORT": ""})
    assert s.api_token == "hunter2"
    assert s.api_port is None  # empty means unset
    assert "hunter2" not in repr(s)
    for variable, value in (
        ("AGENTLOG_PROJECTION_SCHEMA", "Drop Table"),
        ("AGENTLOG_API_PORT", "0"),
        ("AGENTLOG_API_PORT", "eighty"),
        ("AGENTLOG_API_HOST", ""),
    ):
        with pytest.raises(ConfigError, match=variable):
            Settings.from_env({variable: value})


def test_tuning_settings_are_read_and_the_gc_threshold_only_ever_raised() -> None:
    import gc

    from agentlog.tuning import raise_gc_threshold

    assert Settings.from_env({"AGENTLOG_GC_THRESHOLD": "5000"}).gc_threshold == 5000
    assert Settings.from_env({}).gc_threshold == 100_000
    assert Settings.from_env({}).default_workflow_timeout_ms is None
    assert (
        Settings.from_env({"AGENTLOG_DEFAULT_WORKFLOW_TIMEOUT_MS": ""}).default_workflow_timeout_ms
        is None
    )
    assert (
        Settings.from_env(
            {"AGENTLOG_DEFAULT_WORKFLOW_TIMEOUT_MS": "60000"}
        ).default_workflow_timeout_ms
        == 60_000
    )
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, saved[1], saved[2])
        raise_gc_threshold(0)
        assert gc.get_threshold()[0] == 700  # 0: Python's own stays
        raise_gc_threshold(50_000)
        assert gc.get_threshold() == (50_000, saved[1], saved[2])
        raise_gc_threshold(1_000)
        assert gc.get_threshold()[0] == 50_000  # never lowered
    finally:
        gc.set_threshold(*saved)
