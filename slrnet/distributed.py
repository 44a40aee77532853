"""Multi-GPU / multi-node training through ``torchrun`` (DistributedDataParallel): the process group, which rank
makes shared files first, and the check that every replica ends with the same weights.

    torchrun --nproc_per_node 4 -m slrnet train --config configs/voc_wss_resnet38.yaml --run r38
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch
import torch.distributed as dist

from slrnet.utils import resolve_device


def rank_and_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def start_distributed(device: str | None) -> tuple[int, int, torch.device]:
    """(rank, world size, device) of this process; under torchrun the process group is started here (NCCL on
    CUDA, gloo otherwise) and each process takes the GPU of its local rank. Safe to call more than once."""
    rank, world, local_rank = rank_and_world()
    if world <= 1:
        return rank, world, resolve_device(device or "auto")
    use_cuda = torch.cuda.is_available() and str(device) in ("auto", "cuda", "None")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    return rank, world, dev


@contextmanager
def main_rank_first(world: int, is_main: bool):
    """Under DDP, rank 0 runs the block first (making a missing dataset or pretrained file) and the other
    ranks then run it and find the files made; a no-op in a single process."""
    if world > 1 and not is_main:
        dist.barrier()
    try:
        yield
    finally:
        if world > 1 and is_main:
            dist.barrier()


def replica_max_abs_diff(model: torch.nn.Module, world: int) -> float:
    """The largest difference between any rank's weights and rank 0's (all ranks must call it)."""
    flat = torch.cat([p.detach().float().flatten() for p in model.parameters()]).cpu()
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    return max(float((g - gathered[0]).abs().max()) for g in gathered)
