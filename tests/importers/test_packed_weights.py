"""`--weights int8|int4|bfloat16` on `imo sample` and `imo chat` for an imported run (tiny GGUF):
the packed model answers, and a bad value gets one line and exit 2 before anything loads."""

import pytest
from test_gguf_import import cli
from tiny_gguf import write_tiny_gguf

from imo.importers.gguf import import_gguf
from imo.model import qlinear

pytest.importorskip("gguf")
pytestmark = pytest.mark.skipif(not qlinear.kernels_available(), reason="needs torch's CPU int8/int4 kernels")


@pytest.fixture
def run(tmp_path):
    import_gguf(write_tiny_gguf(tmp_path / "tiny.gguf"), name="t")
    return "t"


@pytest.mark.parametrize("weights", ["int8", "int4", "bfloat16"])
def test_sample_and_chat_with_packed_weights(run, capsys, weights):
    code, out, err = cli(capsys, "sample", run, "--prompt", "hello", "--tokens", "6", "--temperature", "0",
                         "--weights", weights)
    assert code == 0 and out.startswith("hello"), err
    code, first, err = cli(capsys, "chat", run, "--once", "hello world", "--max-tokens", "8", "--weights", weights)
    assert code == 0 and first.strip(), err
    _, second, _ = cli(capsys, "chat", run, "--once", "hello world", "--max-tokens", "8", "--weights", weights)
    assert first == second  # greedy and repeatable


@pytest.mark.parametrize("cmd", [["sample", "t", "--tokens", "2"], ["chat", "t", "--once", "hi"], ["serve", "t", "--port", "0"]])
def test_bad_weights_one_line_exit_2(run, capsys, cmd):
    code, out, err = cli(capsys, *cmd, "--weights", "int3")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--weights must be one of" in err, err
