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
from jsonargparse import ActionConfigFile, ArgumentParser
from lightning import seed_everything
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import nn

from common.checkpoints import load_classifier_checkpoint
from common.data import ImageDataModule
from common.features import extract_features

log = logging.getLogger(__name__)


def split_features(
    model: nn.Module, data: ImageDataModule, cache: Path
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Features and targets of the train/val/test splits, computed once and cached."""
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    data.prepare_data()
    data.setup("fit")
    loaders = {
        "train": data.train_dataloader,
        "val": data.val_dataloader,
        "test": data.test_dataloader,
    }
    device = "cuda" if torch.cuda.is_available() else "cpu"
    features = {
        split: extract_features(model, loader(), device) for split, loader in loaders.items()
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
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
    parser = ArgumentParser(prog="python -m lab1 baseline", description=__doc__)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--seed_everything", type=int, default=0)
    parser.add_argument("--model", type=nn.Module, required=True, help="the source network")
    parser.add_argument("--checkpoint", type=str | None, default=None, help="its fit checkpoint")
    parser.add_argument("--data", type=ImageDataModule, required=True, help="the new data")
    parser.add_argument("--C", type=list[float], default=[0.01, 0.1, 1.0])
    parser.add_argument("--run_dir", type=str, default="runs/lab1/svm_baseline")
    cfg = parser.instantiate_classes(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    seed_everything(cfg.seed_everything)
    if cfg.checkpoint:
        load_classifier_checkpoint(cfg.model, cfg.checkpoint)
    start = time.perf_counter()
    run_dir = Path(cfg.run_dir)
    features = split_features(cfg.model, cfg.data, run_dir / "features.pt")
    result = fit_svm(features, cfg.C, cfg.seed_everything)
    result["fit_seconds"] = time.perf_counter() - start
    (run_dir / "metrics.json").write_text(json.dumps(result, indent=1))
    log.info(
        "linear SVM on frozen features: test acc %.4f (C=%g, val acc %.4f), %.1f s → %s",
        result["test_acc"],
        result["C"],
        result["val_acc"],
        result["fit_seconds"],
        run_dir,
    )
    return result
