"""``python -m agentlog.agents.runtime run module:attr``: see :mod:`agentlog.agents.runtime.cli`."""

from agentlog.agents.runtime.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
