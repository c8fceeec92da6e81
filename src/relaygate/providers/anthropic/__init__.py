"""The Anthropic Messages wire format on the upstream's side."""

from relaygate.providers.anthropic.provider import AnthropicProvider
from relaygate.providers.anthropic.stream import AnthropicStreamParser

__all__ = ["AnthropicProvider", "AnthropicStreamParser"]
