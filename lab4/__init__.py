"""Lab 4: robustness — out-of-distribution detection and adversarial attacks."""

#: commands of ``python -m lab4`` besides LightningCLI's and ``sweep`` (name → module with ``main``)
COMMANDS = {
    "odin": "lab4.odin_search",
    "report": "lab4.ood_report",
    "attack": "lab4.attack_sweep",
}
