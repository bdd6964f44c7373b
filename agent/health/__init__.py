"""Health: the retained ``.../health`` report, ``{state.dir}/health.json``, and Prometheus.

Import :mod:`agent.health.report` for the reporter; :mod:`agent.health.statefile` alone
is what ``inspection-agent status`` needs.
"""
