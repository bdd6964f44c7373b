"""The central collector: stores sampled frames from every device, indexes them, exports datasets.

Runs as `inspection-agent collector --config PATH` (extra `collector`); see docs/collector.md.
"""
