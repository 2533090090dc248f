"""Run strict mypy on the installed layout of agentlog.

mypy cannot follow setuptools' ``package-dir`` mapping (streams/ -> agentlog.streams),
so this builds a tree of symlinks under build/typecheck/ that mirrors the installed
package and checks that. Usage: ``python scripts/typecheck.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPING = {
    "agentlog": "agentlog",
    "agentlog/streams": "streams",
    "agentlog/schemas": "schemas",
    "agentlog/projections": "projections",
    "agentlog/agents": "agents",
}


def build_tree(dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    for target, source in MAPPING.items():
        for path in (ROOT / source).rglob("*"):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            if path.suffix not in (".py", ".pyi", ".typed"):
                continue
            link = dest / target / path.relative_to(ROOT / source)
            if link.exists():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)


def main() -> int:
    dest = ROOT / "build" / "typecheck"
    build_tree(dest)
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "-p",
        "agentlog",
        *sys.argv[1:],
    ]
    return subprocess.call(cmd, cwd=dest)


if __name__ == "__main__":
    raise SystemExit(main())
