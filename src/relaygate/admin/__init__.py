"""The admin API under ``/admin`` (admin token auth, JSON): keys, balances, usage, bills."""

from relaygate.admin.routes import handle_admin, is_admin_path, serve_admin

__all__ = ["handle_admin", "is_admin_path", "serve_admin"]
