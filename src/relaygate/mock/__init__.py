"""The built-in mock upstream: a simulated provider speaking the OpenAI and Anthropic wires."""

from relaygate.mock.app import MOCK_MODELS, MockApp, create_mock_app
from relaygate.mock.engine import build_reply, estimate_input_tokens, reply_events
from relaygate.mock.faults import FAULT_HEADER, FAULT_KINDS, FaultPlan

__all__ = [
    "FAULT_HEADER",
    "FAULT_KINDS",
    "MOCK_MODELS",
    "FaultPlan",
    "MockApp",
    "build_reply",
    "create_mock_app",
    "estimate_input_tokens",
    "reply_events",
]
