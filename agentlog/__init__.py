"""agentlog: an event-sourced orchestration engine for multi-agent workflows on Kafka.

The public facade. Importing it connects to nothing and reads no environment.
"""

from agentlog.errors import (
    AgentlogError,
    ConfigError,
    ConnectError,
    DecodeError,
    EmbeddedServerError,
    SchemaError,
)
from agentlog.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "AgentlogError",
    "ConfigError",
    "ConnectError",
    "DecodeError",
    "EmbeddedServerError",
    "SchemaError",
    "Settings",
    "__version__",
]
