"""Training precision: which dtype `--dtype auto` means on this machine, and the autocast context.

bf16 here is mixed precision in the usual sense (Micikevicius et al. 2018, with bf16 instead of
fp16, so no loss scaling): weights, gradients and optimizer state stay fp32, and only the ops that
autocast lists (matmuls, SDPA) run in bf16. `auto` picks bf16 where the hardware does bf16 natively
(CUDA with bf16; x86 with AVX512-BF16 or AMX-BF16; Arm with the BF16 extension) and fp32 elsewhere,
where emulated bf16 is slower than fp32. Asking for bf16 where it is not native is refused.

IMO_BF16 overrides the detection, so tests can exercise both paths on any machine: `native` acts
as if bf16 were native (on a CPU without it, torch emulates it: correct, just slow), `none` as if it
were not.

    dtype = resolve_dtype("auto", "cpu"); with autocast(dtype, "cpu"): loss = model(x, y)[1]
"""

import os
import platform
import subprocess
from contextlib import AbstractContextManager, nullcontext
from functools import cache

import torch

from imo.errors import ConfigError

ENV = "IMO_BF16"
DTYPES = ("auto", "float32", "bfloat16")


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the OS names them (lowercase; empty where unknown)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86 / Arm Linux
                    return frozenset(value.split())
    except OSError:
        pass
    if platform.system() == "Darwin":  # Apple silicon: M2 and later have FEAT_BF16
        try:
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True,
                                 text=True, timeout=5).stdout.strip()
            return frozenset({"bf16"} if out == "1" else ())
        except (OSError, subprocess.SubprocessError):
            pass
    return frozenset()


def hardware_bf16(device: str) -> bool:
    """Whether this device computes bf16 matmuls natively (the detection, without IMO_BF16)."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    flags = cpu_flags()
    if flags & {"avx512_bf16", "amx_bf16", "bf16"}:
        return True
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private; absent in some builds
    return bool(probe and probe())


def native_bf16(device: str) -> bool:
    """hardware_bf16, unless IMO_BF16=native|none says otherwise."""
    env = os.environ.get(ENV, "").strip().lower()
    if env in ("native", "1", "yes"):
        return True
    if env in ("none", "0", "no"):
        return False
    if env:
        raise ConfigError(f"{ENV}={env!r} is not understood; use native or none (or leave it unset)")
    return hardware_bf16(device)


def resolve_dtype(requested: str, device: str) -> str:
    """'auto' -> 'bfloat16' where bf16 is native, else 'float32'; an explicit 'bfloat16' where it
    is not native is an error (it would run emulated, several times slower than fp32)."""
    if requested not in DTYPES:
        raise ConfigError(f"unknown dtype {requested!r}; choose {', '.join(DTYPES)}")
    if requested == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    if requested == "bfloat16" and not native_bf16(device):
        kind = "GPU" if device.startswith("cuda") else "CPU"
        raise ConfigError(
            f"--dtype bfloat16 asked for, but this {kind} has no native bf16 "
            f"({'no bf16 support' if kind == 'GPU' else 'no avx512_bf16/amx_bf16 flag'}); "
            f"use --dtype float32 or auto", hint=f"{ENV}=native forces emulated bf16 (slow; for tests)")
    return requested


def autocast(dtype: str, device: str) -> AbstractContextManager:
    """The forward pass's context: bf16 autocast for 'bfloat16', nothing for 'float32'."""
    if dtype == "bfloat16":
        return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)
    return nullcontext()
