"""Dialect-neutral model: requests, responses, stream events, errors. Imports nothing of ours."""

__all__: list[str] = []
