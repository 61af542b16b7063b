"""``python -m lab4 app``: look, check, attack — a web page around one trained classifier.

    python -m lab4 app --config configs/lab4/app.yaml            # http://127.0.0.1:7860
    python -m lab4 app --config configs/lab4/app.yaml \\
        --model lab4.models.SimpleCNN --checkpoint runs/lab4/cnn_cifar10/checkpoints/best.ckpt

Pick a CIFAR-10 test image (by index) or upload one, then *Look*: the top-5 prediction, the
predicted class's CAM over the image, and every configured OOD detector's score with its verdict
at the threshold that keeps 95 % of ID validation images. *Attack* then runs the chosen attack
in the L∞ ball of ε around that image and shows the adversarial image, the perturbation
(amplified: grey is 0, the extremes ±ε), the new prediction and the steps it took. Every answer
is :class:`lab4.explorer.Explorer`'s, i.e. the CLI's own functions. Gradio is an optional extra:
``pip install -e '.[app]'``.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Literal

import torch
from jsonargparse.typing import OpenUnitInterval, PositiveInt, restricted_number_type
from PIL import Image

from common.app import add_server_arguments, check_address, import_gradio, serve, user_error
from common.cam import METHODS
from common.commands import add_model_arguments, command_parser, start_run
from common.ood import Detector
from lab4.attacks import ATTACKS, AttackName
from lab4.data import OODDataModule
from lab4.explorer import Explorer

log = logging.getLogger(__name__)

#: on-screen size of the 32-pixel images (nearest neighbour: the pixels stay visible)
DISPLAY_SIZE = 224
#: the sliders' ranges: ε (/255) and steps at most; ``--epsilon``/``--steps`` start inside them
EPSILON_RANGE, STEPS_RANGE = (0.5, 16.0), (1, 100)
SliderEpsilon = restricted_number_type(
    "SliderEpsilon", float, [(">=", EPSILON_RANGE[0]), ("<=", EPSILON_RANGE[1])]
)
SliderSteps = restricted_number_type(
    "SliderSteps", int, [(">=", STEPS_RANGE[0]), ("<=", STEPS_RANGE[1])]
)


def picture(image: torch.Tensor) -> Image.Image:
    """A [C, H, W] image (uint8, or float in [0, 1]) as an enlarged PIL image."""
    if image.dtype != torch.uint8:
        image = (image.float().clamp(0, 1) * 255).round().to(torch.uint8)
    pil = Image.fromarray(image.expand(3, -1, -1).permute(1, 2, 0).cpu().numpy())
    return pil.resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.NEAREST)


def build_app(
    explorer: Explorer, attacks: list[str], epsilon: float, steps: int
) -> tuple[ModuleType, object]:
    """The page (``gradio.Blocks``) around ``explorer``; returns ``(gradio, page)``."""
    gr = import_gradio()
    names = explorer.class_names
    last_test = len(explorer.data.splits["test"]) - 1

    def look(source: str, index: float | None, upload: str | None):
        try:
            if source == "upload":
                if not upload:
                    raise ValueError("upload an image first (or choose a test image)")
                image, label = explorer.read_image(upload), None
            else:
                image, label = explorer.test_image(int(index or 0))
            seen = explorer.look(image)
        except ValueError as error:
            raise user_error(gr, error) from None
        truth = f"true class **{names[label]}** · " if label is not None else ""
        kept = sum(v.in_distribution for v in seen.verdicts)
        summary = (
            f"{truth}predicted **{names[seen.predicted]}** ({max(seen.top5.values()):.1%}) · "
            f"{kept} of {len(seen.verdicts)} detectors say in-distribution"
        )
        rows = [
            [v.detector, round(v.score, 4), round(v.threshold, 4),
             "in-distribution" if v.in_distribution else "OOD"]
            for v in seen.verdicts
        ]  # fmt: skip
        # the attack's target class: the true one where known, else the network's prediction
        state = (image, seen.predicted if label is None else label)
        return picture(image), seen.top5, picture(seen.cam), summary, rows, state

    def attack(state, name: str, epsilon_255: float, max_steps: float):
        if state is None:
            raise gr.Error("error: look at an image first, then attack it")
        image, label = state
        try:
            hit = explorer.attack(image, label, name, float(epsilon_255) / 255, int(max_steps))
        except ValueError as error:
            raise user_error(gr, error) from None
        outcome = "fooled" if hit.success else "not fooled"
        summary = (
            f"{name} at ε = {float(epsilon_255):g}/255: {outcome} — predicted "
            f"**{names[hit.predicted]}** ({max(hit.top5.values()):.1%}) after {hit.steps} "
            f"step{'s' if hit.steps != 1 else ''}; ‖δ‖∞ = {hit.linf * 255:.2f}/255"
        )
        return picture(hit.adversarial), picture(hit.perturbation), hit.top5, summary

    with gr.Blocks(title="Lab 4: look, check, attack") as page:
        gr.Markdown(
            "## Look, check, attack\nA CIFAR-10 classifier: what it predicts and where it "
            "looks (CAM), whether its OOD detectors trust the image, and how little it takes "
            "to change its mind."
        )
        state = gr.State(None)
        with gr.Row():
            with gr.Column():
                source = gr.Radio(
                    ["test image", "upload"], value="test image", label="Image", elem_id="source"
                )
                index = gr.Number(
                    0, precision=0, minimum=0, maximum=last_test,
                    label=f"test image index (0–{last_test})", elem_id="index",
                )  # fmt: skip
                # a file, not gr.Image: a file that is no image gets the CLI's message, not silence
                upload = gr.File(label="upload an image file", elem_id="upload", height=120)
                look_button = gr.Button("Look and check", variant="primary", elem_id="look")
            with gr.Column():
                shown = gr.Image(label="input (as the network sees it)", elem_id="shown")
                cam = gr.Image(label="CAM of the predicted class", elem_id="cam")
            with gr.Column():
                summary = gr.Markdown(elem_id="summary")
                top5 = gr.Label(num_top_classes=5, label="top-5", elem_id="top5")
        verdicts = gr.Dataframe(
            headers=["detector", "score", "threshold (95 % ID kept)", "verdict"],
            label="OOD detectors",
            elem_id="verdicts",
        )
        gr.Markdown("### Attack")
        with gr.Row():
            with gr.Column():
                name = gr.Dropdown(attacks, value=attacks[0], label="attack", elem_id="attack")
                radius = gr.Slider(*EPSILON_RANGE, value=float(epsilon), step=0.5, label="ε (/255)")
                most = gr.Slider(*STEPS_RANGE, value=int(steps), step=1, label="steps at most")
                attack_button = gr.Button("Attack", variant="stop", elem_id="attack_button")
            adversarial = gr.Image(label="adversarial image", elem_id="adversarial")
            perturbation = gr.Image(label="perturbation δ (amplified)", elem_id="perturbation")
            with gr.Column():
                attack_summary = gr.Markdown(elem_id="attack_summary")
                top5_after = gr.Label(num_top_classes=5, label="top-5 after", elem_id="top5_after")
        look_button.click(
            look, [source, index, upload], [shown, top5, cam, summary, verdicts, state]
        )
        attack_button.click(
            attack, [state, name, radius, most], [adversarial, perturbation, top5_after,
                                                  attack_summary],
        )  # fmt: skip
    return gr, page


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("python -m lab4 app", __doc__)
    add_model_arguments(parser, run_dir=None, data_type=OODDataModule)
    parser.add_argument("--detectors", type=list[Detector], default=[], help="OOD detectors")
    parser.add_argument("--fit_images", type=PositiveInt, default=10_000)
    parser.add_argument("--tune_on", type=str, default="imagenette")
    parser.add_argument("--tune_images", type=PositiveInt | None, default=1000)
    parser.add_argument("--threshold_images", type=PositiveInt, default=2000, help="ID val")
    parser.add_argument("--keep", type=OpenUnitInterval, default=0.95, help="ID kept")
    parser.add_argument("--cam", type=Literal[tuple(METHODS)], default="cam")
    parser.add_argument("--attacks", type=list[AttackName], default=list(ATTACKS))
    parser.add_argument("--epsilon", type=SliderEpsilon, default=8.0, help="/255, at start")
    parser.add_argument("--steps", type=SliderSteps, default=20, help="at start")
    add_server_arguments(parser)
    cfg = parser.parse_args(argv)
    import_gradio()  # before anything is loaded: a missing extra fails at once,
    check_address(cfg.host, cfg.port)  # and so does a busy port
    cfg = parser.instantiate_classes(cfg)
    run = start_run(cfg)
    run.data.setup("test")
    explorer = Explorer(
        run.model, run.data, cfg.detectors, run.device, cfg.fit_images, cfg.tune_on,
        cfg.tune_images, cfg.threshold_images, cfg.keep, cfg.cam, cfg.seed_everything,
    )  # fmt: skip
    _, page = build_app(explorer, cfg.attacks, cfg.epsilon, cfg.steps)
    log.info("Lab 4 app on http://%s:%d (Ctrl+C stops it)", cfg.host, cfg.port)
    serve(page, cfg.host, cfg.port)
