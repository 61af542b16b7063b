"""What the labs share. Importing it lets idle OpenMP threads sleep rather than spin (unless
``OMP_WAIT_POLICY`` is set): OpenMP reads the policy once, when torch loads, and every lab imports
``common`` first (see :mod:`common.threads`)."""

import os
import signal

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def answer_ctrl_c() -> None:
    """Let SIGINT interrupt this process even where it was started ignoring it: a shell starts a
    script's background jobs (``make test &``, ``nohup cmd &``) with SIGINT ignored, and a
    process inherits that, so ``kill -INT`` — and a sweep's Ctrl-C, which it passes on to its
    runs — would do nothing. A terminal's Ctrl-C reaches only the foreground job, so nothing
    else changes. Called by every lab command (``common.cli.main``), in the main thread."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
