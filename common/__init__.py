"""What the labs share. Importing it lets idle OpenMP threads sleep rather than spin (unless
``OMP_WAIT_POLICY`` is set): OpenMP reads the policy once, when torch loads, and every lab imports
``common`` first (see :mod:`common.threads`)."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
