"""agentlog.streams.embedded."""
