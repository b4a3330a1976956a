"""Three fixed-key JSON schemas used by the constrained-decoding tests and benchmark
(benchmarks/prompts.py) and shown in docs/prompts.md: strings with length bounds, bounded integers,
a number in halves, an enum, a boolean, an array and a nested object. Every number is bounded
(a greedy small model can otherwise write digits until its token limit).

    from imo.prompt.schemas import SCHEMAS; SCHEMAS["person"]
"""

SCHEMAS: dict[str, dict] = {
    "person": {"type": "object", "additionalProperties": False, "required": ["name", "age", "tags"],
               "properties": {"name": {"type": "string", "maxLength": 12},
                              "age": {"type": "integer", "minimum": 0, "maximum": 150},
                              "tags": {"type": "array", "items": {"type": "string", "maxLength": 6},
                                       "maxItems": 3}}},
    # multipleOf 0.5 bounds the fraction's digits; 0.5 is exact in binary, so jsonschema's float
    # division checks it exactly (with 0.01 it rejects valid values such as 68104.04)
    "product": {"type": "object", "additionalProperties": False,
                "required": ["price_cents", "weight_kg", "color", "in_stock"],
                "properties": {"price_cents": {"type": "integer", "minimum": 0, "maximum": 10000000},
                               "weight_kg": {"type": "number", "minimum": 0, "maximum": 1000, "multipleOf": 0.5},
                               "color": {"enum": ["red", "green", "blue"]},
                               "in_stock": {"type": "boolean"}}},
    "event": {"type": "object", "additionalProperties": False, "required": ["when", "where"],
              "properties": {"when": {"type": "object", "additionalProperties": False, "required": ["month", "day"],
                                      "properties": {"month": {"type": "integer", "minimum": 1, "maximum": 12},
                                                     "day": {"type": "integer", "minimum": 1, "maximum": 31}}},
                             "where": {"type": "string", "minLength": 1, "maxLength": 8}}},
}
