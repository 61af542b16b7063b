"""Lab 1: residual connections and explainability."""

#: commands of ``python -m lab1`` besides LightningCLI's and ``sweep`` (name → module with ``main``)
COMMANDS = {"baseline": "lab1.svm_baseline", "cam": "lab1.cam"}
