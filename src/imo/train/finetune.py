"""Fine-tuning a token model (an imported Llama-family run): `imo train --init-from RUN`.

imo's own trainer (imo/train/trainer.py) trains byte GPTs on byte arrays. A run imported from a
GGUF is a Llama with a BPE tokenizer, so this module does the rest around the same loop
(imo.train.loop.fit: AdamW, warmup + cosine, clipping, checkpoints, Ctrl-C and an exact resume):

- the data is tokenized with the parent run's own tokenizer: a text corpus (`python-docs`,
  `file:PATH`, `dir:PATH`) as one token stream cut into random windows, or instruction data
  (`chat:PATH.jsonl`, imo/importers/instruct.py) rendered with the run's chat template, with the
  loss on the answers only;
- LoRA (imo/model/lora.py) with `lora.rank` > 0: only the adapters train, and the finished run is
  saved merged, as a plain checkpoint of the same family (the adapters alone also go to
  lora.safetensors); rank 0 fine-tunes every weight;
- losses are reported in bits per byte (bits over the bytes of text the scored tokens stand for;
  a special token such as the end of turn is scored but counts no bytes), before and after, so
  they compare with byte models and xz. The progress line's training loss is bits per token.
- a LoRA run's checkpoints hold only the adapters (and the optimizer): a resume reads the frozen
  base from the parent run.

The new run (kind `finetune`, parent: the imported run) carries the parent's tokenizer and chat
template, so `imo sample`, `imo chat`, `imo serve` and `imo eval` read it like the import.

    outcome = finetune("smollm2", TrainConfig(corpus="chat:qa.jsonl", steps=50, lr=1e-3), context=128,
                       lora=LoRAConfig(rank=8))
"""

from __future__ import annotations

import math
import shutil
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from imo.errors import CheckpointError, ConfigError, RunBusy, RunNotFound
from imo.model.lora import LoRAConfig, LoRALinear, apply_lora_, merge_lora_, target_paths
from imo.train.config import TrainConfig

KIND = "finetune"
LN2 = math.log(2)
CARRIED = ("tokenizer.json", "chat.json")  # files of the parent run that its fine-tunes need too
# defaults that differ from a byte model's (TrainConfig's): a pretrained model wants small steps
DEFAULTS = {"steps": 100, "warmup": 10, "batch_size": 8, "weight_decay": 0.0, "eval_every": 50, "ckpt_every": 100}
LORA_LR, FULL_LR = 1e-3, 5e-5
DEFAULT_CONTEXT = 256


def is_token_run(config: dict) -> bool:
    """Whether a run's config is a token model this module fine-tunes (not a byte GPT)."""
    return (config.get("tokenizer") or {}).get("kind", "byte") != "byte" or config.get("model", {}).get("family", "gpt") != "gpt"


class Data:
    """Training and validation examples in tokens, and how many bytes each token stands for."""

    def __init__(self, corpus: str, tok, spec: dict | None, context: int, model_context: int) -> None:
        from imo.data.corpora import load_corpus
        from imo.importers.instruct import encode_conversations, read_conversations

        if not 2 <= context <= model_context:
            raise ConfigError(f"context must be in [2, {model_context}] tokens (the model's length), got {context}")
        self.context, self.chat = context, corpus.startswith("chat:")
        self.nbytes = np.array([len(tok.token_bytes(i)) for i in range(tok.vocab_size)], dtype=np.int64)
        self.nbytes[list(tok.special.values())] = 0  # an end-of-turn token is scored but stands for no text
        if self.chat:
            examples = encode_conversations(tok, spec, read_conversations(Path(corpus[5:])), context)
            if len(examples) < 2:
                raise ConfigError("chat fine-tuning needs at least 2 examples (the last 10% are validation)")
            n_val = max(1, len(examples) // 10)
            self.train, self.val = examples[:-n_val], examples[-n_val:]
        else:
            c = load_corpus(corpus)
            self.train, self.val = (np.array(tok.encode(bytes(s).decode("utf-8", "replace")), dtype=np.int64)
                                    for s in (c.train, c.val))
            for name, split in (("training", self.train), ("validation", self.val)):
                if len(split) <= context:
                    raise ConfigError(f"the {name} split of {corpus} is {len(split)} tokens, too short for context {context}")

    @property
    def tokens_per_row(self) -> int:
        """Tokens in a training row: the context, or an example's mean length (rows are padded)."""
        return round(np.mean([len(ids) for ids, _ in self.train])) if self.chat else self.context

    def batch(self, gen: torch.Generator, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.chat:
            from imo.data.batches import random_batch

            return random_batch(self.train, self.context, rows, gen)
        ix = torch.randint(len(self.train), (rows,), generator=gen).tolist()
        return _pad([self.train[i] for i in ix])

    def val_batches(self, rows: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The whole validation split: every example, or the token stream in windows."""
        if self.chat:
            return [_pad(self.val[i : i + rows]) for i in range(0, len(self.val), rows)]
        from imo.data.batches import windows

        return list(windows(self.val, self.context, batch_size=rows))

    @torch.no_grad()
    def bits_per_byte(self, model, batches, device: str = "cpu") -> tuple[float, float]:
        """(bits per byte, bits per token) over the scored targets of `batches`."""
        was = model.training
        model.eval()
        bits, tokens, nbytes = 0.0, 0, 0
        for x, y in batches:
            logits, _ = model(x.to(device))
            y = y.to(device)
            bits += float(torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum")) / LN2
            kept = y[y >= 0].cpu().numpy()
            tokens, nbytes = tokens + len(kept), nbytes + int(self.nbytes[kept].sum())
        model.train(was)
        return bits / max(nbytes, 1), bits / max(tokens, 1)


def _pad(examples: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Examples right-padded to the longest: inputs with id 0, targets with -100 (not scored)."""
    from imo.importers.instruct import IGNORE

    T = max(len(ids) for ids, _ in examples)
    x = torch.zeros(len(examples), T, dtype=torch.long)
    y = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for r, (ids, targets) in enumerate(examples):
        x[r, : len(ids)], y[r, : len(targets)] = torch.tensor(ids), torch.tensor(targets)
    return x, y


def train_config(given: dict, lora_rank: int) -> TrainConfig:
    """The fine-tune's TrainConfig: flags given win over this module's defaults."""
    t = {**DEFAULTS, "lr": LORA_LR if lora_rank else FULL_LR, **{k: v for k, v in given.items() if v is not None}}
    if t.get("minutes") is not None and given.get("steps") is None:
        t.pop("steps")
    return TrainConfig(**t)


def build(config: dict, weights: dict, seed: int, adapters: dict | None = None):
    """The model of a fine-tune config: the parent's weights, then adapters (where the config
    asks for LoRA) drawn from the seed, or `adapters` from a checkpoint (a resume)."""
    from imo.model.config import ModelConfig
    from imo.model.families import build_model

    model = build_model(ModelConfig.from_dict(config["model"]))
    model.load_saved_state(weights)
    lora = config["finetune"]["lora"]
    if lora:
        torch.manual_seed(seed)
        apply_lora_(model, LoRAConfig(**{**lora, "targets": tuple(lora["targets"])}))
    if adapters is not None:
        missing, unexpected = model.load_state_dict(adapters, strict=False)
        if unexpected or any(k.endswith(("lora_A", "lora_B")) for k in missing):
            raise CheckpointError(f"the checkpoint's adapters do not fit the run's LoRA config "
                                  f"({(unexpected or missing)[0]})")
    return model


class Adapted(torch.nn.Module):
    """What the loop trains and checkpoints for a LoRA run: the model, whose checkpoints hold
    only the adapters (the frozen base is the parent run's; a resume reads it from there)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def state_dict_for_save(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad}


def _parent_weights(store, parent: str) -> dict:
    from imo.train.checkpoint import checkpoint_dir, read_checkpoint

    meta, weights, _ = read_checkpoint(checkpoint_dir(store.run_dir(parent)), with_state=False)
    if "compress" in meta:
        raise ConfigError(f"run {parent} is a pruned or quantized run; fine-tune the float run it came from")
    return weights


def finetune(init_from: str, t: TrainConfig, context: int | None = None, lora: LoRAConfig | None = None, *,
             store=None, name: str | None = None, tags=(), quiet: bool = False, stop_at: int | None = None):
    """Fine-tune run `init_from` into a new run; returns its Outcome (run id, whether and by which
    signal it was stopped)."""
    from imo.runs.store import RunStore, config_hash

    store = store or RunStore.open()
    parent = store.resolve(init_from)
    prow = store.get(parent)
    if prow["status"] != "finished":
        raise ConfigError(f"run {parent} is {prow['status']}; fine-tune a finished run")
    src = store.run_dir(parent)
    weights = _parent_weights(store, parent)
    pconf = prow["config"]
    if lora is not None:
        target_paths(pconf["model"].get("family", "gpt"), lora.targets)  # refuses an unsupported family now
    ctx = context or min(DEFAULT_CONTEXT, pconf["model"]["context_length"])
    config = {"model": pconf["model"], "tokenizer": pconf.get("tokenizer") or {"kind": "byte"},
              "source": pconf.get("source"), "train": asdict(replace(t, init_from=parent)),
              "finetune": {"context": ctx, "lora": _lora_dict(lora)}}
    data = _data(config, src)  # refuses bad data before a run is recorded
    kind = f"lora{lora.rank}" if lora else "full"
    run_id = store.create_run(KIND, name or f"{prow['name']}-{kind}-{config_hash(config)[:6]}", config,
                              parent=parent, tags=tags)
    try:
        for f in CARRIED:
            if (src / f).exists():
                shutil.copy2(src / f, store.run_dir(run_id) / f)
        model = build(config, weights, t.seed)
    except BaseException:
        store.rm(run_id)  # nothing half-made stays in the store
        raise
    return _run(store, run_id, config, model, data, None, quiet, stop_at)


def resume(run: str, *, store=None, quiet: bool = False, stop_at: int | None = None):
    """Continue an interrupted fine-tune from its last checkpoint (weights, adapters, optimizer,
    batch generator): the curve repeats an uninterrupted run's."""
    from imo.runs.store import RunStore
    from imo.train.checkpoint import checkpoint_dir, read_checkpoint

    store = store or RunStore.open()
    run_id = store.resolve(run)
    row = store.get(run_id)
    if row["status"] == "finished":
        raise ConfigError(f"run {run_id} has finished; fine-tune it again with --init-from {run_id}")
    config, run_dir = row["config"], store.run_dir(run_id)
    meta, saved, state = read_checkpoint(checkpoint_dir(run_dir))
    data = _data(config, run_dir)
    if config["finetune"]["lora"]:  # the checkpoint holds the adapters; the base is the parent's
        parent = config["train"]["init_from"]
        try:
            store.get(parent)
        except RunNotFound:
            raise ConfigError(f"run {run_id} adapts run {parent}, which is no longer in the store") from None
        model = build(config, _parent_weights(store, parent), config["train"]["seed"], adapters=saved)
    else:
        model = build(config, saved, config["train"]["seed"])
    return _run(store, run_id, config, model, data, (meta, state), quiet, stop_at)


def _lora_dict(lora: LoRAConfig | None) -> dict | None:
    return None if lora is None else {**asdict(lora), "targets": list(lora.targets)}


def _data(config: dict, run_dir: Path) -> Data:
    from imo.data.tokenizer import chat_spec, load_tokenizer

    tok = load_tokenizer(run_dir, {"config": config})
    return Data(config["train"]["corpus"], tok, chat_spec(run_dir), config["finetune"]["context"],
                config["model"]["context_length"])


def _run(store, run_id: str, config: dict, model, data: Data, resumed, quiet: bool, stop_at: int | None):
    from imo.train.loop import RunLog, fit
    from imo.train.precision import autocast, resolve_dtype
    from imo.train.trainer import Outcome, fit_config, resolve_device

    t = TrainConfig(**config["train"])
    device = resolve_device(t.device)
    dtype = resolve_dtype(t.dtype, device)
    config = {**config, "train": {**config["train"], "dtype": dtype}}
    store.update_config(run_id, config)
    model = model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    val = data.val_batches()
    locks = ExitStack()
    try:
        locks.enter_context(store.lock(f"run-{run_id}", wait=False))
    except RunBusy:
        raise RunBusy(f"run {run_id} is being trained by another process; wait for it or stop it") from None
    try:
        store.set_status(run_id, "running")
        before = config["finetune"].get("val_bpb_before")
        if before is None:
            before = data.bits_per_byte(model, val, device)[0]
            config["finetune"]["val_bpb_before"] = before
            store.update_config(run_id, config)
        if not quiet:
            kind = f"LoRA rank {config['finetune']['lora']['rank']}" if config["finetune"]["lora"] else "full"
            print(f"run {run_id}  {kind} fine-tune of {config['train']['init_from']}  {trainable:,} of "
                  f"{model.num_params():,} parameters train  data {t.corpus}  context {data.context}  "
                  f"{dtype} on {device}\n  validation before: {before:.4f} bits/byte", flush=True)
        rows = t.batch_size // t.grad_accum
        log = RunLog(store, run_id, store.run_dir(run_id), meta=lambda: {"run_id": run_id, "config": config},
                     on_total=lambda n: _set_total(store, run_id, config, n))
        tokens_per_step = t.batch_size * data.tokens_per_row
        trained = Adapted(model) if config["finetune"]["lora"] else model
        res = fit(trained, lambda gen, m: data.batch(gen, rows), fit_config(t), run=log, resume=resumed,
                  evaluate=lambda m: {"val/bpb": data.bits_per_byte(model, val, device)[0]},
                  autocast=lambda: autocast(dtype, device), tokens_per_step=tokens_per_step,
                  quiet=quiet, stop_at=stop_at, label="finetune")
        if res.stopped:
            store.set_status(run_id, "interrupted")
            print(f"stopped at step {res.steps}; continue with: imo train --resume {run_id}", flush=True)
            return Outcome(run_id, res.signal, True)
        _save_final(store, run_id, config, model, res.steps)
        after, per_token = data.bits_per_byte(model, val, device)
        store.finish(run_id, {"val_bpb": after, "val_bpb_before": before, "val_bits_per_token": per_token,
                              "train_bits_per_token": res.train_bpb, "steps": res.steps, "seconds": res.seconds,
                              "params": model.num_params(), "trainable_params": trainable,
                              "tokens_per_s": (res.steps - (resumed[0]["step"] if resumed else 0))
                              * tokens_per_step / max(res.step_seconds, 1e-9), "dtype": dtype})
        if not quiet:
            print(f"done: step {res.steps}, validation {before:.4f} -> {after:.4f} bits/byte "
                  f"({res.seconds:.0f} s)", flush=True)
        return Outcome(run_id, None, False)
    except BaseException as e:  # a second Ctrl-C: the last checkpoint is still valid
        if store.get(run_id)["status"] == "running":
            store.set_status(run_id, "interrupted" if isinstance(e, KeyboardInterrupt) else "failed")
        raise
    finally:
        locks.close()


def _set_total(store, run_id: str, config: dict, steps: int) -> None:
    """A --minutes budget became `steps`: the config says so (a resume keeps it)."""
    config["train"]["steps"] = steps
    store.update_config(run_id, config)


def _save_final(store, run_id: str, config: dict, model, step: int) -> None:
    """The finished run's checkpoint: LoRA merged into the weights (the adapters alone beside,
    in lora.safetensors), no optimizer state. It replaces the loop's last checkpoint of this step."""
    from safetensors.torch import save_file

    from imo.atomic import atomic_path
    from imo.train.checkpoint import save_checkpoint

    run_dir = store.run_dir(run_id)
    adapters = {f"{name}.{p}": getattr(m, p).detach().cpu().contiguous()
                for name, m in model.named_modules() if isinstance(m, LoRALinear) for p in ("lora_A", "lora_B")}
    if adapters:
        with atomic_path(run_dir / "lora.safetensors") as tmp:
            save_file(adapters, tmp, metadata={"rank": str(config["finetune"]["lora"]["rank"]),
                                               "alpha": str(config["finetune"]["lora"]["alpha"])})
        merge_lora_(model)
    path = save_checkpoint(run_dir, step, model.state_dict_for_save(), {}, {"run_id": run_id, "config": config})
    store.add_artifact(run_id, "checkpoint", path)
    model.eval()
