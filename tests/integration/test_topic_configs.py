"""Topic configurations: the journal and the locks topic keep everything, agents compact.

Recovery folds the journal and the locks topic from offset 0 (workflow state,
and fencing tokens that must never restart), so time retention must never
delete from them.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from agentlog.settings import Settings
from agentlog.streams.topics import AGENTS, CATALOGUE, JOURNAL, LOCKS, admin_client, ensure_topics


def _configs(response: list[Any]) -> dict[str, dict[str, str]]:
    """topic -> {config name: value} from DescribeConfigs responses."""
    found: dict[str, dict[str, str]] = {}
    for resp in response:
        for _code, _msg, _type, name, entries in resp.resources:
            found[name] = {entry[0]: entry[1] for entry in entries}
    return found


async def test_state_topics_are_retained_forever_and_agents_is_compacted(
    kafka_bootstrap: str, broker: str
) -> None:
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"cfg{uuid.uuid4().hex[:10]}",
        partitions=1,
        source="test",
    )
    created = await ensure_topics(settings, CATALOGUE)
    assert all(created.values())
    if broker == "tansu":
        return  # Tansu (memory) keeps everything and does not answer DescribeConfigs
    admin = admin_client(settings)
    await admin.start()
    try:
        names = [settings.topic(s.name) for s in (JOURNAL, LOCKS, AGENTS)]
        response = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    configs = _configs(response)
    assert configs[settings.topic(JOURNAL.name)]["retention.ms"] == "-1"
    assert configs[settings.topic(LOCKS.name)]["retention.ms"] == "-1"
    assert configs[settings.topic(AGENTS.name)]["cleanup.policy"] == "compact"
