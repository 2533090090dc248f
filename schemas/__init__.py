"""agentlog.schemas."""
