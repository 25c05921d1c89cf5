"""The live tail's data structures on their own: stream order, backfill, resume, bounded queues."""

from __future__ import annotations

import pytest

from services.realtime.buffer import BufferedEvent, RecentEvents, stream_position
from services.realtime.schemas import SubscribeRequest
from services.realtime.subscriptions import Filter, LiveClient, Registry, build_filter
from shared.internal import Principal
from shared.querylang import QuerySyntaxError

USER = Principal(kind="user", id="u", name="u", role="viewer")


def item(entry_id: str, index: int, event_id: str, **fields: object) -> BufferedEvent:
    """A buffered event at stream position (entry_id, index)."""
    return BufferedEvent(stream_position(entry_id, index), {"id": event_id, "level": "INFO", **fields}, 0)


def test_positions_order_by_entry_then_index_not_by_id() -> None:
    assert stream_position("1700000000000-2", 0) > stream_position("1700000000000-1", 7)
    assert stream_position("1700000000001-0", 0) > stream_position("1700000000000-9", 0)
    assert stream_position("5-0", 3) > stream_position("5-0", 2)


def test_resume_after_an_id_follows_stream_order_even_when_ids_do_not() -> None:
    buffer = RecentEvents(200)
    # ULIDs of a later entry sorting before earlier ones must not confuse the resume.
    for it in [
        item("1-0", 0, "Z1"),
        item("1-0", 1, "Z2"),
        item("2-0", 0, "A1"),
        item("2-0", 1, "A0"),
        item("3-0", 0, "M"),
    ]:
        buffer.append(it)
    after = buffer.after("Z2", lambda _: True)
    assert after is not None and [i.id for i in after] == ["A1", "A0", "M"]
    assert buffer.after("M", lambda _: True) == []
    assert buffer.after("gone", lambda _: True) is None


def test_backfill_takes_the_newest_matching_events_oldest_first() -> None:
    buffer = RecentEvents(200)
    for n in range(300):
        buffer.append(item(f"{n}-0", 0, f"e{n}", level="ERROR" if n % 2 else "INFO"))
    assert len(buffer) == 200  # the oldest fell off
    errors = buffer.last_matching(lambda i: i.event["level"] == "ERROR", 3)
    assert [i.id for i in errors] == ["e295", "e297", "e299"]


def test_full_queue_drops_the_oldest_and_counts() -> None:
    client = LiveClient(sid="s", principal=USER, queue_size=10, batch_size=4, filter=Filter())
    for n in range(25):
        client.push(item(f"{n}-0", 0, f"e{n}"))
    assert client.dropped == 15
    assert client.batch_ready.is_set() and client.has_data.is_set()
    assert [i.id for i in client.take(4)] == ["e15", "e16", "e17", "e18"]
    assert client.take_dropped() == 15 and client.take_dropped() == 0
    assert [i.id for i in client.take(100)] == [f"e{n}" for n in range(19, 25)]
    assert not client.has_data.is_set() and not client.batch_ready.is_set()


def test_fan_out_respects_filters_and_tenant() -> None:
    registry = Registry()
    tenant = Principal(kind="key", id="k", name="k", scopes=frozenset({"read"}), tenant_id="acme")
    everyone = LiveClient(sid="a", principal=USER, queue_size=10, batch_size=10)
    restricted = LiveClient(sid="b", principal=tenant, queue_size=10, batch_size=10)
    unsubscribed = LiveClient(sid="c", principal=USER, queue_size=10, batch_size=10)
    everyone.filter = build_filter(levels=["ERROR"], services=[], q="", tenant_id=None)
    restricted.filter = build_filter(levels=[], services=[], q="", tenant_id="acme")
    for client in (everyone, restricted, unsubscribed):
        registry.add(client)
    registry.fan_out(item("1-0", 0, "x", level="ERROR", tenant_id="globex"))
    registry.fan_out(item("1-0", 1, "y", level="INFO", tenant_id="acme"))
    assert [i.id for i in everyone.queue] == ["x"]
    assert [i.id for i in restricted.queue] == ["y"]
    assert not unsubscribed.queue


def test_resubscribe_discards_queued_events_and_puts_backfill_first() -> None:
    client = LiveClient(sid="s", principal=USER, queue_size=10, batch_size=10, filter=Filter())
    client.push(item("1-0", 0, "old"))
    client.resubscribe(Filter(levels=frozenset({"ERROR"})), [item("0-0", 0, "backfilled")])
    assert not client.queue and client.generation == 1
    assert [i.id for i in client.take_backfill()] == ["backfilled"]


def test_subscribe_payload_validation() -> None:
    request = SubscribeRequest.model_validate({"levels": ["error"], "services": [" api ", ""], "q": None})
    assert request.levels == ["ERROR"] and request.services == ["api"] and request.q == ""
    with pytest.raises(ValueError):
        SubscribeRequest.model_validate({"levels": ["LOUD"]})
    with pytest.raises(QuerySyntaxError) as bad:
        build_filter(levels=[], services=[], q="message:(a", tenant_id=None)
    assert bad.value.position >= 0
