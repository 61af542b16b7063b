"""What the Lab 4 app computes for one image: look (top-5 and CAM), check (OOD verdicts), attack.

No Gradio here, so the app's answers can be tested without a browser, and no second copy of
anything: the top-5 and the CAM are :mod:`common.cam`'s, the detectors are fitted and tuned by
:func:`common.ood.fit_detectors` / :func:`common.ood.tune_detectors` as in
:class:`common.callbacks.OODEvaluation`, and the attacks are :data:`lab4.attacks.ATTACKS`' (in the
L∞ ball, :meth:`lab4.attacks.Attack.in_ball`) as in the attack command.

    explorer = Explorer(network, data, detectors, device="cpu")
    image, label = explorer.test_image(0)             # uint8 [3, 32, 32] and its class
    seen = explorer.look(image)                       # .top5, .cam, .verdicts
    attacked = explorer.attack(image, label, "pgd", radius=8 / 255, steps=20)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from common.cam import METHODS, overlay, upsample
from common.data.sources import read_image
from common.features import features_and_logits
from common.ood import Detector, ScoredBatch, fit_detectors, tune_detectors
from lab4.attacks import ATTACKS


@dataclass
class Verdict:
    """One detector on one image: in-distribution when ``score ≥ threshold``."""

    detector: str
    score: float
    threshold: float

    @property
    def in_distribution(self) -> bool:
        return self.score >= self.threshold


@dataclass
class Look:
    """The network's view of one image."""

    top5: dict[str, float]  #: class name → probability, most likely first
    predicted: int
    cam: torch.Tensor  #: the predicted class's CAM over the image, [3, H, W] in [0, 1]
    verdicts: list[Verdict]


@dataclass
class Attacked:
    """One attack on one image."""

    adversarial: torch.Tensor  #: [3, H, W] in [0, 1]
    perturbation: torch.Tensor  #: δ amplified to fill [0, 1] (grey: 0), [3, H, W]
    top5: dict[str, float]  #: after the attack
    predicted: int
    steps: int  #: gradient steps taken (the attack stops once the prediction changed)
    success: bool
    linf: float  #: ‖δ‖∞ in [0, 1] pixel units


class Explorer:
    """One classifier with its OOD detectors, ready to answer for one image at a time.

    Args:
        network: a classifier of [0, 1] images (``features`` → ``classifier``, normalisation
            inside), with its trained weights.
        data: its DataModule, set up (e.g. ``lab4.data.OODDataModule``): the test images to
            pick from, training images to fit detectors, validation images to tune them and to
            set their thresholds.
        detectors: :class:`common.ood.Detector` objects.
        fit_images, tune_on, tune_images: as :class:`common.callbacks.OODEvaluation`'s.
        threshold_images: ID validation images whose scores set each detector's threshold.
        keep: the fraction of those images each threshold keeps as in-distribution (0.95:
            the usual operating point, where FPR@95 is measured).
        cam: ``"cam"`` or ``"gradcam"`` (:data:`common.cam.METHODS`).
        seed: seeds the random start of the attacks, so the same request gives the same answer.
    """

    def __init__(
        self,
        network: nn.Module,
        data,
        detectors: Sequence[Detector],
        device: torch.device | str = "cpu",
        fit_images: int = 10_000,
        tune_on: str = "imagenette",
        tune_images: int | None = 1000,
        threshold_images: int = 2000,
        keep: float = 0.95,
        cam: str = "cam",
        seed: int = 0,
    ) -> None:
        if not 0 < keep < 1:
            raise ValueError(f"keep must be in (0, 1), got {keep}")
        self.network, self.data, self.device = network.eval().to(device), data, device
        self.detectors, self.cam, self.seed = list(detectors), METHODS[cam], seed
        fit_detectors(self.detectors, network, data, fit_images, device)
        tune_detectors(self.detectors, network, data, tune_on, tune_images, device)
        scores = self.scores(data.splits["val"].images[:threshold_images])
        # the largest score that keeps at least `keep` of them (no interpolation)
        self.thresholds = {
            name: s.quantile(1 - keep, interpolation="lower").item() for name, s in scores.items()
        }

    @property
    def class_names(self) -> list[str]:
        return self.data.class_names

    def test_image(self, index: int) -> tuple[torch.Tensor, int]:
        """Test image ``index`` (uint8 [C, H, W]) and its class."""
        test = self.data.splits["test"]
        if not 0 <= index < len(test):
            raise ValueError(f"test image index {index} is not in [0, {len(test) - 1}]")
        return test.images[index], int(test.targets[index])

    def read_image(self, path: str | Path) -> torch.Tensor:
        """An image file as the network sees it: uint8 [C, H, W] at the data's size (resized
        and centre-cropped as the OOD image folders are)."""
        channels, height, _ = self.data.image_shape
        if not Path(path).is_file():
            raise ValueError(f"{path}: no such image file")
        try:
            return read_image(path, channels, size=height)
        except (RuntimeError, OSError):  # torchvision's message names its C++ source file
            raise ValueError(
                f"{Path(path).name}: not a readable image (JPEG, PNG, WebP or GIF)"
            ) from None

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images [N, C, H, W] → the network's input batch, as the test loop prepares it."""
        return torch.cat(list(self.data.preprocessed_batches(images, self.device)))

    @torch.no_grad()
    def scores(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every detector's scores (higher = more in-distribution) of uint8 images."""
        batches = self.data.preprocessed_batches(images, self.device)
        scores: dict[str, list[torch.Tensor]] = {d.name: [] for d in self.detectors}
        for images, features, logits in features_and_logits(self.network, batches):
            batch = ScoredBatch(self.network, images, features, logits)
            for detector in self.detectors:
                scores[detector.name].append(detector.score(batch).cpu())
        return {name: torch.cat(parts).float() for name, parts in scores.items()}

    def top5(self, probabilities: torch.Tensor) -> dict[str, float]:
        """The five most likely classes of one image's ``probabilities`` (most likely first)."""
        values, classes = probabilities.topk(min(5, len(probabilities)))
        names = [self.class_names[c] for c in classes.tolist()]
        return dict(zip(names, values.tolist(), strict=True))

    def look(self, image: torch.Tensor) -> Look:
        """Top-5, the predicted class's CAM overlaid, and every detector's verdict."""
        inputs = self.inputs(image[None])
        cams, logits = self.cam(self.network, inputs)
        cam = overlay(inputs.float(), upsample(cams.float(), tuple(inputs.shape[-2:])))[0]
        scores = self.scores(image[None])
        verdicts = [Verdict(name, s.item(), self.thresholds[name]) for name, s in scores.items()]
        probabilities = logits[0].float().softmax(dim=-1)
        return Look(self.top5(probabilities), int(probabilities.argmax()), cam.cpu(), verdicts)

    def attack(
        self, image: torch.Tensor, label: int, attack: str, radius: float, steps: int = 20
    ) -> Attacked:
        """``attack`` (a name of :data:`lab4.attacks.ATTACKS`) in the L∞ ball of ``radius``
        ([0, 1] units, e.g. 8/255) against class ``label``, at most ``steps`` steps."""
        if attack not in ATTACKS:
            raise ValueError(f"unknown attack {attack!r}: choose among {', '.join(ATTACKS)}")
        if not 0 < radius <= 1:  # also false for NaN, whose "attack" would count as a success
            raise ValueError(
                f"the attack's radius must be in (0, 1] (pixel units, e.g. 8/255), got {radius}"
            )
        generator = torch.Generator(self.device).manual_seed(self.seed)
        method = ATTACKS[attack].in_ball(self.network, radius, steps=steps, generator=generator)
        inputs = self.inputs(image[None])
        result = method.run(inputs, torch.tensor([label], device=inputs.device))
        delta = (result.adversarial - inputs)[0].float()
        after = result.probabilities_after[0].float()
        return Attacked(
            adversarial=result.adversarial[0].float().cpu(),
            perturbation=(0.5 + delta / (2 * radius)).clamp(0, 1).cpu(),
            top5=self.top5(after),
            predicted=int(after.argmax()),
            steps=int(result.iterations[0]),
            success=bool(result.success[0]),
            linf=delta.abs().max().item(),
        )
