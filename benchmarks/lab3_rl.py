"""Lab 3 (RL): this project's DQN and PPO against Stable-Baselines3 with the RL Zoo's settings.

    pip install -e '.[rl-benchmark]'      # stable-baselines3: this script's alone
    python benchmarks/lab3_rl.py --jobs 2 # every pair x seeds 0 1 2, then the report
    python benchmarks/lab3_rl.py --report # the tables and figures again, from the saved runs

Parts, each run saved as JSON under ``--runs`` (a finished run is not run again):

- ``ours``: ``python -m lab3 fit``, then ``test --ckpt_path best``, with
  ``configs/lab3/rl/<pair>.yaml`` and ``--seed_everything <seed>``: the eval curve
  (``eval/return_mean`` against env steps and training seconds) and the 100-episode test of the
  best checkpoint;
- ``sb3``: Stable-Baselines3 with the RL Zoo's hyperparameters for that algorithm and env
  (``ZOO``, from rl-baselines3-zoo's hyperparams/{dqn,ppo}.yml), evaluated exactly as ours (the
  same ``play_episodes``: the same seeded episodes, greedy actions, every ``env_steps_per_epoch``
  of our config); it stops at the first evaluation that reaches the goal (to save CPU time) or at
  the Zoo's budget, and its test plays 100 episodes with the policy it stopped with;
- ``speed``: env steps per second of our ``fit`` (a Trainer with its progress bar, evaluations
  off) against a bare PyTorch loop of the same algorithm, hyperparameters and building blocks
  (``bare_dqn``, ``bare_ppo``), over the same env steps, the best of 5 alternating runs each.

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

import lightning as L
import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.run_logs import fit_sessions, last_in, newest_rows, read_csv  # noqa: E402
from lab3.rl.agent import EVAL_SEED, TEST_SEED  # noqa: E402
from lab3.rl.environments import play_episodes  # noqa: E402

GOALS = {"CartPole-v1": 475.0, "LunarLander-v3": 200.0}
PAIRS = ("dqn_cartpole", "ppo_cartpole", "ppo_lunarlander", "dqn_lunarlander")
TEST_EPISODES = 100
#: the pairs whose runs take longest (started first, so that parallel jobs end together)
LONGEST = ("ppo_lunarlander", "dqn_lunarlander")


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
    seconds = time.perf_counter() - started
    subprocess.run([*python, "test", *common, "--ckpt_path", "best"], cwd=REPO, env=env, check=True)
    evaluations = [
        row
        for session in fit_sessions(run_dir)
        for row in read_csv(session / "metrics.csv")
        if row.get("eval/return_mean")
    ]
    curve = [
        {"env_steps": int(float(row["time/env_steps"])),
         "seconds": float(row["time/train_seconds"]),
         "return_mean": float(row["eval/return_mean"])}
        for row in evaluations
    ]  # fmt: skip
    test = newest_rows(run_dir, "test/return_mean")
    return {
        "curve": curve,
        "test_mean": last_in(test, "test/return_mean"),
        "test_std": last_in(test, "test/return_std"),
        "fit_seconds": seconds,
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
    returns = play_episodes(greedy, env_id, TEST_EPISODES, TEST_SEED)
    return {"curve": evaluate.curve, "test_mean": float(returns.mean()),
            "test_std": float(returns.std()), "budget": budget}  # fmt: skip


# -- speed: Lightning fit against a bare loop -------------------------------------------------
#: epochs of each config timed by ``measure_speed`` (a few seconds to a minute each)
SPEED_EPOCHS = {"dqn_cartpole": 4, "ppo_cartpole": 5, "ppo_lunarlander": 2, "dqn_lunarlander": 2}


def build_agent(pair: str, seed: int):
    import lightning as L

    from lab3.rl.dqn import DQN
    from lab3.rl.ppo import PPO

    L.seed_everything(seed, verbose=False)
    init_args = config_of(pair)["model"]["init_args"]
    return (PPO if pair.startswith("ppo") else DQN)(**init_args)


class Stopwatch(L.Callback):
    """The seconds from the first training step to the end of the last: what the bare loops
    time (their envs are made before their clock starts, as ``setup`` makes the agent's)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.started


def lightning_fit(pair: str, seed: int = 0) -> tuple[int, float]:
    """Env steps and seconds of ``trainer.fit`` (progress bar on, evaluations off)."""
    from common.trainer import LabTrainer

    agent, stopwatch = build_agent(pair, seed), Stopwatch()
    trainer = LabTrainer(
        max_epochs=SPEED_EPOCHS[pair], accelerator="cpu", devices=1, threads=1, logger=False,
        precision=config_of(pair)["trainer"]["precision"], callbacks=[stopwatch],
        enable_checkpointing=False, limit_val_batches=0, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(agent)
    return agent.env_steps, stopwatch.seconds


def bare_ppo(agent, env_steps: int) -> float:
    """PPO written as a plain loop over the agent's network, envs and loss functions."""
    from lab3.rl.environments import make_vector_env, next_observations
    from lab3.rl.losses import generalized_advantages, ppo_losses
    from lab3.rl.ppo import MINIBATCH_KEYS

    h, network = agent.hparams, agent.network
    envs = make_vector_env(h.env_id, h.num_envs)
    optimizer = torch.optim.Adam(network.parameters(), lr=h.learning_rate, eps=1e-5, fused=True)
    generator = torch.Generator().manual_seed(0)
    started, done_steps = time.perf_counter(), 0
    observations = torch.as_tensor(envs.reset(seed=0)[0])
    while done_steps < env_steps:
        for group in optimizer.param_groups:
            group["lr"] = h.learning_rate * (1.0 - done_steps / env_steps)
        keys = ("observations", "actions", "log_probs", "values", "rewards", "next", "terminated",
                "done")  # fmt: skip
        rollout: dict[str, list] = {key: [] for key in keys}
        with torch.no_grad():
            for _ in range(h.rollout_steps):
                log_policy = network.log_policy(observations)
                actions = torch.multinomial(log_policy.exp(), 1, generator=generator)
                new, rewards, terminated, truncated, info = envs.step(actions.squeeze(1).numpy())
                done = terminated | truncated
                step = (observations, actions.squeeze(1), log_policy.gather(1, actions).squeeze(1),
                        network.value(observations), torch.as_tensor(rewards, dtype=torch.float32),
                        torch.as_tensor(next_observations(new, done, info)),
                        torch.as_tensor(terminated), torch.as_tensor(done))  # fmt: skip
                for key, value in zip(keys, step, strict=True):
                    rollout[key].append(value)
                observations = torch.as_tensor(new)
            batch = {key: torch.stack(values) for key, values in rollout.items()}
            advantages = generalized_advantages(
                batch["rewards"], batch["values"], network.value(batch["next"]),
                batch["terminated"], batch["done"], h.gamma, h.gae_lambda,
            )  # fmt: skip
            batch["advantages"], batch["returns"] = advantages, advantages + batch["values"]
        flat = {key: batch[key].flatten(0, 1) for key in MINIBATCH_KEYS}
        for _ in range(h.update_epochs):
            for indices in torch.randperm(len(flat["actions"]), generator=generator).split(
                h.minibatch_size
            ):
                mb = {key: value[indices] for key, value in flat.items()}
                log_policy = network.log_policy(mb["observations"])
                log_probs = log_policy.gather(1, mb["actions"][:, None]).squeeze(1)
                adv = (mb["advantages"] - mb["advantages"].mean()) / (mb["advantages"].std() + 1e-8)
                policy_loss, value_loss = ppo_losses(
                    log_probs, mb["log_probs"], adv, network.value(mb["observations"]),
                    mb["values"], mb["returns"], h.clip, h.value_clip,
                )  # fmt: skip
                entropy = -(log_policy.exp() * log_policy).sum(-1).mean()
                loss = policy_loss + h.value_coef * value_loss - h.entropy_coef * entropy
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(network.parameters(), h.max_grad_norm)
                optimizer.step()
        done_steps += h.rollout_steps * h.num_envs
    envs.close()
    return time.perf_counter() - started


def bare_dqn(agent, env_steps: int) -> float:
    """DQN written as a plain loop over the agent's networks, buffer, envs and loss functions."""
    from lab3.rl.environments import make_vector_env, next_observations
    from lab3.rl.losses import dqn_targets, td_loss

    h, online, target = agent.hparams, agent.q_network, agent.target_network
    envs = make_vector_env(h.env_id, h.num_envs)
    optimizer = torch.optim.Adam(online.parameters(), lr=h.learning_rate, fused=True)
    generator = torch.Generator().manual_seed(0)
    buffer, updates, done_steps = agent.buffer, 0, 0
    started = time.perf_counter()
    observations = torch.as_tensor(envs.reset(seed=0)[0])
    while done_steps < env_steps:
        for _ in range(h.train_frequency):
            progress = min(1.0, done_steps / h.exploration_steps)
            epsilon = h.exploration_initial + progress * (
                h.exploration_final - h.exploration_initial
            )
            with torch.no_grad():
                greedy = online(observations).argmax(-1)
            explore = torch.rand(h.num_envs, generator=generator) < epsilon
            random = torch.randint(agent.action_count, (h.num_envs,), generator=generator)
            actions = torch.where(explore, random, greedy)
            new, rewards, terminated, truncated, info = envs.step(actions.numpy())
            buffer.add(observations=observations, actions=actions,
                       rewards=torch.as_tensor(rewards, dtype=torch.float32),
                       next_observations=torch.as_tensor(
                           next_observations(new, terminated | truncated, info)),
                       terminated=torch.as_tensor(terminated))  # fmt: skip
            observations = torch.as_tensor(new)
            done_steps += h.num_envs
        if done_steps < h.learning_starts:
            continue
        for _ in range(h.gradient_steps):
            sample = buffer.sample(h.batch_size, generator)
            targets = dqn_targets(sample["rewards"], sample["next_observations"],
                                  sample["terminated"], target, h.gamma,
                                  online if h.double_dqn else None)  # fmt: skip
            predicted = online(sample["observations"]).gather(1, sample["actions"][:, None])
            loss = td_loss(predicted.squeeze(1), targets, h.loss)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(online.parameters(), h.max_grad_norm)
            optimizer.step()
            updates += 1
            if updates % h.target_update_interval == 0:
                with torch.no_grad():
                    for t, o in zip(target.parameters(), online.parameters(), strict=True):
                        t.lerp_(o, h.tau)
    envs.close()
    return time.perf_counter() - started


def measure_speed(pair: str, runs: Path, repeats: int = 5) -> dict:
    """Env steps/s of ``fit`` and of the bare loop, alternating, on one thread: the best of
    ``repeats`` runs of each (a run slowed by another job on the machine says nothing of the
    code; the fastest one is the least disturbed)."""
    torch.set_num_threads(1)
    fit_rates, bare_rates = [], []
    for _ in range(repeats):
        steps, seconds = lightning_fit(pair)
        fit_rates.append(steps / seconds)
        agent = build_agent(pair, 0)
        bare = bare_ppo if pair.startswith("ppo") else bare_dqn
        bare_rates.append(steps / bare(agent, steps))
    record = {"pair": pair, "env_steps": steps, "fit": max(fit_rates), "bare": max(bare_rates),
              "fit_all": fit_rates, "bare_all": bare_rates, "cpu": cpu_description()}  # fmt: skip
    record["ratio"] = record["fit"] / record["bare"]
    path = runs / "speed" / f"{pair}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    print(f"{pair}: fit {record['fit']:.0f} env steps/s, bare {record['bare']:.0f}, "
          f"ratio {record['ratio']:.3f}", flush=True)  # fmt: skip
    return record


# -- report ----------------------------------------------------------------------------------
def load_runs(runs: Path, part: str, pair: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((runs / part).glob(f"{pair}_seed*.json"))]


def summary_row(name: str, records: list[dict], goal: float) -> str:
    """``| name | solved | env steps to solve | seconds to solve | test return | env steps/s |``"""
    solves = [first_solve(r["curve"], goal) for r in records]
    solved = [s for s in solves if s is not None]
    tests = [r["test_mean"] for r in records]
    rates = [r["curve"][-1]["env_steps"] / r["curve"][-1]["seconds"] for r in records]

    def mean_std(values: list[float], digits: int = 0) -> str:
        return f"{np.mean(values):,.{digits}f} ± {np.std(values):,.{digits}f}" if values else "–"

    per_seed = ", ".join(f"{s['env_steps']:,}" if s else "not solved" for s in solves)
    return (
        f"| {name} | {len(solved)}/{len(records)} | {mean_std([s['env_steps'] for s in solved])} "
        f"({per_seed}) | {mean_std([s['seconds'] for s in solved], 1)} | "
        f"{mean_std(tests, 1)} ({', '.join(f'{t:.1f}' for t in tests)}) | "
        f"{mean_std(rates)} |"
    )


def plot_pair(pair: str, ours: list[dict], sb3: list[dict], goal: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    length = min(len(r["curve"]) for r in ours)
    returns = np.array([[p["return_mean"] for p in r["curve"][:length]] for r in ours])
    steps = np.array([p["env_steps"] for p in ours[0]["curve"][:length]])
    seconds = np.array([[p["seconds"] for p in r["curve"][:length]] for r in ours]).mean(0)
    mean, std = returns.mean(0), returns.std(0)
    for axis, x, label in ((axes[0], steps, "env steps"), (axes[1], seconds, "training seconds")):
        axis.plot(x, mean, color="C0", label=f"dla-labs (mean ± std, {len(ours)} seeds)")
        axis.fill_between(x, mean - std, mean + std, color="C0", alpha=0.25)
        for index, record in enumerate(sb3):
            key = "env_steps" if label == "env steps" else "seconds"
            curve = record["curve"]
            axis.plot([p[key] for p in curve], [p["return_mean"] for p in curve],
                      color="C1", alpha=0.7, lw=1,
                      label="Stable-Baselines3, RL Zoo (each seed; stops when solved)"
                      if index == 0 else None)  # fmt: skip
        axis.axhline(goal, color="grey", ls="--", lw=1)
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("evaluation return (greedy)")
    axes[0].legend(loc="lower right", fontsize=8)
    figure.suptitle(f"{pair}: {ours[0]['cpu']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def report(runs: Path, out: Path, pairs: list[str]) -> None:
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Lab 3 (RL): dla-labs against Stable-Baselines3", "",
        "Made by `python benchmarks/lab3_rl.py` (see its docstring for the protocol).", "",
    ]  # fmt: skip
    for pair in pairs:
        ours, sb3 = load_runs(runs, "ours", pair), load_runs(runs, "sb3", pair)
        if not ours:
            continue
        env_id = config_of(pair)["model"]["init_args"]["env_id"]
        goal = GOALS[env_id]
        lines += [
            f"## {pair} ({env_id}, goal {goal:.0f})", "", f"CPU: {ours[0]['cpu']}", "",
            "| run | solved | env steps to solve (per seed) | training s to solve | test return "
            "(100 episodes; per seed) | env steps/s |", "|---|---|---|---|---|---|",
            summary_row(f"dla-labs `configs/lab3/rl/{pair}.yaml`", ours, goal),
        ]  # fmt: skip
        if sb3:
            lines.append(summary_row("Stable-Baselines3, RL Zoo", sb3, goal))
        plot_pair(pair, ours, sb3, goal, out / f"{pair}.png")
        lines += ["", f"![{pair}]({pair}.png)", ""]
        if ours[0].get("gif"):
            shutil.copy(ours[0]["gif"], out / f"{pair}.gif")
            lines += [f"![one test episode]({pair}.gif)", ""]
        speed = runs / "speed" / f"{pair}.json"
        if speed.exists():
            record = json.loads(speed.read_text())
            lines += [
                f"Speed ({record['env_steps']:,} env steps, evaluations off, best of "
                f"{len(record['fit_all'])}): "
                f"`fit` {record['fit']:,.0f} env steps/s, bare PyTorch loop "
                f"{record['bare']:,.0f}: ratio **{record['ratio']:.3f}** ({record['cpu']}).", ""
            ]  # fmt: skip
    (out / "README.md").write_text("\n".join(lines))
    print(f"report: {out / 'README.md'}")


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
        jobs.sort(key=lambda job: (job[1] not in LONGEST, job[0] != "sb3"))  # the longest first
        with ProcessPoolExecutor(args.jobs) as pool:
            for path in pool.map(run_one, *zip(*jobs, strict=True), [args.runs] * len(jobs)):
                print("done:", path, flush=True)
        if "speed" in args.parts:
            for pair in args.pairs:
                measure_speed(pair, args.runs)
    report(args.runs, args.out, args.pairs)


if __name__ == "__main__":
    main()
