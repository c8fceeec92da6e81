"""The web dashboard at ``/dashboard``: admin-token login, server-rendered pages over the admin
API's handlers and the gateway's own metrics, htmx and uPlot shipped as package assets."""

from relaygate.dashboard.routes import handle_dashboard, is_dashboard_path

__all__ = ["handle_dashboard", "is_dashboard_path"]
