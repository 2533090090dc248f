"""agentlog.agents."""
