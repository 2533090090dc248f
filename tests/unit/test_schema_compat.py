"""Schema evolution: every schema file stays compatible with its committed history.

The checker (``agentlog.schemas.compat``) is tested first on deliberately
incompatible pairs, each confirmed by fastavro failing to resolve real data,
so a green history test means something.
"""

from __future__ import annotations

import copy
import io
import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import fastavro.utils
import pytest

from agentlog.schemas.compat import Schema, check_evolution, check_read

ROOT = Path(__file__).resolve().parents[2]
AVRO_DIR = ROOT / "schemas" / "avro"
SCHEMA_FILES = sorted(AVRO_DIR.glob("*.avsc"))


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


@pytest.fixture(autouse=True)
def _seeded_random() -> Iterator[None]:
    # fastavro's data generator uses the global random module: make it repeatable.
    state = random.getstate()
    random.seed(20250101)
    yield
    random.setstate(state)


def roundtrip(writer: Schema, reader: Schema, count: int = 20) -> None:
    """Write generated data with ``writer``; read it back with ``reader``."""
    w = fastavro.parse_schema(copy.deepcopy(writer), named_schemas={})
    r = fastavro.parse_schema(copy.deepcopy(reader), named_schemas={})
    for datum in fastavro.utils.generate_many(copy.deepcopy(writer), count):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, w, datum)
        buffer.seek(0)
        fastavro.schemaless_reader(buffer, w, r)
        assert buffer.tell() == len(buffer.getvalue())


# --- the checker, on pairs that must fail ---------------------------------------------------

BASE: dict[str, Any] = {
    "type": "record",
    "name": "Thing",
    "namespace": "agentlog",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "int"},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "BLUE"]}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}


def changed(edit: Any) -> dict[str, Any]:
    schema = copy.deepcopy(BASE)
    edit(schema)
    return schema


def _add_required(s: dict[str, Any]) -> None:
    s["fields"].append({"name": "extra", "type": "long"})


def _remove_required(s: dict[str, Any]) -> None:
    s["fields"].pop(0)


def _string_to_int(s: dict[str, Any]) -> None:
    s["fields"][0]["type"] = "int"


def _drop_symbol(s: dict[str, Any]) -> None:
    s["fields"][2]["type"]["symbols"] = ["RED"]


def _add_symbol(s: dict[str, Any]) -> None:
    s["fields"][2]["type"]["symbols"].append("GREEN")


def _int_to_long(s: dict[str, Any]) -> None:
    s["fields"][1]["type"] = "long"


def _rename_record(s: dict[str, Any]) -> None:
    s["name"] = "Other"


@pytest.mark.parametrize(
    ("edit", "direction", "message"),
    [
        (_add_required, "backward", "Thing.extra: not in the writer and no default"),
        (_remove_required, "forward", "Thing.id: not in the writer and no default"),
        (_string_to_int, "backward", "Thing.id: writer type 'string' cannot be read as 'int'"),
        (_string_to_int, "forward", "Thing.id: writer type 'int' cannot be read as 'string'"),
        (_drop_symbol, "backward", "Thing.color: reader enum lacks symbols ['BLUE']"),
        (_add_symbol, "forward", "Thing.color: reader enum lacks symbols ['GREEN']"),
        (_int_to_long, "forward", "Thing.count: writer type 'long' cannot be read as 'int'"),
        (_rename_record, "backward", "writer record 'Thing' is not reader record 'Other'"),
    ],
)
def test_checker_finds_incompatible_changes(edit: Any, direction: str, message: str) -> None:
    new = changed(edit)
    problems = check_evolution(BASE, new)
    assert any(p.startswith(f"{direction}: ") and message in p for p in problems), problems
    # fastavro agrees: real data fails to resolve in that direction.
    writer, reader = (BASE, new) if direction == "backward" else (new, BASE)
    with pytest.raises(Exception):  # noqa: B017, PT011 - fastavro's error types vary
        roundtrip(writer, reader, count=50)


def _add_optional(s: dict[str, Any]) -> None:
    s["fields"].append({"name": "extra", "type": ["null", "long"], "default": None})


def _remove_optional(s: dict[str, Any]) -> None:
    s["fields"].pop(3)


def _add_docs(s: dict[str, Any]) -> None:
    s["doc"] = "documentation never matters"
    s["fields"][0]["doc"] = "nor here"


@pytest.mark.parametrize("edit", [_add_optional, _remove_optional, _add_docs])
def test_checker_accepts_compatible_changes(edit: Any) -> None:
    new = changed(edit)
    assert check_evolution(BASE, new) == []
    roundtrip(BASE, new)
    roundtrip(new, BASE)


def test_enum_symbols_may_be_added_when_the_enum_has_a_default() -> None:
    old = changed(lambda s: s["fields"][2]["type"].update(default="RED"))
    new = copy.deepcopy(old)
    _add_symbol(new)
    assert check_evolution(old, new) == []
    roundtrip(old, new)
    roundtrip(new, old, count=50)


def test_checker_follows_promotions_unions_and_containers() -> None:
    assert check_read("int", "double") == []
    assert check_read("string", "bytes") == []
    assert check_read("long", "int") != []
    assert check_read("string", ["null", "string"]) == []
    assert check_read(["null", "string"], "string") != []  # null data has no reader branch
    assert check_read(["null", "int"], ["null", "long"]) == []
    assert check_read({"type": "array", "items": "int"}, {"type": "array", "items": "long"}) == []
    assert check_read({"type": "map", "values": "long"}, {"type": "map", "values": "int"}) != []
    fixed8 = {"type": "fixed", "name": "F", "size": 8}
    assert check_read(fixed8, {**fixed8, "size": 4}) != []
    renamed = {**fixed8, "name": "G", "aliases": ["F"]}
    assert check_read(fixed8, renamed) == []


def test_checker_handles_recursive_and_referenced_types() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "value", "type": "int"},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }
    assert check_read(node, node) == []
    wider = copy.deepcopy(node)
    wider["fields"][0]["type"] = "long"
    assert check_read(node, wider) == []
    assert check_read(wider, node) == ["Node.value: writer type 'long' cannot be read as 'int'"]


# --- every schema file against its committed history ----------------------------------------


def _git(*args: str) -> str:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed, so the schema history cannot be read")
    done = subprocess.run(
        [git, "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"no git history here ({done.stderr.strip()[:200]})")
    return done.stdout


def committed_versions(path: Path) -> list[tuple[str, str]]:
    """(commit, text) of every committed version of ``path``, newest first."""
    relative = path.relative_to(ROOT).as_posix()
    versions = []
    for sha in _git("log", "--format=%H", "--", relative).split():
        text = _git("show", f"{sha}:{relative}") if _exists(sha, relative) else ""
        if text:
            versions.append((sha, text))
    return versions


def _exists(sha: str, relative: str) -> bool:
    return bool(_git("ls-tree", "--name-only", sha, "--", relative).strip())


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=[p.stem for p in SCHEMA_FILES])
def test_schema_is_compatible_with_every_committed_version(path: Path) -> None:
    current = _load(path)
    versions = committed_versions(path)
    if not versions:
        pytest.skip(f"{path.name} has no committed version yet")
    for sha, text in versions:
        old = json.loads(text)
        problems = check_evolution(old, current)
        assert problems == [], f"{path.name} vs {sha[:12]}: {problems}"
        roundtrip(old, current)
        roundtrip(current, old)


def test_schema_files_are_readable_by_themselves() -> None:
    # Each file alone parses and round-trips generated data: no outside references.
    for path in SCHEMA_FILES:
        schema = _load(path)
        assert check_read(schema, schema) == [], path.name
        roundtrip(schema, schema, count=5)
