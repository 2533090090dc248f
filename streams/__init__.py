"""agentlog.streams."""
