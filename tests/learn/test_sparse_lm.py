"""SET/RigL on a byte LM's MLP layers: the MLP density stays exact through topology updates, the
topology moves for set and rigl and not for static, only the MLP matrices are masked, runs repeat."""

import pytest
import torch

from imo.errors import ConfigError
from imo.learn.sparse_lm import MaskedMLPs, SparseLMConfig, mlp_linears, train_sparse_lm
from imo.model import GPT, ModelConfig

TINY = SparseLMConfig(n_layer=1, n_embd=16, n_head=2, context_length=16, steps=12, batch_size=4, warmup=2,
                      sparsity=0.8, update_every=3, drop_fraction=0.5, update_end=0.9, eval_batches=2)


@pytest.mark.parametrize("arm", ["static", "set", "rigl"])
def test_density_is_exact_and_topology_moves(arm):
    rec = train_sparse_lm(arm, TINY, seed=0)
    model_counts = [round(d * w) for d, w in zip(rec["layer_density"], (16 * 64, 64 * 16), strict=True)]
    assert sum(model_counts) == pytest.approx(rec["mlp_nonzeros"], abs=2)  # zeros only where masked
    assert rec["mlp_density"] <= 1 - TINY.sparsity + 0.01
    if arm == "static":
        assert rec["topology_updates"] == 0 and rec["moved_fraction"] == 0.0
    else:
        assert rec["topology_updates"] == 3 and rec["moved_fraction"] > 0.0


def test_update_keeps_each_layer_count():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=16, context_length=8))
    for arm in ("set", "rigl"):
        masks = MaskedMLPs(model, arm, TINY, torch.Generator().manual_seed(1))
        x = torch.randint(256, (2, 8))
        _, loss = model(x, x)
        loss.backward()
        before = [int(m.sum()) for m in masks.masks]
        masks.update(3, torch.optim.AdamW(model.parameters()))
        assert [int(m.sum()) for m in masks.masks] == before == masks.counts
        assert masks.moved_fraction() > 0
        model.zero_grad()
    names = [n for n, _ in mlp_linears(model)]
    assert len(names) == 4 and all(n.endswith((".mlp.c_fc", ".mlp.c_proj")) for n in names)


def test_dense_is_unmasked_and_runs_repeat():
    a = train_sparse_lm("dense", TINY, seed=1)
    assert a["mlp_density"] > 0.99 and a["topology_updates"] == 0
    assert train_sparse_lm("dense", TINY, seed=1)["val_bpb"] == a["val_bpb"]


def test_bad_config():
    with pytest.raises(ConfigError, match="unknown arm"):
        train_sparse_lm("magic", TINY)
    with pytest.raises(ConfigError, match="sparsity"):
        train_sparse_lm("set", SparseLMConfig(sparsity=1.0))
