"""Dialect-neutral model: requests, responses, stream events, errors. Imports nothing of relaygate."""

__all__: list[str] = []
