"""Multi-process training with PyTorch's own DDP, set up from torchrun's environment.

`torchrun --nproc_per_node=N -m imo train ...` sets RANK/WORLD_SIZE/LOCAL_RANK; we join the
process group (gloo on CPU, NCCL on CUDA). Without those variables this is a one-process world.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: str) -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # before any collective, so each rank uses its own GPU
    if not dist.is_initialized():
        # CPU tensors (the stop flag, the logged loss) go through gloo, CUDA tensors through NCCL
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local_rank)


def broadcast_object(obj, world: World):
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool, world: World) -> bool:
    """True on every rank if any rank says True (so all ranks stop at the same step)."""
    if not world.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(x: float, world: World) -> float:
    if not world.distributed:
        return x
    t = torch.tensor([x], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item() / world.size)


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        # rank 0 finishes last (final evaluation, the store); without this barrier the other
        # ranks tear down their connections under it, and gloo may abort the process
        dist.barrier()
        dist.destroy_process_group()
