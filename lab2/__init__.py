"""Lab 2: a character-level GPT that learns to write like Dante, sampled and shared as GPT-2."""

from common.commands import Command

#: the LightningCLI class of ``python -m lab2`` (fit, validate, test), imported when the CLI runs
CLI = "lab2.cli.LanguageCLI"

#: commands of ``python -m lab2`` besides Lightning's and ``sweep``
COMMANDS = {
    "generate": Command(
        "sample text from a checkpoint: prompt, length, temperature, top-k/top-p, seed",
        "lab2.generate",
    ),
    "export": Command(
        "a checkpoint → a Hugging Face GPT-2 folder (GPT2LMHeadModel + character tokenizer)",
        "lab2.export",
    ),
    "report": Command(
        "the study's table, loss curves and samples over fit + test runs", "lab2.report"
    ),
}
