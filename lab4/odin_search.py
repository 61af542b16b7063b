"""``python -m lab4 odin``: choose ODIN's temperature T and step ε on validation, report on test.

Validation = CIFAR-10 validation images (held out from train) vs one OOD set's ``val`` split
(its source's *training* images), so no hyperparameter is tuned on the OOD test images. For each
T the input-gradient sign is computed once per batch and reused for every ε (it does not depend
on ε): |T| backward passes instead of |T|·|ε|. ``compare_naive`` also times the naive loop that
recomputes the gradient for every (T, ε), in the same run.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from jsonargparse import ActionConfigFile, ArgumentParser
from torch import nn

from common.checkpoints import load_classifier_checkpoint
from common.metrics import ood_metrics
from common.plots import plot_heatmap
from lab4.data import OODDataModule
from lab4.detectors import ODIN, max_softmax, odin, odin_grid

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> dict:
    parser = ArgumentParser(prog="python -m lab4 odin", description=__doc__)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--model", type=nn.Module, required=True)
    parser.add_argument("--checkpoint", type=str | None, default=None, help="a fit checkpoint")
    parser.add_argument("--data", type=OODDataModule, required=True)
    parser.add_argument("--validation_set", type=str, default="imagenette", help="OOD set for val")
    parser.add_argument(
        "--validation_images", type=int | None, default=1000, help="at most this many ID + OOD"
    )
    parser.add_argument("--temperatures", type=list[float], default=[1, 10, 100, 1000])
    parser.add_argument("--epsilons", type=list[float], default=[0, 0.0005, 0.001, 0.002, 0.004])
    parser.add_argument("--compare_naive", type=bool, default=False)
    parser.add_argument("--output", type=str, default="results/lab4/odin_search")
    cfg = parser.instantiate_classes(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model, data = cfg.model.eval(), cfg.data
    if cfg.checkpoint:
        load_classifier_checkpoint(model, cfg.checkpoint)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    data.prepare_data()
    data.setup("test")
    grid = (cfg.temperatures, cfg.epsilons)

    id_images, ood_images = data.validation_images(cfg.validation_set, cfg.validation_images)
    detector = ODIN(temperatures=cfg.temperatures, epsilons=cfg.epsilons)
    start = time.perf_counter()
    auroc = detector.tune(
        model,
        data.preprocessed_batches(id_images, device),
        data.preprocessed_batches(ood_images, device),
    )
    search_seconds = time.perf_counter() - start
    temperature, epsilon = detector.temperature, detector.epsilon
    log.info(
        "ODIN search: best T=%g ε=%g (val AUROC %.4f, %d + %d images), %.1f s",
        temperature,
        epsilon,
        auroc.max(),
        len(id_images),
        len(ood_images),
        search_seconds,
    )
    result = {
        "temperature": temperature,
        "epsilon": epsilon,
        "val_auroc": auroc.max().item(),
        "val_auroc_grid": auroc.tolist(),
        "validation_images": [len(id_images), len(ood_images)],
        "search_seconds": search_seconds,
    }
    if cfg.compare_naive:
        start = time.perf_counter()
        for images in (id_images, ood_images):
            odin_grid(model, data.preprocessed_batches(images, device), *grid, reuse_gradient=False)
        result["naive_seconds"] = time.perf_counter() - start
        log.info("naive per-(T, ε) loop: %.1f s", result["naive_seconds"])

    def test_scores(dataset) -> tuple[torch.Tensor, torch.Tensor]:
        odin_scores, msp_scores = [], []
        for images in data.preprocessed_batches(dataset.images, device):
            odin_scores.append(odin(model, images, temperature, epsilon).cpu())
            with torch.no_grad():
                msp_scores.append(max_softmax(model(images)).cpu())
        return torch.cat(odin_scores), torch.cat(msp_scores)

    id_odin, id_msp = test_scores(data.splits["test"])
    result["test"] = {}
    for name in data.ood_sets:
        ood_odin, ood_msp = test_scores(data.ood_dataset(name, "test"))
        result["test"][name] = {
            "odin": ood_metrics(id_odin, ood_odin),
            "msp": ood_metrics(id_msp, ood_msp),
        }
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(result, indent=1))
    plot_heatmap(
        auroc,
        [f"T={t:g}" for t in cfg.temperatures],
        [f"ε={e:g}" for e in cfg.epsilons],
        output.with_suffix(".png"),
        xlabel="input perturbation ε (pixels in [0, 1])",
        ylabel="temperature",
        title=f"ODIN validation AUROC (CIFAR-10 val vs {cfg.validation_set} train)",
    )
    return result
