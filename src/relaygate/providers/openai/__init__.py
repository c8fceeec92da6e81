"""The OpenAI Chat Completions wire format on the upstream side."""

from relaygate.providers.openai.provider import OpenAIProvider
from relaygate.providers.openai.stream import OpenAIStreamParser

__all__ = ["OpenAIProvider", "OpenAIStreamParser"]
