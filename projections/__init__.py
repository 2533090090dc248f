"""agentlog.projections."""
