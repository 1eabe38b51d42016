"""The only module that knows about processes: spawning DDP workers (gloo on CPU, NCCL on GPUs) or joining
a torchrun launch, and turning a failing rank into one error instead of a hang."""
from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nerfw.errors import ConfigError, NerfwError

PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=10)  # a dead peer ends the run after at most this


@dataclass
class Launch:
    world_size: int
    backend: str | None  # "gloo" | "nccl" | None (single process)
    device_kind: str  # "cpu" | "cuda"
    torchrun: bool = False


def plan_launch(num_gpus: int, num_procs: int, device: str) -> Launch:
    """Decide processes and devices from the flags and the machine. Impossible requests are ConfigErrors."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # started by torchrun
        kind = "cuda" if torch.cuda.is_available() and device != "cpu" else "cpu"
        return Launch(int(os.environ["WORLD_SIZE"]), "nccl" if kind == "cuda" else "gloo", kind, torchrun=True)
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.startswith("cuda") and n_cuda == 0:
        raise ConfigError(f"--device {device} requested but this machine has no CUDA GPU")
    if num_gpus > 0:
        if n_cuda < num_gpus:
            raise ConfigError(f"--num_gpus {num_gpus} requested but this machine has {n_cuda} CUDA GPU(s); "
                              "use --num_gpus 0 for the CPU (or --num_procs N for gloo processes)")
        return Launch(num_gpus, "nccl" if num_gpus > 1 else None, "cuda")
    use_cuda = device.startswith("cuda") or (device == "auto" and num_gpus == -1 and n_cuda > 0)
    if use_cuda:
        return Launch(1, None, "cuda")
    return Launch(num_procs, "gloo" if num_procs > 1 else None, "cpu")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(worker, launch: Launch, *args) -> None:
    """Run worker(rank, world_size, backend, init_method, device_kind, *args) on every rank."""
    if launch.torchrun:
        rank = int(os.environ["RANK"])
        worker(rank, launch.world_size, launch.backend, "env://", launch.device_kind, *args)
        return
    if launch.world_size == 1:
        worker(0, 1, None, None, launch.device_kind, *args)
        return
    init_method = f"tcp://127.0.0.1:{free_port()}"
    try:
        # join=True: when one rank raises, the others are terminated and the error is re-raised here.
        mp.spawn(_spawn_entry, args=(worker, launch.world_size, launch.backend, init_method,
                                     launch.device_kind, args), nprocs=launch.world_size, join=True)
    except mp.ProcessRaisedException as exc:
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        raise NerfwError(f"a training process failed: {lines[-1] if lines else exc}") from None
    except mp.ProcessExitedException as exc:
        raise NerfwError(f"a training process died ({exc})") from None


def _spawn_entry(rank, worker, world_size, backend, init_method, device_kind, args):
    worker(rank, world_size, backend, init_method, device_kind, *args)


def init_group(rank: int, world_size: int, backend: str | None, init_method: str | None) -> None:
    if backend is None:
        return
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size,
                            timeout=PROCESS_GROUP_TIMEOUT)


def close_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def from_main(make):
    """``make()`` run on the main process only, its (picklable) result handed to every rank: for set-up work that is
    costly and the same everywhere (the model frame, found from SIFT points of the photos)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return make()
    box = [make() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def local_rank_device(rank: int, device_kind: str, device_flag: str) -> torch.device:
    if device_kind != "cuda":
        return torch.device("cpu")
    if "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    if device_flag.startswith("cuda:"):
        return torch.device(device_flag)
    return torch.device("cuda", rank)
