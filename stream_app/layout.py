"""The stream app's partition layout: its state is co-partitioned with the submissions."""
from __future__ import annotations

from collections.abc import Mapping

from billstream_core.errors import BillstreamError
from billstream_core.settings import Settings


class PartitionLayoutError(BillstreamError):
    code = "BAD_SETTINGS"


def check_partition_layout(settings: Settings, on_broker: Mapping[str, int] | None = None) -> None:
    """The orders table and the router's changelogs are partitioned like the submissions, and
    the table reads the results topic too: both topics need the same partition count, in the
    settings and, given ``on_broker`` (topic → partitions there), on the broker."""
    topics = settings.topics
    if topics.results_partitions != topics.submitted_partitions:
        raise PartitionLayoutError(
            f"the stream app keeps one orders table for {topics.submitted} and {topics.results}: they need the "
            f"same partition count ({topics.submitted_partitions} vs {topics.results_partitions})")
    for name, expected in ((topics.submitted, topics.submitted_partitions), (topics.results, topics.results_partitions)):
        actual = (on_broker or {}).get(name, expected)
        if actual != expected:
            raise PartitionLayoutError(f"topic {name} has {actual} partitions but the settings say {expected}; "
                                       "the stream app's tables are co-partitioned with it: make them agree")
