"""Lab 4: robustness — out-of-distribution detection and adversarial attacks."""

from common.commands import Command

#: commands of ``python -m lab4`` besides Lightning's and ``sweep``
COMMANDS = {
    "attack": Command(
        "an attack ε sweep: a `test` run with RobustnessEvaluation (configs/lab4/attacks/)",
        alias="test",
    ),
    "odin": Command(
        "choose ODIN's T and ε on validation: a `test` run of OODEvaluation "
        "(configs/lab4/ood/odin_search.yaml)",
        alias="test",
    ),
    "report": Command(
        "one table over several `test` runs (OOD, attacks, adversarial, robustness)",
        "lab4.report",
    ),
    "app": Command(
        "a web page: a classifier's top-5, CAM, OOD verdicts and attacks on one image (Gradio)",
        "lab4.app",
    ),
    "saliency": Command(
        "input-gradient maps of several models on the same test images, one PNG grid",
        "lab4.saliency",
    ),
}
