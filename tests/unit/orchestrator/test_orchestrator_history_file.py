"""History files (Avro object container) and the errors of ``agentlog history`` / ``verify``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest

from agentlog.agents.orchestrator.history import HistoryError, history_to_json
from agentlog.agents.orchestrator.history_file import (
    HISTORY_SCHEMA,
    RECORD_NAME,
    dump_history,
    load_history,
    read_history,
    write_history,
)
from agentlog.cli import main
from agentlog.workflow import TimerFired
from tests.replay.record import DIVERGENT, HISTORIES, parallel_docs, pr_deploy_retries


def _records(data: bytes) -> tuple[list[dict[str, object]], dict[str, str]]:
    reader = fastavro.reader(io.BytesIO(data))
    return list(reader), dict(reader.metadata)  # type: ignore[arg-type]


def _rewrite(
    data: bytes, *, records: list[dict[str, object]] | None = None, **metadata: str
) -> bytes:
    old, meta = _records(data)
    meta = {k: v for k, v in meta.items() if not k.startswith("avro.")}
    meta.update(metadata)
    out = io.BytesIO()
    fastavro.writer(out, HISTORY_SCHEMA, old if records is None else records, metadata=meta)
    return out.getvalue()


def test_a_history_round_trips_through_a_file(tmp_path: Path) -> None:
    history = pr_deploy_retries()
    path = tmp_path / "h.avro"

    write_history(path, history)

    assert read_history(path) == history
    assert any(isinstance(e.input, TimerFired) for e in history.entries)
    assert dump_history(history) == path.read_bytes()  # same history, same bytes


def test_the_file_is_a_plain_avro_container_with_single_object_encoded_events() -> None:
    history = parallel_docs()

    records, metadata = _records(dump_history(history))

    assert metadata["agentlog.history.format"] == "1"
    assert metadata["agentlog.history.workflow_id"] == history.workflow_id
    assert metadata["agentlog.history.definition"] == "parallel-docs"
    assert json.loads(metadata["avro.schema"])["name"] == "HistoryEntry"
    assert len(records) == len(history.entries)
    first = records[0]
    assert isinstance(first["input"], bytes)
    assert first["input"][:2] == b"\xc3\x01"  # the topics' wire encoding
    assert first["timer"] is None
    timers = [r["timer"] for r in records if r["timer"] is not None]
    assert timers
    assert all(r["input"] is None for r in records if r["timer"] is not None)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match=r"nope\.avro: cannot read it: No such file"):
        read_history(tmp_path / "nope.avro")


def test_a_file_that_is_not_avro_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.avro"
    path.write_text("hello\n")
    with pytest.raises(HistoryError, match=r"notes\.avro: not an Avro object container file"):
        read_history(path)


def test_an_avro_file_of_another_schema_is_an_unknown_schema() -> None:
    out = io.BytesIO()
    schema = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}
    fastavro.writer(out, schema, [{"x": 1}])
    with pytest.raises(
        HistoryError, match=f"unknown schema: the file holds 'Other' records, not {RECORD_NAME}"
    ):
        load_history(out.getvalue())


def test_a_newer_format_or_a_file_without_metadata_is_refused() -> None:
    data = dump_history(pr_deploy_retries())
    with pytest.raises(HistoryError, match="history format '2' is not one this agentlog reads"):
        load_history(_rewrite(data, **{"agentlog.history.format": "2"}))
    out = io.BytesIO()
    fastavro.writer(out, HISTORY_SCHEMA, _records(data)[0])
    with pytest.raises(HistoryError, match="not an agentlog history"):
        load_history(out.getvalue())


def test_an_event_of_an_unknown_schema_is_named_with_its_entry() -> None:
    data = dump_history(pr_deploy_retries())
    records, _ = _records(data)
    raw = records[1]["input"]
    assert isinstance(raw, bytes)
    records[1]["input"] = raw[:2] + b"\x00" * 8 + raw[10:]  # a fingerprint nobody knows

    with pytest.raises(
        HistoryError, match="entry 1: the input has an unknown schema: schema fingerprint"
    ):
        load_history(_rewrite(data, records=records))


def test_a_decision_that_is_no_journal_event_is_refused() -> None:
    data = dump_history(pr_deploy_retries())
    records, _ = _records(data)
    records[0]["decisions"] = [records[1]["input"]]  # a TaskCompleted among the decisions
    with pytest.raises(HistoryError, match="entry 0: decision 0 is a TaskCompleted"):
        load_history(_rewrite(data, records=records))


def test_a_truncated_file_is_corrupt() -> None:
    data = dump_history(pr_deploy_retries())
    with pytest.raises(HistoryError, match="corrupt"):
        load_history(data[: len(data) - 200])


# -- the commands -------------------------------------------------------------------------


def test_verify_names_an_unreadable_file_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.avro"
    bad.write_bytes(b"\x00not avro")

    code = main(["verify", str(bad), str(tmp_path / "missing.avro"), str(HISTORIES)])

    assert code == 2
    captured = capsys.readouterr()
    assert f"error: {bad}: not an Avro object container file" in captured.err
    assert f"error: {tmp_path / 'missing.avro'}: cannot read it" in captured.err
    assert "Traceback" not in captured.err
    assert "2 could not be verified" in captured.out


def test_verify_of_an_unknown_definition_names_the_file_and_the_fix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = HISTORIES / "pr-deploy.avro"

    assert main(["verify", str(path), "--no-demos", "--json"]) == 2

    captured = capsys.readouterr()
    assert f"error: {path}: workflow replay-pr-deploy ran definition 'pr-deploy' v1" in captured.err
    assert "--definitions" in captured.err
    report = json.loads(captured.out)
    assert report["counts"] == {"ok": 0, "diverged": 0, "error": 1}
    assert report["histories"][0]["status"] == "error"


def test_verify_of_an_empty_directory_and_bad_definitions_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(tmp_path)]) == 2
    assert "holds no *.avro history files" in capsys.readouterr().err
    assert main(["verify", str(HISTORIES), "--definitions", str(tmp_path / "x.json")]) == 2
    assert "error: --definitions=" in capsys.readouterr().err


def test_history_import_prints_the_timeline_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = HISTORIES / "pr-deploy-retries.avro"

    assert main(["history", "--import", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("workflow replay-pr-deploy-retries  pr-deploy v1  9 inputs")
    assert "timer retry:replay-pr-deploy-retries/tests/1/0/1" in text
    assert "LockDenied" in text

    assert main(["history", "--import", str(path), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body == json.loads(json.dumps(history_to_json(read_history(path))))
    assert body["entries"][3]["input"]["type"] == "TimerFired"


def test_history_needs_one_source_and_reports_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history"]) == 2
    assert "give a workflow id or --import FILE" in capsys.readouterr().err
    assert main(["history", "--import", str(DIVERGENT), "--export", str(tmp_path / "x")]) == 2
    assert "cannot be used with --import" in capsys.readouterr().err
    assert main(["history", "--import", str(tmp_path / "none.avro")]) == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'none.avro'}: cannot read it" in err
    assert "Traceback" not in err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("verify", "history"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "examples:" in out
        assert f"agentlog {command} " in out
