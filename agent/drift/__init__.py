"""Data drift: image statistics shared with training, window tests, the on-device monitor.

Import :mod:`agent.drift.monitor` for the monitor; this package stays import-light so the
training script can use :mod:`agent.imagestats` alone.
"""
