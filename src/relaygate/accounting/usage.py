"""What a finished request is billed for.

Upstream-reported usage is the source of truth. A stream cut short (upstream failure mid-stream,
or the caller hanging up) often carries no final usage report: OpenAI-style streams send usage only
in the last chunk, Anthropic's ``message_start`` holds the input but not the output. Such a stream
is billed for what was delivered: counts the upstream did report are kept, and the missing ones
are estimated from the prompt and from the characters already relayed to the caller, at the
usual four characters a token. A cut-short stream is never billed as free.
"""

from __future__ import annotations

from relaygate.core.estimate import CHARS_PER_TOKEN, estimate_input_tokens
from relaygate.core.types import ChatRequest, Usage

CUT_SHORT_OUTCOMES = frozenset({"partial", "client_closed"})


def billable_usage(
    usage: Usage | None,
    outcome: str,
    delivered_chars: int,
    request: ChatRequest | None,
) -> Usage | None:
    """The usage to bill; ``usage`` itself unless the stream was cut short with counts missing."""
    if outcome not in CUT_SHORT_OUTCOMES:
        return usage
    reported = usage or Usage()
    output = reported.output_tokens
    if delivered_chars:
        output = max(output, -(-delivered_chars // CHARS_PER_TOKEN))
    input_tokens = reported.input_tokens
    if not reported.prompt_total and request is not None:
        input_tokens = estimate_input_tokens(request)
    if output == reported.output_tokens and input_tokens == reported.input_tokens:
        return usage
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output,
        cache_read_tokens=reported.cache_read_tokens,
        cache_write_tokens=reported.cache_write_tokens,
        reasoning_tokens=reported.reasoning_tokens,
        cache_write_1h_tokens=reported.cache_write_1h_tokens,
    )
