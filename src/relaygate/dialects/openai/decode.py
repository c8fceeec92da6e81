"""OpenAI Chat Completions request (wire JSON) -> neutral ``ChatRequest``.

Plain dict access and explicit checks: this runs on every request. Fields the neutral model has no
place for (``seed``, ``logit_bias``, ``reasoning_effort`` ...) stay in ``ChatRequest.raw`` and reach
OpenAI upstreams unchanged; other upstreams never see them. ``n`` above 1 is refused: the gateway
answers with exactly one choice.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.core.errors import InvalidRequestError, clip
from relaygate.core.json_depth import check_body_depth
from relaygate.core.types import ChatRequest, JSONObject, ResponseFormat, Tool, ToolChoice
from relaygate.dialects.base import RequestHead
from relaygate.dialects.openai.messages import decode_messages


def decode_request(body: bytes) -> ChatRequest:
    """Parse and validate a chat request; raises ``InvalidRequestError`` naming the field."""
    return decode_head(read_head(body))


def read_head(body: bytes) -> RequestHead:
    """Parse the body as far as routing needs: a JSON object of sane depth with a model."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidRequestError("Request body must be a JSON object")
    check_body_depth(body, raw)
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("model: required, a non-empty string", param="model")
    user = raw.get("user")
    return RequestHead(model, raw.get("stream") is True, user if type(user) is str else None, raw)


def decode_head(head: RequestHead) -> ChatRequest:
    """The rest of the validation, on a body ``read_head`` parsed."""
    raw = head.raw
    _check_n(raw.get("n"))
    messages, system = decode_messages(raw.get("messages"))
    stream = _opt_bool(raw, "stream") or False
    tools = _tools(raw.get("tools"))
    # Positional, in ChatRequest's field order: matching 16 keywords against 19 parameter names
    # cost as much as building the request itself (~7k instructions), once per request.
    return ChatRequest(
        "openai",  # dialect
        head.model,  # model
        messages,  # messages
        system,  # system
        _max_tokens(raw),  # max_tokens
        _opt_number(raw, "temperature"),  # temperature
        _opt_number(raw, "top_p"),  # top_p
        None,  # top_k
        _stop(raw.get("stop")),  # stop
        stream,  # stream
        stream and _include_usage(raw.get("stream_options")),  # include_usage
        tools,  # tools
        _tool_choice(raw.get("tool_choice"), _opt_bool(raw, "parallel_tool_calls")),  # tool_choice
        _response_format(raw.get("response_format")),  # response_format
        None,  # thinking
        _opt_object(raw, "metadata"),  # metadata
        _opt_str(raw, "user"),  # user
        raw,  # raw
    )


def _check_n(n: Any) -> None:
    if n is None:
        return
    if type(n) is not int or n < 1:
        raise InvalidRequestError("n: expected a positive integer", param="n")
    if n > 1:
        raise InvalidRequestError(
            "n: only n=1 is supported; send separate requests for more choices", param="n"
        )


def _opt_bool(raw: JSONObject, name: str) -> bool | None:
    value = raw.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise InvalidRequestError(f"{name}: expected a boolean", param=name)


def _opt_str(raw: JSONObject, name: str) -> str | None:
    value = raw.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequestError(f"{name}: expected a string", param=name)


def _opt_object(raw: JSONObject, name: str) -> JSONObject | None:
    value = raw.get(name)
    if value is None or isinstance(value, dict):
        return value
    raise InvalidRequestError(f"{name}: expected an object", param=name)


def _opt_number(raw: JSONObject, name: str) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise InvalidRequestError(f"{name}: expected a number", param=name)


def _max_tokens(raw: JSONObject) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = raw.get(name)
        if value is None:
            continue
        if type(value) is not int or value < 1:
            raise InvalidRequestError(f"{name}: expected a positive integer", param=name)
        return value
    return None


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise InvalidRequestError("stop: expected a string or an array of strings", param="stop")


def _include_usage(options: Any) -> bool:
    if options is None:
        return False
    if not isinstance(options, dict):
        raise InvalidRequestError("stream_options: expected an object", param="stream_options")
    value = options.get("include_usage")
    if value is None or isinstance(value, bool):
        return bool(value)
    raise InvalidRequestError(
        "stream_options.include_usage: expected a boolean", param="stream_options.include_usage"
    )


def _tools(value: Any) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequestError("tools: expected an array", param="tools")
    return tuple(_tool(item, f"tools[{i}]") for i, item in enumerate(value))


def _tool(item: Any, path: str) -> Tool:
    if not isinstance(item, dict):
        raise InvalidRequestError(f"{path}: expected an object", param=path)
    if item.get("type") != "function":
        raise InvalidRequestError(
            f"{path}.type: expected 'function', got {clip(repr(item.get('type')))}",
            param=f"{path}.type",
        )
    function = item.get("function")
    if not isinstance(function, dict):
        raise InvalidRequestError(f"{path}.function: expected an object", param=f"{path}.function")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(
            f"{path}.function.name: expected a non-empty string", param=f"{path}.function.name"
        )
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidRequestError(
            f"{path}.function.description: expected a string",
            param=f"{path}.function.description",
        )
    parameters = function.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    elif not isinstance(parameters, dict):
        raise InvalidRequestError(
            f"{path}.function.parameters: expected a JSON Schema object",
            param=f"{path}.function.parameters",
        )
    strict = function.get("strict")
    extra: JSONObject = {"strict": strict} if isinstance(strict, bool) else {}
    return Tool(name=name, description=description, input_schema=parameters, extra=extra)


def _tool_choice(value: Any, parallel: bool | None) -> ToolChoice | None:
    disable_parallel = parallel is False
    if value is None:
        return ToolChoice("auto", disable_parallel=True) if disable_parallel else None
    if value == "auto":
        return ToolChoice("auto", disable_parallel=disable_parallel)
    if value == "required":
        return ToolChoice("any", disable_parallel=disable_parallel)
    if value == "none":
        return ToolChoice("none", disable_parallel=disable_parallel)
    if isinstance(value, dict) and value.get("type") == "function":
        function = value.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name:
            return ToolChoice("tool", name=name, disable_parallel=disable_parallel)
        raise InvalidRequestError(
            "tool_choice.function.name: expected a non-empty string",
            param="tool_choice.function.name",
        )
    raise InvalidRequestError(
        "tool_choice: expected 'auto', 'none', 'required' or "
        '{"type": "function", "function": {"name": ...}}',
        param="tool_choice",
    )


def _response_format(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise InvalidRequestError(
                "response_format.json_schema: expected an object with a 'schema' object",
                param="response_format.json_schema",
            )
        name = spec.get("name")
        return ResponseFormat(
            "json_schema",
            name=name if isinstance(name, str) else None,
            schema=spec.get("schema"),
            strict=spec.get("strict") is True,
        )
    raise InvalidRequestError(
        "response_format.type: expected 'text', 'json_object' or 'json_schema'",
        param="response_format.type",
    )
