"""The OpenAI Chat Completions dialect (the caller's side)."""

from relaygate.dialects.openai.dialect import OpenAIDialect
from relaygate.dialects.openai.encode import OpenAIStreamEncoder

__all__ = ["OpenAIDialect", "OpenAIStreamEncoder"]
