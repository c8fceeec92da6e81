"""Structured extraction: a model's answer -> schema-valid JSON (parse, repair, validate,
re-ask), and sandboxed prompt templates. Knows nothing of routing; see ``extractor.extract``."""

from relaygate.extraction.extractor import (
    Ask,
    Extraction,
    ExtractionFailedError,
    Turn,
    Validity,
    corrective_prompt,
    extract,
    judge,
)
from relaygate.extraction.parse import NoJSONError, ParsedAnswer, parse_answer
from relaygate.extraction.schema import InvalidSchemaError, SchemaCheck
from relaygate.extraction.template import PromptTemplate, TemplateRenderError, check_template

__all__ = [
    "Ask",
    "Extraction",
    "ExtractionFailedError",
    "InvalidSchemaError",
    "NoJSONError",
    "ParsedAnswer",
    "PromptTemplate",
    "SchemaCheck",
    "TemplateRenderError",
    "Turn",
    "Validity",
    "check_template",
    "corrective_prompt",
    "extract",
    "judge",
    "parse_answer",
]
