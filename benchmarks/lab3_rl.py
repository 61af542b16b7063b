"""Lab 3 (RL): this project's DQN and PPO against Stable-Baselines3 with the RL Zoo's hyperparameters.

    pip install -e '.[rl-benchmark]'      # stable-baselines3: this script's alone
    python benchmarks/lab3_rl.py --jobs 2 # every pair x seeds 0 1 2, then the report
    python benchmarks/lab3_rl.py --report # the tables and figures again, from the saved runs

Parts, each run saved as JSON under ``--runs`` (a finished run is not run again):

- ``ours``: ``python -m lab3 fit`` then ``test --ckpt_path best`` with ``configs/lab3/rl/<pair>.yaml``
  and ``--seed_everything <seed>``: the eval curve (``eval/return_mean`` against env steps and
  training seconds) and the 100-episode test of the best checkpoint;
- ``sb3``: Stable-Baselines3 with the RL Zoo's hyperparameters for that algorithm and env
  (``ZOO``, from rl-baselines3-zoo's hyperparams/{dqn,ppo}.yml), evaluated exactly as ours (the
  same ``play_episodes``: the same seeded episodes, greedy actions, every ``env_steps_per_epoch``
  of our config); it stops at the first evaluation that reaches the goal (to save CPU time) or at
  the Zoo's budget, and its test plays 100 episodes with the policy it stopped with;
- ``speed``: env steps per second of our ``fit`` against a bare PyTorch loop of the same
  algorithm, hyperparameters and building blocks (``bare_dqn``, ``bare_ppo``), evaluations off.

*Env steps to solve* is the env-step count of the first evaluation whose mean return reaches
the goal (CartPole-v1 475, LunarLander-v3 200); its wall time counts training only (not the
evaluations). The report writes ``results/lab3/rl/`` (tables, the return curves, the GIFs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab3.rl.agent import EVAL_SEED  # noqa: E402
from lab3.rl.environments import play_episodes  # noqa: E402

GOALS = {"CartPole-v1": 475.0, "LunarLander-v3": 200.0}
PAIRS = ("dqn_cartpole", "ppo_cartpole", "ppo_lunarlander", "dqn_lunarlander")
TEST_EPISODES = 100


def linear(start: float):
    """The Zoo's ``lin_<x>``: ``x`` falling linearly to 0 over the budget."""
    return lambda progress_remaining: progress_remaining * start


#: rl-baselines3-zoo hyperparams/ppo.yml and dqn.yml (LunarLander-v2's entries, for v3)
ZOO = {
    "ppo_cartpole": dict(
        n_timesteps=1e5, n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
        n_epochs=20, ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2),
    ),
    "ppo_lunarlander": dict(
        n_timesteps=1e6, n_envs=16, n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999,
        n_epochs=4, ent_coef=0.01,
    ),
    "dqn_cartpole": dict(
        n_timesteps=5e4, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
        learning_starts=1000, gamma=0.99, target_update_interval=10, train_freq=256,
        gradient_steps=128, exploration_fraction=0.16, exploration_final_eps=0.04,
        policy_kwargs=dict(net_arch=[256, 256]),
    ),
    "dqn_lunarlander": dict(
        n_timesteps=1e5, learning_rate=6.3e-4, batch_size=128, buffer_size=50_000,
        learning_starts=0, gamma=0.99, target_update_interval=250, train_freq=4,
        gradient_steps=-1, exploration_fraction=0.12, exploration_final_eps=0.1,
        policy_kwargs=dict(net_arch=[256, 256]),
    ),
}  # fmt: skip


def config_of(pair: str) -> dict:
    return yaml.safe_load((REPO / f"configs/lab3/rl/{pair}.yaml").read_text())


def first_solve(curve: list[dict], goal: float) -> dict | None:
    return next((point for point in curve if point["return_mean"] >= goal), None)


# -- ours ------------------------------------------------------------------------------------
def run_ours(pair: str, seed: int, runs: Path) -> dict:
    run_dir = runs / "ours" / f"{pair}_seed{seed}"
    common = [
        "--config", f"configs/lab3/rl/{pair}.yaml", "--seed_everything", str(seed),
        "--trainer.default_root_dir", str(run_dir), "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    python = [sys.executable, "-m", "lab3"]
    started = time.perf_counter()
    subprocess.run([*python, "fit", *common, "--overwrite", "true"], cwd=REPO, env=env, check=True)
    fit_seconds = time.perf_counter() - started
    subprocess.run([*python, "test", *common, "--ckpt_path", "best"], cwd=REPO, env=env, check=True)
    import pandas as pd

    metrics = [pd.read_csv(f) for f in sorted(run_dir.glob("version_*/metrics.csv"))]
    fit = next(m for m in metrics if "eval/return_mean" in m)
    test = next(m for m in metrics[::-1] if "test/return_mean" in m)
    evals = fit.dropna(subset=["eval/return_mean"])
    curve = [
        {"env_steps": int(row["time/env_steps"]), "seconds": float(row["time/train_seconds"]),
         "return_mean": float(row["eval/return_mean"])}
        for _, row in evals.iterrows()
    ]  # fmt: skip
    test_row = test.dropna(subset=["test/return_mean"]).iloc[-1]
    return {
        "curve": curve,
        "test_mean": float(test_row["test/return_mean"]),
        "test_std": float(test_row["test/return_std"]),
        "fit_seconds": fit_seconds,
        "gif": str(next(iter(sorted(run_dir.glob("version_*/episode.gif"))), "")),
    }


# -- Stable-Baselines3 -----------------------------------------------------------------------
def run_sb3(pair: str, seed: int) -> dict:
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    model_config = config_of(pair)["model"]["init_args"]
    env_id, eval_every = model_config["env_id"], model_config["env_steps_per_epoch"]
    eval_episodes, goal = model_config["eval_episodes"], GOALS[env_id]
    hyper = dict(ZOO[pair])
    budget, n_envs = int(hyper.pop("n_timesteps")), hyper.pop("n_envs", 1)
    algorithm = PPO if pair.startswith("ppo") else DQN
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    model = algorithm("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **hyper)

    def greedy(observations: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(model.predict(observations.numpy(), deterministic=True)[0])

    class Evaluate(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.curve: list[dict] = []
            self.next_eval, self.eval_seconds = eval_every, 0.0

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next_eval:
                return True
            self.next_eval += eval_every
            started = time.perf_counter()
            returns = play_episodes(greedy, env_id, eval_episodes, EVAL_SEED)
            self.eval_seconds += time.perf_counter() - started
            seconds = time.perf_counter() - self.started - self.eval_seconds
            point = {"env_steps": self.num_timesteps, "seconds": seconds,
                     "return_mean": float(returns.mean())}  # fmt: skip
            self.curve.append(point)
            return point["return_mean"] < goal  # stop once solved

        def _on_training_start(self) -> None:
            self.started = time.perf_counter()

    evaluate = Evaluate()
    model.learn(total_timesteps=budget, callback=evaluate)
    returns = play_episodes(greedy, env_id, TEST_EPISODES, EVAL_SEED)
    return {"curve": evaluate.curve, "test_mean": float(returns.mean()),
            "test_std": float(returns.std()), "budget": budget}  # fmt: skip


# -- driver ----------------------------------------------------------------------------------
def run_one(part: str, pair: str, seed: int, runs: Path) -> Path:
    path = runs / part / f"{pair}_seed{seed}.json"
    if path.exists():
        return path
    record = run_ours(pair, seed, runs) if part == "ours" else run_sb3(pair, seed)
    record.update(part=part, pair=pair, seed=seed, cpu=cpu_description())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return path


def cpu_description() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    present = [flag for flag in wanted if f" {flag}" in flags]
    return f"{model} ({os.cpu_count()} cores; {' '.join(present)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=PAIRS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--parts", nargs="+", default=["ours", "sb3", "speed"],
                        choices=["ours", "sb3", "speed"])  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one thread each)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs/lab3/rl_benchmark")
    parser.add_argument("--out", type=Path, default=REPO / "results/lab3/rl")
    parser.add_argument("--report", action="store_true", help="only the report, from saved runs")
    args = parser.parse_args()
    if not args.report:
        jobs = [(part, pair, seed) for part in args.parts if part != "speed"
                for pair in args.pairs for seed in args.seeds]  # fmt: skip
        with ProcessPoolExecutor(args.jobs) as pool:
            for path in pool.map(run_one, *zip(*jobs), [args.runs] * len(jobs)):
                print("done:", path.relative_to(REPO), flush=True)
        if "speed" in args.parts:
            for pair in args.pairs:
                measure_speed(pair, args.runs)
    report(args.runs, args.out, args.pairs)


if __name__ == "__main__":
    main()
