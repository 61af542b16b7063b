"""``python -m lab1 baseline``: a linear SVM on the frozen features of a trained network.

The stable transfer baseline of the course: extract penultimate features of the new data with
the source network (batched, under ``torch.inference_mode``), standardize them, fit
scikit-learn's ``LinearSVC`` for each ``C`` on the training split, keep the ``C`` with the best
validation accuracy and report the test accuracy. The features are cached in the run folder.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from jsonargparse.typing import PositiveFloat
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import nn

from common.commands import add_model_arguments, command_parser, start_run, write_text_atomic
from common.data import ImageDataModule
from common.features import extract_features

log = logging.getLogger(__name__)


def split_features(
    model: nn.Module, data: ImageDataModule, device: torch.device, cache: Path
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Features and targets of the train/val/test splits, computed once and cached."""
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    data.setup("fit")
    features = {}
    for split in ("train", "val", "test"):
        dataset = data.splits[split]
        batches = data.preprocessed_batches(dataset.images, device)
        features[split] = (extract_features(model, batches), dataset.targets)
        log.info("%s features: %s", split, tuple(features[split][0].shape))
    torch.save(features, cache)
    return features


def fit_svm(
    features: dict[str, tuple[torch.Tensor, torch.Tensor]], c_values: list[float], seed: int
) -> dict[str, float]:
    """Fit standardize → LinearSVC for each C; pick C on validation, report test accuracy."""
    best = None
    for c in c_values:
        svm = make_pipeline(StandardScaler(), LinearSVC(C=c, random_state=seed, max_iter=5000))
        svm.fit(*(t.numpy() for t in features["train"]))
        val_acc = svm.score(*(t.numpy() for t in features["val"]))
        log.info("C=%g: val acc %.4f", c, val_acc)
        if best is None or val_acc > best[0]:
            best = (val_acc, c, svm)
    val_acc, c, svm = best
    num_features = features["train"][0].shape[1]
    num_classes = len(svm[-1].classes_)
    return {
        "C": c,
        "val_acc": val_acc,
        "test_acc": svm.score(*(t.numpy() for t in features["test"])),
        "trainable_params": num_features * num_classes + num_classes,
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = command_parser("python -m lab1 baseline", __doc__)
    add_model_arguments(parser, "runs/lab1/svm_baseline", data_type=ImageDataModule)
    parser.add_argument("--C", type=list[PositiveFloat], default=[0.01, 0.1, 1.0])
    cfg = parser.instantiate_classes(parser.parse_args(argv))
    run = start_run(cfg)
    start = time.perf_counter()
    features = split_features(run.model, run.data, run.device, run.run_dir / "features.pt")
    result = fit_svm(features, cfg.C, cfg.seed_everything)
    result["fit_seconds"] = time.perf_counter() - start
    write_text_atomic(run.run_dir / "metrics.json", json.dumps(result, indent=1))
    run.log_metrics({f"baseline/{key}": value for key, value in result.items()})
    run.finish()
    log.info(
        "linear SVM on frozen features: test acc %.4f (C=%g, val acc %.4f), %.1f s → %s",
        result["test_acc"],
        result["C"],
        result["val_acc"],
        result["fit_seconds"],
        run.run_dir / "metrics.json",
    )
    return result
