"""Monitoring as data: alert rules, their promtool tests, runbooks and dashboards, in Python."""
