"""Gateway keys and admin tokens: generation, hashing, the in-process cache, first-run bootstrap."""

from relaygate.auth.bootstrap import (
    CREDENTIALS_FILE,
    DEFAULT_KEY_NAME,
    BootstrapResult,
    bootstrap_if_empty,
)
from relaygate.auth.cache import KeyCache, check_model
from relaygate.auth.keys import (
    NewKey,
    bearer_token,
    display_prefix,
    extract_api_key,
    generate_admin_token,
    generate_api_key,
    hash_key,
    key_status,
    new_api_key,
)

__all__ = [
    "CREDENTIALS_FILE",
    "DEFAULT_KEY_NAME",
    "BootstrapResult",
    "KeyCache",
    "NewKey",
    "bearer_token",
    "bootstrap_if_empty",
    "check_model",
    "display_prefix",
    "extract_api_key",
    "generate_admin_token",
    "generate_api_key",
    "hash_key",
    "key_status",
    "new_api_key",
]
