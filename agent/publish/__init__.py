"""Publishing over MQTT: durable QoS 1 delivery, the device's status, remote commands.

``Publisher`` is the one adapter over paho-mqtt; everything else codes against the
names exported here. The topic tree and the payloads are the wire contract in
:mod:`agent.protocol`, shared with the collector.
"""

from agent.publish.base import Message, Priority, Sink
from agent.publish.commands import CommandRequest, CommandRouter, confine
from agent.publish.mqtt import Publisher

__all__ = ["CommandRequest", "CommandRouter", "Message", "Priority", "Publisher", "Sink", "confine"]
