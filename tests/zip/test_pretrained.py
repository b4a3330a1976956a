"""Pretrained mode: a trained imo run predicts; the file names the run and its weights' hash."""

import io

import pytest

from imo.errors import CheckpointError, ConfigError
from imo.runs.store import RunStore
from imo.train.config import RunConfig
from imo.train.trainer import train_or_reuse
from imo.zip import container as C
from imo.zip.codec import compress_bytes, decompress_bytes
from imo.zip.pretrained import run_info
from imo.zip.settings import ZipSettings

TEXT = b"the cat sat on the mat. the dog sat on the log. " * 10


def test_pretrained_round_trips_names_the_run_and_refuses_other_weights():
    cfg = RunConfig.build(preset=None, model=dict(n_layer=1, n_embd=32, n_head=4, context_length=16),
                          train=dict(corpus="python-docs", steps=3, batch_size=4, warmup=1, seed=0))
    info = run_info(train_or_reuse(cfg, store=RunStore.open(), quiet=True))[1]
    assert info["model_bytes"] > 0
    for predictor in ("net", "mix"):
        s = ZipSettings.build(level=1, predictor=predictor, streams=8, net_window=8)
        blob = compress_bytes(TEXT, s, info)
        header = C.read_header(io.BytesIO(blob))
        assert header["mode"] == "pretrained" and header["model"]["sha256"] == info["sha256"]
        assert decompress_bytes(blob) == TEXT
    s = ZipSettings.build(level=1, predictor="net", streams=8, net_window=8)
    with pytest.raises(CheckpointError, match="SHA-256"):
        compress_bytes(TEXT, s, {**info, "sha256": "0" * 64})
    with pytest.raises(ConfigError, match="pretrained mode needs the network"):
        compress_bytes(TEXT, ZipSettings.build(level=1, predictor="stats"), info)
