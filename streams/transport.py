"""Our Kafka transport for Faust: faust-streaming's, with the fetch wait we choose, offsets
committed per consumer-group generation, and an idempotent producer.

faust-streaming 0.15.3 creates its worker consumer with a hard-coded
``fetch_max_wait_ms=1500``. Apache Kafka answers a fetch as soon as data arrives, but a
consumer whose partitions are idle waits the whole 1.5 s before its next fetch round
(Tansu, the earlier local broker, held every fetch for the whole wait, adding 1.0–1.4 s to
every hop). We build the consumer exactly as Faust does and then set the
wait from ``KafkaSettings.fetch_max_wait_ms`` before the consumer starts (aiokafka
reads it when ``start()`` creates its fetcher). ``tests/integration`` checks that the
running fetcher uses our value, so an upgrade that moves the attribute fails loudly.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import Message, ack_lock

log = logging.getLogger(__name__)

FETCH_WAIT_ATTRIBUTE = "_fetch_max_wait_ms"


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = int(getattr(self.app, "fetch_max_wait_ms", 100))
        if not hasattr(consumer, FETCH_WAIT_ATTRIBUTE):
            raise RuntimeError(
                "aiokafka.AIOKafkaConsumer no longer has _fetch_max_wait_ms; "
                "update streams/transport.py for this aiokafka version"
            )
        setattr(consumer, FETCH_WAIT_ATTRIBUTE, wait_ms)
        return consumer


class Consumer(faust_aiokafka.Consumer):
    """Faust's consumer; offsets are committed only for records handled in the current
    consumer-group generation.

    After every rebalance Faust seeks each assigned partition back to its committed offset
    and delivers the records again, but acks from before that seek still count: records
    queued in a stream before the rebalance are skipped *and acked*, and our sink acks the
    events it wrote before the rebalance once their write returns. Those offsets stay in
    Faust's acked lists, so a commit can move past records the new generation has not yet
    handled — and they are lost if the worker then dies or the group rebalances again (a
    broker killed mid-storm: 564 of 3,280 readings in a CI run), or the acked list keeps a
    hole no later ack fills and the partition never commits again. So an ack from an older
    generation is dropped (the record is delivered again), and the seek forgets every ack
    taken before it. And a commit never passes the one unacked record Faust lets through.

    And no record is ever dropped as already read. Faust drops a fetched record whose
    offset lies below the last one it delivered from that partition (its "read offset"),
    to skip what Kafka sends again after a seek back; but its fetch loop can record an
    offset as read after the seek that ends a rebalance's recovery, and the record at the
    committed offset is then dropped unread and committed past (17-44 readings lost per
    restart in the worker-restart drill, on Tansu). What Kafka sends again after a seek is
    processed again, which every job absorbs (InfluxDB keeps one point per series and
    time, ``streams.batch_state.fresh`` scores a reading once, alerts are keyed by id).
    Gaps are not tracked either: no topic a worker consumes with acks is compacted or
    transactional. ``getmany`` below closes the last way a fetched record went unhandled.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = NeverRead()

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Message) -> bool:
        if message.generation_id not in (None, self.app.consumer_generation_id):
            message.acked = True  # it will be delivered again under the new generation
            return False
        return bool(super().ack(message))

    def _new_offset(self, tp: Any) -> int | None:
        # Faust lets a commit pass over exactly one unacked record: it waits only when the
        # lowest acked offset is more than one above the committed one (the committed
        # offset is the next record to handle, not the last handled).
        committed = self._committed_offset[tp]
        acked = self._acked[tp]
        if committed is not None and acked and not self._gap[tp] and min(acked) > committed:
            return None
        new: int | None = super()._new_offset(tp)
        return new

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ASYNC109
        """Faust's ``getmany`` (faust-streaming 0.15.3), except that a fetched record it
        does not deliver is fetched again.

        Faust drops a fetched record when its partition is not active at that moment
        (paused for a rebalance's recovery, say) or when the group's generation changed
        while it was being delivered, and counts on the seek that ends the next recovery
        to fetch it again. When the drop comes after that seek, the consumer's position
        has moved past records nobody handled: they are never delivered, their partition
        is never committed and the lag never drains (two workers, about one run in four).
        Here the partition is sought back to the first record not delivered."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            with contextlib.suppress(Exception):  # as Faust: the seek is a best effort
                await self.perform_seek()
            return
        undelivered: dict[TP, int] = {}
        for tp, record in self.scheduler.iterate(records):
            deliver = (
                self.flow_active
                and self.app.consumer_generation_id == generation_id
                and (
                    active_partitions is None
                    or tp in active_partitions
                    or tp in self._buffered_partitions
                )
                and tp not in undelivered
            )
            if not deliver:
                undelivered.setdefault(tp, record.offset)
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            yield tp, self._to_message(tp, record)
        assigned = self.assignment()
        for tp, offset in undelivered.items():
            if tp in assigned:
                log.info("fetching %s again from offset %d", tp, offset)
                await self.seek(tp, offset)

    async def perform_seek(self) -> None:
        forget_acks(self)
        await super().perform_seek()


class NeverRead(dict[Any, Any]):
    """Faust's per-partition read offsets, kept but never reported: no record is dropped
    as already read (see ``Consumer``)."""

    def __getitem__(self, tp: Any) -> None:
        return None

    def __setitem__(self, tp: Any, offset: Any) -> None:
        return None


def forget_acks(consumer: Any) -> None:
    """Drop the acked offsets and the gaps Faust keeps per partition (called when every
    partition is sought back to its committed offset: whatever was acked and not yet
    committed will be delivered and acked again)."""
    with ack_lock:
        consumer._acked.clear()
        consumer._acked_index.clear()
        consumer._gap.clear()
        consumer._n_acked = 0


class Producer(faust_aiokafka.Producer):
    """Faust's producer, idempotent: a produce retried after a lost response (a broker
    killed or a leader moved mid-request) is not written twice. Faust asks for it only
    inside transactions."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer
