"""Publishing over MQTT: durable QoS 1 delivery, the device's topic tree, remote commands.

``Publisher`` is the one adapter over paho-mqtt; everything else codes against the
names exported here.
"""

from agent.publish.base import Message, Priority, Sink
from agent.publish.commands import CommandRequest, CommandRouter, confine
from agent.publish.mqtt import Publisher
from agent.publish.topics import Topics

__all__ = ["CommandRequest", "CommandRouter", "Message", "Priority", "Publisher", "Sink", "Topics", "confine"]
