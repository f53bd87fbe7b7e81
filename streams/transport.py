"""Our Kafka transport for Faust: faust-streaming's, with the fetch wait we choose and an
idempotent producer.

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

from collections.abc import Mapping
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

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
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Producer(faust_aiokafka.Producer):
    """Faust's producer, idempotent: a produce retried after a lost response (a broker
    killed or a leader moved mid-request) is not written twice. Faust asks for it only
    inside transactions."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer
