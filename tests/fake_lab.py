"""``python -m tests.fake_lab``: a lab whose runs take milliseconds, for sweep scheduling tests.

``sweep`` is the real :mod:`common.sweep`. ``fit`` and ``test`` import nothing heavy: they append
their command line and ``--gpus=$CUDA_VISIBLE_DEVICES`` to the file ``--calls`` (shared by every
process), wait until ``$FAKE_LAB_WAIT_FOR_FITS`` fits have started, sleep ``$FAKE_LAB_SLEEP``
seconds (a test kills a worker meanwhile), and write the
``version_*/config.yaml`` and ``metrics.csv`` a Lightning run leaves, with ``val/acc`` =
``test/acc`` = ``--acc``, else ``--lr`` (which a search draws), else a number drawn from the run
folder's name; ``--fail=true`` exits as a bad configuration does.
Each call also logs the search trial named in its environment, ``--optuna=<url>,<study>,<number>``
(empty in a grid); a ``fit`` given the pruning callback whose trial number is in
``$FAKE_LAB_PRUNE`` (e.g. ``1,3``) writes the ``pruned.json`` of a fit pruned after its warmup.
"""

import csv
import json
import os
import sys
import time
import zlib
from pathlib import Path

TRIAL_ENV = ("DLA_OPTUNA_STORAGE", "DLA_OPTUNA_STUDY", "DLA_OPTUNA_TRIAL")  # without Optuna


def wait_for_fits(calls: Path, count: int, deadline: float = 60) -> None:
    """Wait until ``count`` fits have started: two workers started together have then both
    queued their cells, so none of them takes a cell that the other has already finished."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if sum(line.startswith("fit ") for line in calls.read_text().splitlines()) >= count:
            return
        time.sleep(0.05)


def fake_run(command: str, argv: list[str]) -> None:
    options = dict(arg.removeprefix("--").split("=", 1) for arg in argv if "=" in arg)
    with open(options["calls"], "a") as calls:
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
        optuna = ",".join(os.environ.get(key, "") for key in TRIAL_ENV)
        calls.write(" ".join([command, *argv, f"--gpus={gpus}", f"--optuna={optuna}"]) + "\n")
    wait_for_fits(Path(options["calls"]), int(os.environ.get("FAKE_LAB_WAIT_FOR_FITS", 0)))
    time.sleep(float(os.environ.get("FAKE_LAB_SLEEP", 0)))
    if options.get("fail") == "true":
        sys.exit("error: invalid configuration: this run fails")
    root = Path(options["trainer.default_root_dir"])
    acc = float(options.get("acc", options.get("lr", zlib.crc32(root.name.encode()) % 1000 / 1000)))
    if command == "fit":
        row = {"epoch": 0, "step": 1, "train/loss": 1 - acc, "val/acc": acc, "trainable_params": 10}
    else:
        row = {"epoch": 0, "step": 1, "test/acc": acc}
    folder = root / f"version_{len(list(root.glob('version_*')))}"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("ckpt_path: null\n")  # as the CLI writes: a fresh start
    with open(folder / "metrics.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    pruned = os.environ.get("FAKE_LAB_PRUNE", "").split(",")
    warmup = options.get("trainer.callbacks.warmup_epochs")
    if command == "fit" and warmup and os.environ.get("DLA_OPTUNA_TRIAL") in pruned:
        (root / "pruned.json").write_text(json.dumps({"epoch": int(warmup), "value": acc}))


if __name__ == "__main__":
    from common import answer_ctrl_c

    answer_ctrl_c()  # as the labs' entry point does
    command, *argv = sys.argv[1:]
    if command == "sweep":
        from common.sweep import main

        main(argv, "tests.fake_lab")
    else:
        fake_run(command, argv)
