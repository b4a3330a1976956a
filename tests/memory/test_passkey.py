"""The passkey format and exam: episodes as specified, a model that knows the answer passes, the
window of a GPT hides far needles, Infini trials are grouped by compressions, and the CLI refuses."""

import random
import re

import pytest
import torch
from imo_cli import imo
from torch import nn

from imo.exams.passkey import answer_logits, bucket, passkey_exam
from imo.memory.config import MemoryConfig
from imo.memory.model import MemoryLM
from imo.memory.passkey import MIN_BYTES, QUESTION, episode, needle
from imo.model.config import ModelConfig


def test_episode_format():
    rng = random.Random(3)
    for length, n in ((MIN_BYTES, 1), (512, 2), (2048, 2)):
        for depth in (0.0, 0.5, 1.0):
            ep = episode(length, depth, rng, distractors=n)
            key = int(ep.answer)
            assert 10000 <= key <= 99999 and ep.length == length == len(ep.prompt) + 5
            assert ep.prompt.endswith(QUESTION) and ep.prompt.count(needle(key)) == 1
            assert ep.prompt.count(b"The door code is") == n and ep.prompt.index(needle(key)) == ep.key_at
    deep = [episode(4096, d, random.Random(0)).key_at for d in (0.1, 0.5, 0.9)]
    assert deep[0] < 1000 < deep[1] < 3000 < deep[2]
    with pytest.raises(ValueError):
        episode(MIN_BYTES - 1, 0.5, rng, distractors=1)


class Oracle(nn.Module):
    """A 'GPT' that reads the key from the last occurrence of the needle in its window."""

    def __init__(self, context: int) -> None:
        super().__init__()
        self.cfg = ModelConfig(context_length=context)
        self.anchor = nn.Parameter(torch.zeros(1))  # the exam reads on its parameters' device

    def forward(self, x):
        logits = torch.zeros(x.size(0), x.size(1), 256)
        for r, row in enumerate(x.tolist()):
            found = re.findall(rb"The pass key is (\d{5})\. Remember", bytes(row))
            if found:
                key = found[-1]
                for i in range(5):  # the position predicting digit i is 5 - i from the end
                    logits[r, x.size(1) - 5 + i, key[i]] = 1.0
        return logits, None


def test_exam_scores_what_the_model_sees():
    out = passkey_exam({"oracle": Oracle(1024)}, lengths=[512, 4096], depths=[0.1, 0.9], trials=3)
    cells = out["models"]["oracle"]["cells"]
    assert cells["512@0.1"] == cells["512@0.9"] == cells["4096@0.9"] == 1.0
    assert cells["4096@0.1"] == 0.0  # the needle is outside the last 1024 bytes
    assert out["models"]["oracle"]["by_length"] == {"512": 1.0, "4096": 0.5}


def test_infini_trials_by_compressions():
    torch.manual_seed(0)
    model = MemoryLM(ModelConfig(n_layer=1, n_embd=16, n_head=2, context_length=64),
                     MemoryConfig(arch="infini", block=64)).eval()
    out = passkey_exam({"inf": model}, lengths=[512, 1024], depths=[0.1, 0.9], trials=2, distractors=0)
    comp = out["models"]["inf"]["by_compressions"]
    assert sum(v["trials"] for v in comp.values()) == 8
    assert set(comp) == {"1", "4", "8"} and len(out["models"]["inf"]["gates"]) == 1
    rows = torch.randint(0, 256, (2, 200))
    assert torch.allclose(answer_logits(model, rows), model(rows)[0][:, -5:], atol=1e-5)
    assert [bucket(n) for n in (0, 1, 3, 4, 9, 31)] == [0, 1, 2, 4, 8, 16]



def test_cli_refuses_cleanly(tmp_path, capsys):
    assert imo("exam", "passkey", "nosuch") == 2 and "no run matches" in capsys.readouterr().err
    assert imo("exam", "passkey", "x", "--lengths", "100") == 2 and ">= 229" in capsys.readouterr().err
    assert imo("exam", "passkey", "x", "--depths", "0.5,2") == 2 and "[0, 1]" in capsys.readouterr().err
    (tmp_path / "p.png").write_bytes(b"old")
    assert imo("exam", "passkey", "x", "--plot", str(tmp_path / "p.png")) == 2
    assert "--force" in capsys.readouterr().err and (tmp_path / "p.png").read_bytes() == b"old"
    assert imo("exam", "passkey", "--help") == 0 and "--distractors" in capsys.readouterr().out
