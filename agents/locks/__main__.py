"""``python -m agentlog.agents.locks``: run one lock manager until SIGINT/SIGTERM."""

from agentlog.agents.locks.cli import main

raise SystemExit(main())
