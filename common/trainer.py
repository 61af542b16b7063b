"""The Lightning ``Trainer`` with ``precision: auto``: the fastest numerics the hardware runs
natively, chosen once at start.

bf16 autocast is 1.6× faster than fp32 on CPUs with native bf16 (AVX512-BF16 or AMX) and ~10×
*slower* on CPUs without it (AVX2 only, where it is emulated); on CUDA GPUs mixed precision is
the usual choice (bf16 where supported, else fp16 with loss scaling). An explicit precision
(``32-true``, ``bf16-mixed``, …) is used as given.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.utilities import rank_zero_info

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
    """:class:`lightning.pytorch.Trainer` whose ``precision`` may be ``"auto"`` (the default):
    see :func:`resolve_precision`; other values are Lightning's (``"32-true"``, ``"bf16-mixed"``,
    ``"16-mixed"``, …), checked by it. The CLI resolves it before building the Trainer (so the run's
    ``config.yaml`` records the choice); built from Python, the Trainer resolves it itself."""

    def __init__(
        self,
        *args,
        precision: str | int | None = "auto",
        **kwargs,
    ) -> None:
        resolved, reason = resolve_precision(precision, kwargs.get("accelerator", "auto"))
        if precision == "auto":
            rank_zero_info(f"precision: auto → {resolved} ({reason})")
        super().__init__(*args, precision=resolved, **kwargs)
