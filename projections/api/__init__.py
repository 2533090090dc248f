"""The query API (FastAPI): read models, ``as_of`` folds, live tails, metrics, writes."""

from agentlog.projections.api.app import create_app

__all__ = ["create_app"]
