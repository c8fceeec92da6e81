"""Thin ASGI plumbing for the hot path: no framework, no per-request validation layer."""

__all__: list[str] = []
