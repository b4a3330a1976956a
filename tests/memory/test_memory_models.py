"""Contract of the block-recurrent models: causal, streamed = whole, the parallel forms agree,
memory reaches past the window only where it should, constant memory in length."""

import pytest
import torch
from memory_reference import reference_forward

from imo.errors import ConfigError
from imo.memory.config import MemoryConfig
from imo.memory.measure import LiveBytes
from imo.memory.model import MemoryLM
from imo.model.config import ModelConfig

CFG = ModelConfig(n_layer=2, n_embd=32, n_head=2, context_length=64)
BLOCK = 16
ARCHS = {
    "bswa": MemoryConfig(arch="bswa", block=BLOCK, mem_blocks=1),
    "fam": MemoryConfig(arch="fam", block=BLOCK, mem_blocks=1, fam_tokens=4),
    "infini": MemoryConfig(arch="infini", block=BLOCK),
    "infini-delta": MemoryConfig(arch="infini", block=BLOCK, delta=True, gate_init=1.0),
}


def tiny(name: str) -> MemoryLM:
    torch.manual_seed(0)
    model = MemoryLM(CFG, ARCHS[name]).eval()
    if name.startswith("infini"):  # gates away from 1/2 and unequal, so both branches matter
        with torch.no_grad():
            model.gate.copy_(torch.linspace(-1.0, 1.5, model.gate.numel()).view_as(model.gate))
    return model


def seq(T: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (2, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ARCHS)
@torch.no_grad()
def test_streamed_equals_whole(name):
    model, x = tiny(name), seq(5 * BLOCK + 7)
    whole, _ = model(x)
    parts, state = [], model.init_state(2)
    for a, b in ((0, 2 * BLOCK), (2 * BLOCK, 3 * BLOCK), (3 * BLOCK, x.size(1))):
        logits, state = model.stream(x[:, a:b], state)
        parts.append(logits)
    assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-5)
    assert state.tokens == x.size(1)
    last, _ = model.stream(x, model.init_state(2), keep=3)
    assert torch.allclose(last, whole[:, -3:], atol=1e-5)
    total, _ = model.nll(x[:, :-1], x[:, 1:])
    loss = torch.nn.functional.cross_entropy(whole[:, :-1].reshape(-1, 256), x[:, 1:].reshape(-1), reduction="sum")
    assert total == pytest.approx(loss.item(), rel=1e-5)


@pytest.mark.parametrize("name", ["bswa", "infini"])
@torch.no_grad()
def test_block_loop_equals_parallel_form(name):
    model, x = tiny(name), seq(4 * BLOCK + 5)
    assert torch.allclose(model(x)[0], reference_forward(model, x), atol=1e-4)


@pytest.mark.parametrize("name", ARCHS)
@torch.no_grad()
def test_causal_across_blocks(name):
    model, x = tiny(name), seq(4 * BLOCK)
    t = BLOCK + 5  # inside the second block
    y = x.clone()
    y[:, t] = (y[:, t] + 1) % 256
    a, b = model(x)[0], model(y)[0]
    assert torch.equal(a[:, :t], b[:, :t])  # nothing before t can see t
    assert not torch.allclose(a[:, t:], b[:, t:])
    assert not torch.allclose(a[:, 3 * BLOCK :], b[:, 3 * BLOCK :])  # ... and later blocks do


@pytest.mark.parametrize("name,reaches", [("bswa", False), ("fam", True), ("infini", True), ("infini-delta", True)])
@torch.no_grad()
def test_memory_reaches_past_the_window(name, reaches):
    """A change in block 0 reaches block 4 only through a memory: BSWA's window (1 kept block
    and its own) forgets it after one block, FAM's and Infini's state carry it."""
    model, x = tiny(name), seq(5 * BLOCK)
    y = x.clone()
    y[:, 3] = (y[:, 3] + 1) % 256
    far = slice(4 * BLOCK, None)
    assert (not torch.allclose(model(x)[0][:, far], model(y)[0][:, far], atol=1e-6)) == reaches


@pytest.mark.parametrize("name", ["bswa", "fam", "infini-delta"])
def test_memory_is_constant_in_length(name):
    model = tiny(name)
    peaks = []
    for T in (16 * BLOCK, 64 * BLOCK):
        x = seq(T)
        with LiveBytes() as meter:
            model.nll(x, x)
        peaks.append(meter.peak)
    assert peaks[1] <= 1.3 * peaks[0], peaks
    # the meter sees growth where there is some: whole-sequence logits are linear in length
    whole = []
    for T in (16 * BLOCK, 64 * BLOCK):
        with LiveBytes() as meter, torch.no_grad():
            model(seq(T))
        whole.append(meter.peak)
    assert whole[1] > 3 * whole[0]


def test_memory_parameters_learn():
    for name, param in (("fam", "fam_init"), ("infini", "gate")):
        model = tiny(name).train()
        x = seq(3 * BLOCK)
        model(x[:, :-1], x[:, 1:])[1].backward()
        assert getattr(model, param).grad.abs().sum() > 0


@torch.no_grad()
def test_infini_normaliser_guard():
    model = tiny("infini")
    with torch.no_grad():
        model.gate.fill_(30.0)  # memory only: the first block reads an empty memory (z = 0)
    logits, state = model.stream(seq(3 * BLOCK), model.init_state(2))
    assert torch.isfinite(logits).all() and state.compressions == 3
    assert all(torch.isfinite(s.mem).all() for s in state.layers)


def test_refusals():
    model = tiny("bswa")
    _, state = model.stream(seq(BLOCK + 3), model.init_state(2))
    with pytest.raises(ConfigError, match="block boundaries"):
        model.stream(seq(4), state)
    with pytest.raises(ConfigError, match="unknown memory arch"):
        MemoryConfig(arch="lstm")
    with pytest.raises(ConfigError, match="fam_tokens"):
        MemoryConfig(arch="fam", fam_tokens=0)
    with pytest.raises(ConfigError, match="pos rope or none"):
        MemoryLM(CFG.replace(pos="learned"), MemoryConfig())
    assert MemoryConfig.from_dict(MemoryConfig(arch="infini").to_dict()) == MemoryConfig(arch="infini")


def _grads(model, loss_fn, x, y):
    model.zero_grad()
    value = loss_fn(model, (x, y))
    value.backward()
    return value.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("name", ["bswa", "fam"])
def test_truncated_backprop_windows(name):
    """window_loss returns the row's mean loss; where no state crosses windows (block-local
    attention, mem_blocks 0) its gradient is the full gradient, where FAM carries state it is not."""
    from imo.memory.train import window_loss

    torch.manual_seed(0)
    mem = MemoryConfig(arch=name, block=BLOCK, mem_blocks=0, fam_tokens=2)
    model = MemoryLM(CFG, mem).train()
    x = seq(6 * BLOCK + 1)
    x, y = x[:, :-1], x[:, 1:]
    full_value, full = _grads(model, lambda m, b: m(*b)[1], x, y)
    value, cut = _grads(model, window_loss(2 * BLOCK), x, y)
    assert value == pytest.approx(full_value, rel=1e-5)
    same = all(torch.allclose(a, b, atol=1e-6) for a, b in zip(full, cut, strict=True))
    assert same == (name == "bswa")


SPAN_ARCHS = {**ARCHS, "bswa-2": MemoryConfig(arch="bswa", block=BLOCK, mem_blocks=2),
              "fam-0": MemoryConfig(arch="fam", block=BLOCK, mem_blocks=0, fam_tokens=3),
              "fam-2": MemoryConfig(arch="fam", block=BLOCK, mem_blocks=2, fam_tokens=4)}


@pytest.mark.parametrize("name", SPAN_ARCHS)
def test_parallel_spans_equal_the_block_loop(name):
    """stream() reads spans of blocks in parallel (MemoryLM.span); it must compute what the plain
    recurrence (step, one block at a time) computes: logits, every state tensor and the gradient,
    across spans that start after a kept window and end in a partial block."""
    torch.manual_seed(0)
    model = MemoryLM(CFG, SPAN_ARCHS[name])
    if name.startswith("infini"):
        with torch.no_grad():
            model.gate.copy_(torch.linspace(-1.0, 1.5, model.gate.numel()).view_as(model.gate))
    model.span_blocks = 3
    x = seq(7 * BLOCK + 5)
    state, parts = model.init_state(2), []
    for s in range(0, x.size(1), BLOCK):
        logits, state = model.step(x[:, s : s + BLOCK], state)
        parts.append(logits)
    loop = torch.cat(parts, 1)
    loop_grads = torch.autograd.grad(loop.square().mean(), list(model.parameters()))
    spans, got = model.stream(x, model.init_state(2))
    span_grads = torch.autograd.grad(spans.square().mean(), list(model.parameters()))
    assert torch.allclose(spans, loop, atol=1e-5)
    assert (got.tokens, got.compressions) == (state.tokens, state.compressions)
    for a, b in zip(state.layers, got.layers, strict=True):
        for u, w in zip((a.k, a.v, a.fam, a.mem, a.z), (b.k, b.v, b.fam, b.mem, b.z), strict=True):
            assert (u is None) == (w is None)
            if u is not None:
                assert u.shape == w.shape and torch.allclose(u, w, rtol=1e-5, atol=1e-5)
    for a, b in zip(loop_grads, span_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
