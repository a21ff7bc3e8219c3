"""Training and serving agree: the synthetic history replayed through the stream Lambda leaves in
DynamoDB exactly the latest aggregates the Glue (Spark) job computes from the same raw data; and the
local producer → Kinesis (moto server) → poller → handler path delivers every event once."""

from __future__ import annotations

import json

import pytest

from glue_jobs import features as job
from local import stack as local_stack
from local.streaming import Poller, history_events, load_handler, produce
from returnguard import synth
from returnguard.aggregates import AggregateStore, replay
from returnguard.features import OrderContext
from tests.integration.stream.conftest import Delivery, normalized, stored_states

pytestmark = pytest.mark.slow


def test_stream_aggregates_equal_the_spark_jobs(spark, aws, stream_handler, tmp_path) -> None:
    data = synth.generate(synth.SynthConfig(orders=1_200, seed=8, days=60))
    synth.write_raw(data, tmp_path)
    job.run(spark, str(tmp_path / "raw"), str(tmp_path / "processed"))
    batch = normalized(dict(job.load_online(tmp_path / "processed" / "features" / "online")))

    events = list(history_events(data))
    Delivery(stream_handler, batch_size=100).run([json.dumps(e).encode() for e in events])
    online = normalized(stored_states(aws["dynamodb"]))

    assert len(events) > 1_500 and len(online) == len(batch)
    assert online == batch
    # and so the vector a new order gets is the same from either store
    from_stream, from_spark = AggregateStore(), AggregateStore()
    for target, states in ((from_stream, online), (from_spark, batch)):
        for pk, state in states.items():
            entity, entity_id = pk.split("#", 1)
            if entity == "customer":
                target.customers[entity_id] = state
            else:
                target.entities[(entity, entity_id)] = state
    _, orders, _ = synth.to_contexts(data)
    after = max(o.order_time_ms for o in orders) + 60_000
    for order in orders[-100:]:
        probe = OrderContext(**{**order.__dict__, "order_id": "PROBE", "order_time_ms": after})
        assert from_stream.features(probe) == from_spark.features(probe)


def test_local_producer_and_poller_deliver_every_event_once() -> None:
    data = synth.generate(synth.SynthConfig(orders=150, seed=4, days=30))
    events = list(history_events(data))
    stack = local_stack.start(prefix="returnguard-stream-test")
    try:
        handler = load_handler(stack)
        assert produce(stack, events, batch_size=100) == len(events)
        stats = Poller(stack, handler, batch_size=50).drain()
        assert stats.records == len(events) and stats.failed == 0
        client = stack.client("dynamodb")
        markers = client.scan(TableName=stack.table_names["idempotency"], Select="COUNT")["Count"]
        assert markers == len(events)
        store, walk = replay(*synth.to_contexts(data))
        for _ in walk:
            pass
        item = client.get_item(
            TableName=stack.table_names["features"],
            Key={"pk": {"S": f"customer#{data.orders.customer_id.iloc[0]}"}},
        )
        state = json.loads(item["Item"]["state"]["S"])
        assert state == normalized(store.customers[data.orders.customer_id.iloc[0]])
    finally:
        stack.stop()
