"""The wire contract the devices and the collector share: topics, payloads, sample framing, schemas, ids.

Both sides import this package and nothing of each other. It depends on nothing of the agent but
the small common basics (``agent.errors``, ``agent.config``), so the collector can use it without
the capture, model or pipeline code; ``tests/unit/test_layering.py`` keeps it that way.
"""
