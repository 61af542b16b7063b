"""Lab 2's ``fit`` side by side with nanoGPT's CPU recipe, on one machine and one text split.

The recipe is Karpathy's ``train.py`` with ``config/train_shakespeare_char.py`` and the README's
overrides for a laptop ("I only have a macbook")::

    python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20
      --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
      --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0

that is, with the config's and ``train.py``'s other values: AdamW (lr 1e-3, betas (0.9, 0.99),
weight decay 0.1 on tensors of two or more dimensions only), 100 warm-up iterations then a cosine
to 1e-4 at iteration 2000 (``get_lr``), gradient clipping at 1.0, no gradient accumulation,
``bias=False``, seed 1337, iterations 0 to ``max_iters`` (2001 steps), ``estimate_loss`` on 20
random batches of each split every 250 iterations, and float32: on a CPU ``train.py`` uses no
autocast whatever its ``dtype``. Here it is a bare PyTorch loop (:class:`RecipeLoop`) of
``lab2.models.CharGPT`` — nanoGPT's network under GPT-2's parameter names — over the project's
train split, its batches drawn as ``get_batch`` draws them (``torch.randint`` offsets, stacked).

Part A (speed): tokens/s of the training steps only (after warm-up; no startup, no validation) of
``python -m lab2 fit --config CONFIG`` (LanguageCLI in-process, the config given the recipe's
network and batches) and of the bare loop on the same network, batches, threads and precision;
the goal is fit/bare >= 0.95. Each is run ``--repeats`` times, alternating, and its best kept
(the machine may be shared).

Part B (quality): the recipe for its iterations (wall time W, its own periodic evaluations
included), then ``fit --config CONFIG`` for the steps that fit in W (:func:`budget_steps`: its
rate over one epoch, validation included, measured first) with ``trainer.max_time`` = W as a cap,
each scored by :func:`held_out_loss` on its final weights.

    python benchmarks/lab2_nanogpt.py [--part speed|quality|both] [--steps 300] [--warmup 20]
        [--config configs/lab2/gpt_small.yaml] [--threads N] [--recipe_iters 2000] [--out FILE]
"""

from __future__ import annotations

import os

# before torch loads, as `python -m lab2` does (common/__init__.py): idle OpenMP threads sleep
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from cpu_threads import cpu_description  # noqa: E402  (this script's folder is on sys.path)
from torch import nn  # noqa: E402

from common.trainer import resolve_precision  # noqa: E402
from lab2.cli import LanguageCLI  # noqa: E402
from lab2.data import TextDataModule  # noqa: E402
from lab2.models import CharGPT  # noqa: E402

CONFIG = "configs/lab2/gpt_small.yaml"
AUTOCAST = {"32-true": None, "bf16-mixed": torch.bfloat16}


@dataclass(frozen=True)
class NanoGPTRecipe:
    """nanoGPT's CPU recipe (see the module docstring); ``max_iters`` is also ``lr_decay_iters``."""

    context: int = 64
    batch_size: int = 12
    layers: int = 4
    heads: int = 4
    width: int = 128
    dropout: float = 0.0
    bias: bool = False  # train.py's default; the shakespeare config leaves it
    max_iters: int = 2000
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.context

    def lr(self, iteration: int) -> float:
        """``get_lr``: a linear warm-up, then a cosine from ``learning_rate`` to ``min_lr``."""
        if iteration < self.warmup_iters:
            return self.learning_rate * (iteration + 1) / (self.warmup_iters + 1)
        if iteration > self.max_iters:
            return self.min_lr
        decay = (iteration - self.warmup_iters) / max(1, self.max_iters - self.warmup_iters)
        cosine = 0.5 * (1.0 + math.cos(math.pi * decay))
        return self.min_lr + cosine * (self.learning_rate - self.min_lr)

    def network(self, vocab_size: int) -> CharGPT:
        torch.manual_seed(self.seed)
        return CharGPT(
            vocab_size, self.context, self.layers, self.heads, self.width, self.dropout, self.bias
        )

    def fit_options(self) -> list[str]:
        """``fit`` options that give any Lab 2 config the recipe's network and batches."""
        network = "--model.init_args.model.init_args"
        return [
            "--model.init_args.model=lab2.models.CharGPT",
            f"{network}.context={self.context}",
            f"{network}.layers={self.layers}",
            f"{network}.heads={self.heads}",
            f"{network}.width={self.width}",
            f"{network}.dropout={self.dropout}",
            f"{network}.bias={str(self.bias).lower()}",
            f"--data.init_args.context={self.context}",
            f"--data.init_args.batch_size={self.batch_size}",
        ]


def autocast(precision: str) -> contextlib.AbstractContextManager:
    if precision not in AUTOCAST:
        raise SystemExit(f"error: precision {precision!r}: choose among {', '.join(AUTOCAST)}")
    dtype = AUTOCAST[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast("cpu", dtype=dtype)


class RecipeLoop:
    """``train.py``'s loop over ``splits`` (``train``, ``val`` ids): a step sets the lr, runs
    forward on the current batch, draws the next, then backward, clipping and AdamW."""

    def __init__(
        self,
        network: nn.Module,
        recipe: NanoGPTRecipe,
        splits: dict[str, torch.Tensor],
        precision: str = "32-true",
    ) -> None:
        self.network, self.recipe, self.splits = network.train(), recipe, splits
        self.precision = precision
        parameters = [p for p in network.parameters() if p.requires_grad]
        groups = [
            {
                "params": [p for p in parameters if p.dim() >= 2],
                "weight_decay": recipe.weight_decay,
            },
            {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=recipe.learning_rate, betas=recipe.betas)
        self.batch = self.get_batch("train")

    def get_batch(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        ids, context = self.splits[split], self.recipe.context
        offsets = torch.randint(len(ids) - context, (self.recipe.batch_size,))
        inputs = torch.stack([ids[i : i + context] for i in offsets])
        targets = torch.stack([ids[i + 1 : i + 1 + context] for i in offsets])
        return inputs, targets

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with autocast(self.precision):  # the loss in float32, as CharLanguageModel computes it
            logits = self.network(inputs)
            return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    def step(self, iteration: int) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.recipe.lr(iteration)
        loss = self.loss(*self.batch)
        self.batch = self.get_batch("train")
        loss.backward()
        if self.recipe.grad_clip:
            nn.utils.clip_grad_norm_(self.network.parameters(), self.recipe.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def estimate_loss(self) -> dict[str, float]:
        """``estimate_loss``: the recipe's progress report (part of its wall time, not a score)."""
        self.network.eval()
        losses = {}
        for split in ("train", "val"):
            batches = (self.get_batch(split) for _ in range(self.recipe.eval_iters))
            losses[split] = (
                sum(self.loss(*batch).item() for batch in batches) / self.recipe.eval_iters
            )
        self.network.train()
        return losses

    def run(self) -> float:
        """Iterations 0 to ``max_iters`` as ``train.py`` runs them; the wall time in seconds."""
        start = time.perf_counter()
        for iteration in range(self.recipe.max_iters + 1):
            if iteration % self.recipe.eval_interval == 0:
                losses = self.estimate_loss()
                print(f"recipe step {iteration}: train loss {losses['train']:.4f}, "
                      f"val loss {losses['val']:.4f}", flush=True)  # fmt: skip
            self.step(iteration)
        return time.perf_counter() - start


@torch.no_grad()
def held_out_loss(network: nn.Module, data: TextDataModule) -> float:
    """Mean cross-entropy (nats per character) of ``network`` over the validation part of
    ``data``'s text, read as consecutive windows of the network's own context
    (``TextDataModule.val_dataloader``), in float32: the one score of both loops."""
    windows = TextDataModule(
        data.path,
        context=network.context,
        batch_size=64,
        val_fraction=data.val_fraction,
        test_fraction=data.test_fraction,
    )
    windows.setup()
    was_training = network.training
    network.eval()
    total, count = 0.0, 0
    for batch in windows.val_dataloader():
        logits = network(batch[:, :-1])
        targets = batch[:, 1:].flatten()
        total += F.cross_entropy(logits.flatten(0, 1).float(), targets, reduction="sum").item()
        count += len(targets)
    network.train(was_training)
    return total / count


class TrainingClock(L.Callback):
    """A fit's training tokens and times after ``warmup`` batches: ``start`` at the end of
    batch ``warmup`` − 1 (at the start of training when ``warmup`` is 0), ``last_batch_end``
    (steps only) and ``train_end`` (validation and checkpoints included)."""

    def __init__(self, warmup: int = 0) -> None:
        self.warmup, self.batches, self.tokens = warmup, 0, 0
        self.start = self.last_batch_end = self.train_end = math.nan

    def on_train_start(self, trainer, pl_module) -> None:
        if self.warmup == 0:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        self.batches += 1
        if self.batches == self.warmup:
            self.start = now
        elif self.batches > self.warmup:
            self.tokens += batch[1].numel()
            self.last_batch_end = now

    def on_train_end(self, trainer, pl_module) -> None:
        self.train_end = time.perf_counter()


def fit(options: list[str], clock: TrainingClock) -> LanguageCLI:
    """``python -m lab2 fit OPTIONS`` in this process, timed by ``clock``, in a temporary run
    folder (never a config's: a finished run there would stop the fit)."""
    with tempfile.TemporaryDirectory() as run_dir, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended")
        cli = LanguageCLI(args=[*options, f"--trainer.default_root_dir={run_dir}"], run=False)
        cli.trainer.callbacks.append(clock)
        cli.trainer.fit(cli.model, cli.datamodule)
    return cli


def bare_rate(loop: RecipeLoop, steps: int, warmup: int) -> float:
    """Tokens/s of ``steps`` steps of ``loop`` after ``warmup`` ones."""
    for iteration in range(warmup):
        loop.step(iteration)
    start = time.perf_counter()
    for iteration in range(warmup, warmup + steps):
        loop.step(iteration)
    return steps * loop.recipe.tokens_per_step / (time.perf_counter() - start)


def machine() -> str:
    """The CPU, torch, and how busy the machine was (the timings' context)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return (
        f"CPU: {cpu_description()}, load average {load:.1f}; torch {torch.__version__}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )


def speed(args: argparse.Namespace, recipe: NanoGPTRecipe, options: list[str]) -> str:
    """Part A: the markdown table of tokens/s, bare loop and ``fit``, per precision."""
    rows, chosen = [], "?"
    for precision in args.precisions:
        best = {"bare": 0.0, "fit": 0.0}
        for _ in range(args.repeats):
            clock = TrainingClock(args.warmup)
            cli = fit(
                [
                    *options,
                    *recipe.fit_options(),
                    f"--trainer.precision={precision}",
                    "--trainer.max_epochs=1",
                    "--trainer.max_steps=-1",
                    f"--data.init_args.batches_per_epoch={args.warmup + args.steps}",
                    "--trainer.limit_val_batches=0",
                ],
                clock,
            )
            best["fit"] = max(best["fit"], clock.tokens / (clock.last_batch_end - clock.start))
            threads = torch.get_num_threads()  # what the fit chose: the bare loop runs alike
            chosen = f"{args.threads} (given)" if args.threads else f"auto → {threads}"
            network = CharGPT(**cli.model.model.config())  # fit's network, freshly initialised
            loop = RecipeLoop(network, recipe, cli.datamodule.splits, precision)
            best["bare"] = max(best["bare"], bare_rate(loop, args.steps, args.warmup))
        rows += [
            f"| bare PyTorch loop (nanoGPT's) | {precision} | {threads} | {best['bare']:.0f} | |",
            f"| `python -m lab2 fit` | {precision} | {threads} | {best['fit']:.0f} "
            f"| {best['fit'] / best['bare']:.3f} |",
        ]
    return "\n".join(
        [
            f"## Part A: training speed, nanoGPT's CPU network and batches "
            f"({recipe.batch_size} × {recipe.context} characters)",
            "",
            f"{machine()}; threads {chosen}; best of {args.repeats} run(s) of {args.steps} "
            f"steps after {args.warmup} warm-up steps; tokens/s of the training steps only "
            "(goal: fit / bare >= 0.95)",
            "",
            "| loop | precision | threads | tokens/s | fit / bare |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )


def budget_steps(options: list[str], seconds: float, margin: float = 0.95) -> int:
    """The steps of the configured fit that end within ``seconds``: its rate over one epoch
    (validation and sample included) × ``margin``. The fit then runs with that ``max_steps``, so
    its learning-rate schedule ends with the budget (``max_time`` alone would stop it mid-way,
    at a high learning rate); ``max_time`` still caps it."""
    clock = TrainingClock()
    cli = fit([*options, "--trainer.max_epochs=1", "--trainer.max_steps=-1"], clock)
    rate = clock.batches / (clock.train_end - clock.start)
    return max(1, math.floor(margin * seconds * rate * cli.trainer.world_size))


def quality(args: argparse.Namespace, recipe: NanoGPTRecipe, options: list[str]) -> str:
    """Part B: the markdown table of the recipe and ``fit`` trained for the same wall time."""
    with tempfile.TemporaryDirectory() as run_dir, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended")
        config = LanguageCLI(args=[*options, f"--trainer.default_root_dir={run_dir}"], run=False)
    data = config.datamodule  # the config's text and split
    data.setup()
    torch.set_num_threads(args.threads or args.default_threads)
    recipe_threads = torch.get_num_threads()
    loop = RecipeLoop(recipe.network(len(data.vocabulary)), recipe, data.splits)
    wall = loop.run()
    seconds = max(1, round(wall))
    steps = budget_steps(options, wall)
    clock = TrainingClock()
    max_time = f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    cli = fit(
        [*options, f"--trainer.max_steps={steps}", "--trainer.max_epochs=-1",
         f"--trainer.max_time={max_time}"],
        clock,
    )  # fmt: skip
    fit_wall = clock.train_end - clock.start
    network = cli.model.model
    precision = cli.trainer.precision
    rows = [
        (f"nanoGPT recipe, bare loop (32-true, {recipe_threads} threads)", loop.network,
         recipe.max_iters + 1, wall, (recipe.max_iters + 1) * recipe.tokens_per_step),
        (f"`python -m lab2 fit --config {args.config}` ({precision}, "
         f"{torch.get_num_threads()} threads, max_steps {steps}, max_time {seconds} s)",
         network, clock.batches, fit_wall, clock.tokens),
    ]  # fmt: skip
    lines = []
    for name, model, steps, seconds_taken, tokens in rows:
        loss = held_out_loss(model, data)
        parameters = sum(p.numel() for p in model.parameters())
        lines.append(
            f"| {name} | {parameters:,} | {steps} | {seconds_taken:.1f} | "
            f"{tokens / seconds_taken:.0f} | {loss:.4f} | {loss / math.log(2):.4f} |"
        )
    return "\n".join(
        [
            "## Part B: held-out loss after the same wall time",
            "",
            f"{machine()}; text {data.path}; wall time "
            "from the first training step to the last, each loop's periodic evaluations "
            "included; loss of the final weights over the validation part, consecutive "
            "windows of each model's own context, float32",
            "",
            "| model | parameters | steps | wall s | tokens/s | held-out loss (nats/char) "
            "| bits/char |",
            "|---|---|---|---|---|---|---|",
            *lines,
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["speed", "quality", "both"], default="both")
    parser.add_argument("--config", default=CONFIG, help="the Lab 2 config to fit")
    parser.add_argument("--text", help="another text than the config's (data.path)")
    parser.add_argument("--steps", type=int, default=300, help="timed steps (speed)")
    parser.add_argument("--warmup", type=int, default=20, help="steps before timing (speed)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each loop (speed)")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=list(AUTOCAST),
        help="speed: precisions to time (default: 32-true and, on a CPU with native bf16, "
        "bf16-mixed)",
    )
    parser.add_argument("--threads", type=int, help="CPU threads of both loops (default: fit's "
                        "trainer.threads; the recipe: torch's default)")  # fmt: skip
    parser.add_argument(
        "--recipe_iters", type=int, default=2000, help="the recipe's max_iters (quality)"
    )
    parser.add_argument("--out", help="also write the markdown tables to this file")
    args = parser.parse_args(argv)
    if min(args.steps, args.warmup, args.repeats, args.recipe_iters) < 1:
        raise SystemExit("error: --steps, --warmup, --repeats and --recipe_iters must be >= 1")
    for option, path in (("--config", args.config), ("--text", args.text)):
        if path is not None and not Path(path).is_file():
            raise SystemExit(f"error: {option} {path} does not exist (run from the repository)")
    os.environ.setdefault("WANDB_MODE", "disabled")  # fit's W&B logger: no background process
    torch.set_float32_matmul_precision("high")  # as `python -m lab2` sets it
    args.default_threads = torch.get_num_threads()
    args.precisions = args.precisions or sorted({"32-true", resolve_precision("auto", "cpu")[0]})
    recipe = NanoGPTRecipe(max_iters=args.recipe_iters)
    options = ["--config", args.config, "--trainer.accelerator=cpu", "--trainer.devices=1"]
    options += [f"--data.init_args.path={args.text}"] if args.text else []
    options += [f"--trainer.threads={args.threads}"] if args.threads else []
    tables = []
    if args.part in ("speed", "both"):
        tables.append(speed(args, recipe, options))
    if args.part in ("quality", "both"):
        tables.append(quality(args, recipe, options))
    report = "\n\n".join(tables) + "\n"
    print("\n" + report, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
