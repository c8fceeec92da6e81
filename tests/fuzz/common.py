"""Building blocks shared by both dialects' body generators: text, small JSON, tool schemas.

Valid generators stay within what a real client sends: printable text with a little Unicode, the
mock's harmless directives (a tool call, a word count; never a fault, those have their own
test), shallow JSON Schemas, images as a data URL or an https URL.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

MODELS = ("fz-gpt", "fz-claude", "fz-gpt-alias")
FAULT_MODELS = ("fz-fault-gpt", "fz-fault-claude")
TOOL_NAMES = ("get_weather", "search", "run_cmd", "Edit", "t")
# A 1x1 transparent PNG.
PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)

models = st.sampled_from(MODELS)
tool_names = st.sampled_from(TOOL_NAMES)

# Printable text plus a few awkward but legal characters (NUL, RTL mark, emoji, CJK).
_ALPHABET = "abcxyzABZ019 .,:;!?-_'\"\\/{}[]<>\x00\n\t\u200f\u00e9\u00df😀中"
plain_text = st.text(_ALPHABET, max_size=40)


def _directive(name: str) -> str:
    return f'mock:tool {name} {{"city": "Paris", "n": 1}}'


directive_text = st.one_of(
    st.builds(_directive, tool_names),
    st.builds("mock:words {}".format, st.integers(0, 40)),
)
texts = st.one_of(plain_text, plain_text, directive_text)
# Anthropic refuses empty and whitespace-only text blocks.
solid_text = plain_text.filter(str.strip)
solid_texts = st.one_of(solid_text, solid_text, directive_text)
short_ids = st.text("abcdefghijklmnop0123456789_", min_size=1, max_size=12)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    plain_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(plain_text, inner, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(_ALPHABET, min_size=1, max_size=12), json_values, max_size=4)

_PROPERTY_SCHEMAS: st.SearchStrategy[dict[str, Any]] = st.sampled_from(
    [
        {"type": "string"},
        {"type": "string", "enum": ["a", "b"]},
        {"type": "integer", "minimum": 0},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "array", "items": {"type": "string"}},
        {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
    ]
)


@st.composite
def object_schemas(draw: st.DrawFn) -> dict[str, Any]:
    """A shallow ``{"type": "object", ...}`` JSON Schema, as tools and structured output use."""
    props = draw(st.dictionaries(st.sampled_from(["city", "n", "path", "q"]), _PROPERTY_SCHEMAS))
    required = draw(st.lists(st.sampled_from(sorted(props) or ["city"]), unique=True))
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required and set(required) <= set(props):
        schema["required"] = required
    if draw(st.booleans()):
        schema["additionalProperties"] = False
    return schema


image_urls = st.sampled_from([f"data:image/png;base64,{PNG_BASE64}", "https://example.com/cat.png"])
temperatures = st.floats(0, 2, allow_nan=False)
probabilities = st.floats(0, 1, allow_nan=False)
max_tokens = st.integers(1, 4096)
stops = st.one_of(st.text(_ALPHABET, min_size=1, max_size=5), st.lists(plain_text, max_size=3))


def optional(
    draw: st.DrawFn, body: dict[str, Any], key: str, strategy: st.SearchStrategy[Any]
) -> None:
    """Set ``body[key]`` from ``strategy`` about half the time."""
    if draw(st.booleans()):
        body[key] = draw(strategy)
