"""The one way to make a paho client: protocol, credentials and TLS set up once, for every side.

The device's publisher, ``check``'s broker probe and the collector all build their client with
:func:`new_client`, so a TLS fix lands everywhere at once. A small common basic: it imports
nothing of the agent but config types and errors, so the collector may use it.
"""

from agent.mqtt.client import ClientSpec, describe_connect_error, new_client, new_properties, probe

__all__ = ["ClientSpec", "describe_connect_error", "new_client", "new_properties", "probe"]
