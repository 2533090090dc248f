"""The first example of docs/agents.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "agents.md"


def test_the_writing_an_agent_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    example = blocks[0]
    assert "asyncio.run(main())" in example
    exec(compile(example, f"{DOC}:example", "exec"), {"__name__": "docs_example"})
