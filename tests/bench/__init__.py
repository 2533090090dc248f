"""On-demand benchmarks (never pass/fail tests); results in docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def report(summary: dict[str, Any], argv: list[str] | None, json_path: str | None) -> int:
    """Print ``summary`` as JSON, and write it with the arguments to ``json_path`` if given; 0.

    ``argv`` None (a run from the command line) records ``sys.argv[1:]``.
    """
    print(json.dumps(summary, indent=2))
    if json_path:
        args = sys.argv[1:] if argv is None else argv
        Path(json_path).write_text(json.dumps({"argv": args, **summary}, indent=2))
    return 0
