"""Alerts: built-in rules over the gateway's own measurements, notified to webhooks."""

from relaygate.alerts.engine import AlertEngine, Notification
from relaygate.alerts.rules import Finding, Rule
from relaygate.alerts.service import AlertCollector, Alerts, build_alerts

__all__ = [
    "AlertCollector",
    "AlertEngine",
    "Alerts",
    "Finding",
    "Notification",
    "Rule",
    "build_alerts",
]
