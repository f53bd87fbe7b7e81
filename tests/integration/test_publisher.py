"""The device publisher against the real broker: refused devices do not break it."""

from __future__ import annotations

import pytest

from gridwatch.registry import Registry
from gridwatch.stack import Stack
from simulators.mqtt_publisher import MqttPublisher, PublishError

pytestmark = [pytest.mark.integration]


def test_refused_device_does_not_break_later_connections(stack: Stack, registry: Registry) -> None:
    good = [p.device.device_id for p in registry.devices_of("water")[:3]]
    with MqttPublisher(stack.settings) as pub:
        for attempt in range(3):
            with pytest.raises(PublishError, match=r"cannot connect|was refused"):
                pub.publish(f"gw/v1/water/ghost-{attempt}", b"{}")
            for device in good:
                pub.publish(f"gw/v1/water/{device}", b"{}")
        pub.flush(30)
        assert pub.stats.published == 3 * len(good)
        assert set(pub.stats.refused) == {"ghost-0", "ghost-1", "ghost-2"}
        assert pub.stats.refused_messages == {}


def test_messages_the_broker_refuses_are_counted(stack: Stack, registry: Registry) -> None:
    """A device publishing its id under another kind gets PUBACK 0x87: counted, not
    silently gone."""
    device = registry.devices_of("water")[0].device.device_id
    with MqttPublisher(stack.settings) as pub:
        pub.publish(f"gw/v1/rain/{device}", b"{}")
        pub.publish(f"gw/v1/camera/{device}", b"{}")
        pub.publish(f"gw/v1/water/{device}", b"{}")
        pub.flush(30)
        assert pub.stats.published == 3
        assert pub.stats.refused_messages == {"Not authorized": 2}
