"""``python -m agentlog``: the same as the ``agentlog`` command."""

from agentlog.cli import main

raise SystemExit(main())
