"""The Anthropic Messages wire format on the caller's side."""

from relaygate.dialects.anthropic.dialect import AnthropicDialect
from relaygate.dialects.anthropic.encode import AnthropicStreamEncoder

__all__ = ["AnthropicDialect", "AnthropicStreamEncoder"]
