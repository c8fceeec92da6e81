"""Who may read ``/metrics``: anyone, or (``server.metrics_token_required``) the holder of an admin
token or of the metrics token (``server.metrics_token_env``)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from relaygate.auth.cache import KeyCache
from relaygate.auth.keys import extract_api_key
from relaygate.core.errors import AuthenticationError

METRICS_TOKEN_NEEDED = (
    "/metrics requires Authorization: Bearer with an admin token or the metrics token"  # noqa: S105
)


class MetricsAccess:
    def __init__(self, keys: KeyCache, *, required: bool, token: str | None = None) -> None:
        self._keys = keys
        self._required = required
        self._token = token.encode() if token else None

    def check(self, headers: Mapping[str, str]) -> None:
        """Raise AuthenticationError unless these request headers may read the metrics."""
        if not self._required:
            return
        presented = extract_api_key(headers)
        if presented is None:
            raise AuthenticationError(METRICS_TOKEN_NEEDED)
        if self._token is not None and hmac.compare_digest(presented.encode(), self._token):
            return
        try:
            self._keys.authenticate_admin(presented)
        except AuthenticationError:
            raise AuthenticationError(METRICS_TOKEN_NEEDED) from None
