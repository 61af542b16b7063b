"""CPU threads of a run: ``trainer.threads: auto`` and how idle OpenMP threads wait.

PyTorch runs an op on all cores by default, and its OpenMP threads meet at a barrier after each
op. On a CPU that another job shares, one of those threads waits for a core at every barrier: a
small network (many ops of microseconds) then runs 25–45× slower than on one thread
(``benchmarks/cpu_threads.py``). A small network gains nothing from more threads anyway, so
``auto`` gives it one; a large one (ops of milliseconds) keeps every core it may use. The size
is the network's work per batch, counted once on the first batch the Trainer runs (a
validation sanity-check batch in ``fit``, before any training step, so a resumed fit runs every
step with the same threads as the first run did). Idle OpenMP threads sleep instead of
spinning (``OMP_WAIT_POLICY=PASSIVE``, set by ``common/__init__.py`` before torch loads), so a
waiting thread never takes a core from a busy neighbour or from the thread it waits for.
"""

from __future__ import annotations

import os
from typing import Literal

import lightning as L
import torch
from lightning.pytorch import Callback
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

#: below this many floating-point operations per batch (a forward pass), one thread is
#: fastest on an idle CPU and by far the fastest on a busy one (benchmarks/cpu_threads.py)
SMALL_NETWORK_FLOPS = 1e9

Threads = int | Literal["auto"]


def usable_cores(processes: int = 1) -> int:
    """The cores of one of ``processes`` processes sharing this machine (e.g. DDP on a CPU): its
    CPU affinity (a container's or ``taskset``'s share, not every core of the machine) shared
    out, and at most ``OMP_NUM_THREADS`` where that is set (a sweep gives each of its parallel
    runs a share of the cores that way; Lightning's DDP on a CPU too)."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    cores = max(1, cores // processes)
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return min(cores, int(limit)) if limit.isdigit() and int(limit) > 0 else cores


class FlopCount(TorchDispatchMode):
    """Counts the floating-point operations of the matrix multiplications and convolutions run
    inside it (torch's own formulas, ``flop_registry``): torch's ``FlopCounterMode`` without its
    per-module tracking, whose backward hooks break ``torch.autograd.grad`` inside a training
    step (an adversarial attack's)."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        formula = flop_registry.get(func._overloadpacket)
        if formula is None:  # e.g. aten.linear, which inference mode does not decompose first
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


def flops_per_batch(model: nn.Module, batch: torch.Tensor) -> int:
    """Floating-point operations of one forward pass of ``model`` on ``batch`` (matrix
    multiplications and convolutions, the ops that could use several threads)."""
    with FlopCount() as counter, torch.no_grad():
        model(batch)
    return counter.flops


def resolve_threads(
    threads: Threads, flops: float | None = None, processes: int = 1
) -> tuple[int, str]:
    """``(threads, reason)`` for a process that is one of ``processes`` on this machine (e.g. DDP
    on CPU): ``auto`` is 1 thread for a network under :data:`SMALL_NETWORK_FLOPS` per batch, else
    the usable cores shared out among the processes; a number is used as given."""
    if threads != "auto":
        return int(threads), "given explicitly"
    cores = usable_cores(processes)
    if flops is None:
        return cores, f"{cores} usable core(s)"
    size = f"{flops / 1e9:.3g} GFLOP per batch"
    if flops < SMALL_NETWORK_FLOPS:
        return 1, f"a small network ({size}): more threads only wait for each other"
    return cores, f"a large network ({size}) on {cores} usable core(s)"


class ThreadChoice(Callback):
    """``trainer.threads`` of a :class:`common.trainer.LabTrainer` on a CPU: a number is set at
    ``setup``; ``auto`` runs one thread until the first batch has been counted
    (:func:`flops_per_batch` of whatever that batch runs), then keeps one thread or takes the
    usable cores. In ``fit`` that batch is a validation sanity-check batch, so every training
    step of a run — and of its resumption — uses the same threads (their count changes the
    rounding of sums, so a resumed run would not match the uninterrupted one). Without a sanity
    check (``num_sanity_val_steps: 0``) it is the first training step, counted as forward and
    backward (three forward passes)."""

    #: the floating-point work of a training step relative to its forward pass
    TRAINING_STEP_FORWARDS = 3

    def __init__(self, threads: Threads = "auto") -> None:
        self.threads = threads
        self.chosen: int | None = None
        self.counter: FlopCount | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not isinstance(trainer.accelerator, CPUAccelerator) or self.chosen is not None:
            return  # on a GPU the network does not run on these threads
        if self.threads == "auto":
            torch.set_num_threads(1)
        else:
            self.choose(trainer, None)

    def choose(self, trainer: L.Trainer, flops: float | None) -> None:
        self.chosen, reason = resolve_threads(self.threads, flops, processes=trainer.num_devices)
        torch.set_num_threads(self.chosen)
        if self.threads == "auto":
            rank_zero_info(f"threads: auto → {self.chosen} ({reason})")

    def _count(self, trainer: L.Trainer) -> None:
        waiting = self.threads == "auto" and self.chosen is None and self.counter is None
        if waiting and isinstance(trainer.accelerator, CPUAccelerator):
            self.counter = FlopCount()
            self.counter.__enter__()

    def _decide(self, trainer: L.Trainer, forwards: int = 1) -> None:
        if self.counter is not None:
            self.counter.__exit__(None, None, None)
            flops, self.counter = self.counter.flops, None
            self.choose(trainer, flops / forwards)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._count(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._decide(trainer, self.TRAINING_STEP_FORWARDS)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._count(trainer)

    on_test_batch_start = on_predict_batch_start = on_validation_batch_start

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._decide(trainer)

    on_test_batch_end = on_predict_batch_end = on_validation_batch_end

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.counter is not None:  # leave no counting mode behind
            self.counter.__exit__(None, None, None)
            self.counter = None
