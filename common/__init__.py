"""What the labs share. Importing it lets idle OpenMP threads sleep rather than spin (unless
``OMP_WAIT_POLICY`` is set): OpenMP reads the policy once, when torch loads, and every lab imports
``common`` first (see :mod:`common.threads`); and it closes a DDP process group at exit."""

import atexit
import os
import signal
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _close_process_group() -> None:
    """Close a DDP process group before the interpreter exits. Lightning does so only for NCCL;
    a gloo group (DDP on CPUs) left open is torn down by C++ destructors while its threads may
    still run, and now and then aborts the process ("terminate called without an active
    exception") after a successful fit. Registered on import, so spawned workers have it too."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


atexit.register(_close_process_group)


def answer_ctrl_c() -> None:
    """Let SIGINT interrupt this process even where it was started ignoring it: a shell starts a
    script's background jobs (``make test &``, ``nohup cmd &``) with SIGINT ignored, and a
    process inherits that, so ``kill -INT`` — and a sweep's Ctrl-C, which it passes on to its
    runs — would do nothing. A terminal's Ctrl-C reaches only the foreground job, so nothing
    else changes. Called by every lab command (``common.cli.main``), in the main thread."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
