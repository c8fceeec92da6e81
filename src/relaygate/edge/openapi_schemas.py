"""The component schemas of the OpenAPI document (``openapi.py``): the proxy routes' bodies
described loosely, the admin API's from its pydantic payload models, the error shapes."""

from __future__ import annotations

from typing import Any

from relaygate.admin.payloads import KeyCreate, KeyUpdate, TopUp

Schema = dict[str, Any]
_REF = "#/components/schemas/{model}"


def ref(name: str) -> Schema:
    """A reference to the component schema ``name``."""
    return {"$ref": _REF.format(model=name)}


def _loose(required: list[str], properties: Schema, description: str) -> Schema:
    return {
        "type": "object",
        "description": description,
        "required": required,
        "properties": properties,
        "additionalProperties": True,
    }


_MESSAGES: Schema = {"type": "array", "items": {"type": "object"}}
_SESSION_TURN: Schema = {
    "type": "object",
    "properties": {"messages": _MESSAGES, "tokens": {"type": "integer"}},
}
_TOOLS: Schema = {"type": "array", "items": {"type": "object"}}


def component_schemas() -> dict[str, Schema]:
    string, boolean, number = {"type": "string"}, {"type": "boolean"}, {"type": "number"}
    positive = {"type": "integer", "minimum": 1}
    admin: dict[str, Schema] = {}
    for model in (KeyCreate, KeyUpdate, TopUp):
        schema = model.model_json_schema(ref_template=_REF)
        admin.update(schema.pop("$defs", {}))
        admin[model.__name__] = schema
    return {
        "OpenAIChatRequest": _loose(
            ["model", "messages"],
            {
                "model": string,
                "messages": {**_MESSAGES, "minItems": 1},
                "stream": boolean,
                "stream_options": {"type": "object"},
                "max_tokens": positive,
                "max_completion_tokens": positive,
                "temperature": number,
                "top_p": number,
                "stop": {"oneOf": [string, {"type": "array", "items": string}]},
                "n": {"const": 1},
                "tools": _TOOLS,
                "tool_choice": {"oneOf": [string, {"type": "object"}]},
                "parallel_tool_calls": boolean,
                "response_format": {"type": "object"},
                "user": string,
                "metadata": {"type": "object"},
            },
            "OpenAI Chat Completions request; other fields reach OpenAI-wire upstreams unchanged",
        ),
        "AnthropicMessagesRequest": _loose(
            ["model", "max_tokens", "messages"],
            {
                "model": string,
                "max_tokens": positive,
                "messages": _MESSAGES,
                "system": {"oneOf": [string, {"type": "array", "items": {"type": "object"}}]},
                "stream": boolean,
                "temperature": number,
                "top_p": number,
                "top_k": {"type": "integer"},
                "stop_sequences": {"type": "array", "items": string},
                "tools": _TOOLS,
                "tool_choice": {"type": "object"},
                "thinking": {"type": "object"},
                "metadata": {"type": "object"},
            },
            "Anthropic Messages request; other fields reach Anthropic-wire upstreams unchanged",
        ),
        "CountTokensRequest": _loose(
            ["model", "messages"],
            {"model": string, "messages": _MESSAGES, "system": {}, "tools": _TOOLS},
            "Anthropic count_tokens request",
        ),
        "CountTokensResponse": {
            "type": "object",
            "required": ["input_tokens"],
            "properties": {"input_tokens": {"type": "integer", "minimum": 0}},
        },
        "OpenAIChatCompletion": _loose(["id", "object", "choices"], {}, "chat.completion"),
        "AnthropicMessage": _loose(["id", "type", "content"], {}, "A Messages API message"),
        "Models": _loose(["data"], {"data": {"type": "array", "items": ref("Model")}}, "Models"),
        "Model": _loose(["id"], {"id": string}, "A model (OpenAI or Anthropic shape)"),
        "Session": _loose(
            ["id", "turns"],
            {"id": string, "turns": {"type": "array", "items": _SESSION_TURN}},
            "A session's turns: each a request's messages and the answer, neutral blocks",
        ),
        "OpenAIError": _error_schema(
            {"message": string, "type": string, "param": {}, "code": {}}, None
        ),
        "AnthropicError": _error_schema({"type": string, "message": string}, "error"),
        "AdminError": _error_schema({"type": string, "message": string, "param": {}}, None),
        **admin,
    }


def _error_schema(inner: Schema, type_const: str | None) -> Schema:
    error = {"type": "object", "required": ["type", "message"], "properties": inner}
    schema: Schema = {"type": "object", "required": ["error"], "properties": {"error": error}}
    if type_const is not None:
        schema["required"] = ["type", "error"]
        schema["properties"]["type"] = {"const": type_const}
        schema["properties"]["request_id"] = {"type": "string"}
    return schema
