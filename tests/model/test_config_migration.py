"""Configs stored before the v0.2 renames (block_size -> context_length, attn_block -> attn_tile)
still load, and a config naming both spellings is refused."""

import pytest

from imo.errors import ConfigError
from imo.model.config import ModelConfig
from imo.train.config import RunConfig


def test_old_field_names_load_under_the_new_ones():
    cfg = ModelConfig.from_dict({"n_layer": 1, "n_embd": 32, "n_head": 4, "block_size": 48, "attn_block": 8})
    assert (cfg.context_length, cfg.attn_tile) == (48, 8)
    assert "block_size" not in cfg.to_dict()


def test_old_names_override_a_preset():
    assert ModelConfig.preset("tiny", block_size=64).context_length == 64


def test_a_stored_run_config_of_the_previous_version_loads():
    new = RunConfig.build(preset="tiny", model={"context_length": 64}).to_dict()
    old = {**new, "model": {("block_size" if k == "context_length" else k): v for k, v in new["model"].items()}}
    assert RunConfig.from_dict(old) == RunConfig.from_dict(new)


def test_both_spellings_at_once_are_refused():
    with pytest.raises(ConfigError, match="both block_size"):
        ModelConfig.from_dict({"block_size": 32, "context_length": 64})
