"""``python -m agentlog.agents.orchestrator``: run one orchestrator until SIGINT/SIGTERM."""

from agentlog.agents.orchestrator.cli import main

raise SystemExit(main())
