"""Provider name -> adapter class: a plain dict built when the catalog is built, no import magic."""

from __future__ import annotations

from relaygate.core.types import DialectName
from relaygate.providers.anthropic import AnthropicProvider
from relaygate.providers.base import Provider
from relaygate.providers.openai import OpenAIProvider


def provider_for_wire(wire: DialectName) -> Provider:
    """The adapter for an upstream speaking ``wire`` (the mock speaks either)."""
    providers: dict[DialectName, Provider] = {
        "openai": OpenAIProvider(),
        "anthropic": AnthropicProvider(),
    }
    return providers[wire]
