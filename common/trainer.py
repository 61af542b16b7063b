"""The Lightning ``Trainer`` with ``precision: auto`` (the fastest numerics the hardware runs
natively, chosen once at start), ``threads: auto`` (:mod:`common.threads`: one CPU thread for a
small network, every usable core for a large one) and, when stdout is not a terminal, a progress
bar of whole lines (:class:`common.callbacks.LineProgress`).

bf16 autocast is 1.6× faster than fp32 on CPUs with native bf16 (AVX512-BF16 or AMX) and ~10×
*slower* on CPUs without it (AVX2 only, where it is emulated); on CUDA GPUs mixed precision is
the usual choice (bf16 where supported, else fp16 with loss scaling). An explicit precision
(``32-true``, ``bf16-mixed``, …) is used as given.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities import rank_zero_info

from common.callbacks.line_progress import LineProgress
from common.threads import ThreadChoice, Threads

#: CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags() -> set[str]:
    """The CPU's feature flags (empty where ``/proc/cpuinfo`` does not exist, e.g. macOS)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def resolve_precision(
    precision: str | int | None, accelerator: str | None = "auto"
) -> tuple[str | int | None, str]:
    """``(precision, reason)``: ``"auto"`` resolved for this machine, anything else as given."""
    if precision != "auto":
        return precision, "given explicitly"
    on_gpu = accelerator in ("auto", "gpu", "cuda", None) and torch.cuda.is_available()
    if on_gpu:
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"{torch.cuda.get_device_name()} supports bf16"
        return "16-mixed", f"{torch.cuda.get_device_name()} has no bf16: fp16 with loss scaling"
    native = sorted(NATIVE_BF16_FLAGS & cpu_flags())
    if native:
        return "bf16-mixed", f"the CPU has native bf16 ({', '.join(native)})"
    return "32-true", "the CPU has no native bf16 (no avx512_bf16/amx_bf16: bf16 is emulated, slow)"


class LabTrainer(Trainer):
    """:class:`lightning.pytorch.Trainer` with two more choices made for the hardware.

    Args:
        precision: ``"auto"`` (the default, see :func:`resolve_precision`) or one of
            Lightning's (``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"``, …). The CLI resolves it
            before building the Trainer (so the run's ``config.yaml`` records the choice); built
            from Python, the Trainer resolves it itself.
        threads: CPU threads of the network, ``"auto"`` (the default: one for a small network,
            the usable cores for a large one, chosen on the first batch and printed, see
            :class:`common.threads.ThreadChoice`) or a number. Unused on a GPU.

    The progress bar is Lightning's on a terminal and :class:`LineProgress` (a line per epoch
    and every 30 s) when stdout is a file or a pipe; a ``ProgressBar`` among ``callbacks`` (e.g.
    ``LineProgress`` with another interval) replaces both.
    """

    def __init__(
        self,
        *args,
        precision: str | int | None = "auto",
        threads: Threads = "auto",
        **kwargs,
    ) -> None:
        resolved, reason = resolve_precision(precision, kwargs.get("accelerator", "auto"))
        if precision == "auto":
            rank_zero_info(f"precision: auto → {resolved} ({reason})")
        callbacks = _as_list(kwargs.get("callbacks"))
        if _draws_into_a_file(callbacks, kwargs.get("enable_progress_bar")):
            callbacks.append(LineProgress())
        # first: it counts a batch's work from its start to its end, not other callbacks' work
        kwargs["callbacks"] = [ThreadChoice(threads), *callbacks]
        super().__init__(*args, precision=resolved, **kwargs)


def _as_list(callbacks: list[Callback] | Callback | None) -> list[Callback]:
    if callbacks is None:
        return []
    return list(callbacks) if isinstance(callbacks, list | tuple) else [callbacks]


def _draws_into_a_file(callbacks: list[Callback], enable_progress_bar: bool | None) -> bool:
    """Whether Lightning would draw its tqdm bar into a file or a pipe."""
    chosen = any(isinstance(callback, ProgressBar) for callback in callbacks)
    return enable_progress_bar is not False and not chosen and not sys.stdout.isatty()
