"""Lab 1: residual connections and explainability (MLPs, CNNs, transfer, CAM)."""

from common.commands import Command

#: commands of ``python -m lab1`` besides Lightning's and ``sweep``
COMMANDS = {
    "baseline": Command(
        "transfer baseline: a linear SVM on a network's frozen features", "lab1.svm_baseline"
    ),
    "cam": Command("Class Activation Maps of image files or folders → one PNG grid", "lab1.cam"),
}
