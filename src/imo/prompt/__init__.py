"""The prompt toolkit: the user's LLM tips as code and as experiments (issue 20).

- builder: prompts in the notes' order (JSON context, section splitters, a strict-JSON
  instruction with typed keys and defaults);
- abbrev: an abbreviation table, expander and detector;
- records: the delimited record format shared by prompt and parser (the parser never raises);
- typed: pydantic-typed answers with retries that feed the validation error back;
- tasks: generated extraction items with exact truth; score: the exact checkers;
- ab: the A/B harness against any OpenAI-compatible endpoint (`imo prompt ab`);
- local: the same arms answered in process by a local model through the engine (the prompt claims).
"""
