"""What DQN and PPO share as LightningModules: envs, the env-step clock, evaluation, checkpoints.

How the Lightning loop maps onto reinforcement learning:

- one **training step** is one iteration of the algorithm: a PPO rollout and its update epochs,
  or DQN's ``train_frequency`` vector-env steps and its ``gradient_steps`` updates;
- one **epoch** is ``env_steps_per_epoch`` env steps (rounded down to whole iterations; under
  DDP the processes share them, each on its own envs, their gradients averaged); at its
  start the envs and the action-sampling generator are re-seeded from (``seed_everything``,
  epoch, rank), so an epoch is a function of the weights, the optimizer and the replay buffer
  alone — which a checkpoint (written at epoch ends) holds: a resumed fit is exactly the
  uninterrupted one. An episode still running at an epoch's end is cut there and bootstrapped
  like a time limit;
- **validation** plays ``eval_episodes`` greedy episodes on seeded envs (the same episodes every
  time) after every epoch: ``eval/return_mean`` picks the best checkpoint; ``test`` plays
  ``test_episodes`` (100) of them;
- the budget is ``trainer.max_epochs × env_steps_per_epoch`` env steps (``time/env_steps``,
  logged with every evaluation beside ``time/train_seconds``, the training wall time without
  evaluations).
"""

from __future__ import annotations

import os
import time

import lightning as L
import numpy as np
import torch
from gymnasium.spaces import Discrete
from lightning.pytorch import Callback
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch.utils.data import DataLoader

from common.checkpoints import CheckpointError
from lab3.rl.environments import (
    EnvironmentConfigError,
    Vectorization,
    make_env,
    make_vector_env,
    next_observations,
    play_episodes,
)

#: seeds of the evaluation and test episodes: env i of an evaluation plays seed EVAL_SEED + i, of
#: a test TEST_SEED + i (other episodes than the ones that chose the best checkpoint), apart
#: from every training seed (those come from SeedSequence)
EVAL_SEED = 1_000_000
TEST_SEED = 2_000_000


class Agent(L.LightningModule):
    """Base class of the agents: a subclass writes ``training_step`` and ``greedy``.

    Args:
        env_id: a gymnasium id with discrete actions (``CartPole-v1``, ``LunarLander-v3``, …).
        num_envs: copies of the env stepped together (``gymnasium.vector``).
        vectorization: ``sync`` (one process) or ``async`` (a process per env).
        env_steps_per_epoch: env steps between two evaluations (and checkpoints).
        gamma: the discount factor.
        eval_episodes: greedy episodes of each evaluation (``eval/return_mean``).
        test_episodes: greedy episodes of ``test``.
    """

    def __init__(
        self,
        env_id: str = "CartPole-v1",
        num_envs: int = 8,
        vectorization: Vectorization = "sync",
        env_steps_per_epoch: int = 10_000,
        gamma: float = 0.99,
        eval_episodes: int = 10,
        test_episodes: int = 100,
    ) -> None:
        super().__init__()
        # the arguments of this __init__ and of the subclass's that called it (all the frames)
        self.save_hyperparameters()
        self.automatic_optimization = False  # an iteration takes many optimizer steps
        if num_envs < 1:
            raise EnvironmentConfigError(f"num_envs must be at least 1 (got {num_envs})")
        probe = make_env(env_id)
        observation_space, action_space = probe.observation_space, probe.action_space
        probe.close()
        if not isinstance(action_space, Discrete):
            raise EnvironmentConfigError(
                f"{type(self).__name__} here acts in discrete action spaces; {env_id} has "
                f"{type(action_space).__name__} actions: choose an env with Discrete actions "
                "(e.g. LunarLander-v3, not LunarLanderContinuous-v3)"
            )
        self.observation_size = int(np.prod(observation_space.shape))
        self.action_count = int(action_space.n)
        self.env_steps = 0  # on this process (× world size in logs)
        self.iterations = 0  # training steps of this process (logging cadence)
        self.finished_returns: list[float] = []  # of the episodes since the last log
        self.train_seconds = 0.0
        self.envs = None
        self.observations: torch.Tensor | None = None
        self.generator: torch.Generator | None = None
        self.plain_backward = False  # decided at fit start (gradient_step)

    # -- what a subclass defines ----------------------------------------------------------
    @property
    def vector_steps_per_iteration(self) -> int:
        raise NotImplementedError

    def greedy(self, observations: torch.Tensor) -> torch.Tensor:
        """The action the trained agent takes (evaluation, test, GIF)."""
        raise NotImplementedError

    # -- the iterations -------------------------------------------------------------------
    @property
    def iterations_per_epoch(self) -> int:
        per_iteration = self.hparams.num_envs * self.vector_steps_per_iteration
        iterations = self.hparams.env_steps_per_epoch // per_iteration
        if iterations < 1:
            raise EnvironmentConfigError(
                f"env_steps_per_epoch {self.hparams.env_steps_per_epoch} is less than one "
                f"iteration ({per_iteration} env steps): raise it"
            )
        return iterations

    def train_dataloader(self) -> DataLoader:
        return DataLoader(range(self.iterations_per_epoch), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader([self.hparams.eval_episodes], batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader([self.hparams.test_episodes], batch_size=None)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.envs is None:
            self.envs = make_vector_env(
                self.hparams.env_id, self.hparams.num_envs, self.hparams.vectorization
            )

    def teardown(self, stage: str) -> None:
        if self.envs is not None:
            self.envs.close()
            self.envs = None

    def on_train_epoch_start(self) -> None:
        seed = int(
            np.random.SeedSequence(
                [_global_seed(), self.global_rank, self.current_epoch]
            ).generate_state(1)[0]
        )
        observations, _ = self.envs.reset(seed=seed)
        self.observations = self._tensor(observations)
        self.episode_returns = torch.zeros(self.hparams.num_envs, device=self.device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self._clock = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        self.train_seconds += now - self._clock  # evaluations (after the last batch) excluded
        self._clock = now

    def step_envs(self, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """One step of every env: the transition tensors (``next_observations`` is the state
        reached, the finished episode's last one where an episode ended)."""
        observations, rewards, terminated, truncated, info = self.envs.step(actions.cpu().numpy())
        done = terminated | truncated
        transition = {
            "observations": self.observations,
            "actions": actions,
            "rewards": self._tensor(rewards),
            "next_observations": self._tensor(next_observations(observations, done, info)),
            "terminated": torch.as_tensor(terminated, device=self.device),
            "done": torch.as_tensor(done, device=self.device),
        }
        self.observations = self._tensor(observations)
        self.env_steps += self.hparams.num_envs
        self.episode_returns += transition["rewards"]
        if done.any():
            finished = transition["done"]
            self.finished_returns.extend(self.episode_returns[finished].tolist())
            self.episode_returns[finished] = 0.0
        return transition

    def log_iteration(self, metrics: dict[str, torch.Tensor | float]) -> None:
        """Every ``trainer.log_every_n_steps`` iterations: the iteration's metrics, the mean
        return of the episodes finished since the last log, and the env-step clock — straight
        to the loggers, since ``self.log`` costs about a millisecond per value (its
        ``torch.compiler`` guard), as much as a whole PPO update on CartPole."""
        self.iterations += 1
        if self.iterations % self.trainer.log_every_n_steps:
            return
        values = {key: float(value) for key, value in metrics.items()}
        if self.finished_returns:
            values["train/episode_return"] = float(np.mean(self.finished_returns))
            self.finished_returns.clear()
        values["time/env_steps"] = float(self.env_steps * self.trainer.world_size)
        for logger in self.loggers:
            logger.log_metrics(values, step=self.global_step)

    def on_fit_start(self) -> None:
        trainer = self.trainer
        listeners = [self, *trainer.callbacks]
        self.plain_backward = (
            isinstance(trainer.strategy, SingleDeviceStrategy)
            and getattr(trainer.precision_plugin, "scaler", None) is None
            and not any(
                is_overridden(hook, listener, L.LightningModule if listener is self else Callback)
                for listener in listeners
                for hook in ("on_before_backward", "on_after_backward")
            )
        )

    def gradient_step(
        self, optimizer: LightningOptimizer, loss: torch.Tensor, max_grad_norm: float | None
    ) -> None:
        """One optimizer step on ``loss``, gradients clipped to ``max_grad_norm``.

        Lightning's ``manual_backward`` runs every callback's backward hooks and, under DDP,
        prepares the gradient reducer; on one device, with no gradient scaler (16-bit mixed
        precision) and nothing listening to those hooks, a plain backward is the same
        computation, without the ~0.2 ms of hooks that cost DQN's small steps 15 % of their
        speed (benchmarks/lab3_rl.py; a test checks both paths give the same agent)."""
        optimizer.zero_grad()
        if self.plain_backward:
            loss.backward()
            if max_grad_norm is not None:
                parameters = [p for group in optimizer.param_groups for p in group["params"]]
                torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
        else:
            self.manual_backward(loss)
            if max_grad_norm is not None:
                self.clip_gradients(optimizer, max_grad_norm, "norm")
        optimizer.step()  # Lightning's: it counts the step (global_step, checkpoints)

    def check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{type(self).__name__}'s loss is {loss.item()} at env step {self.env_steps}: "
                "lower the learning rate (checkpoints of finished epochs are kept; resume with "
                "--ckpt_path last)"
            )

    # -- evaluation -----------------------------------------------------------------------
    def _play(self, episodes: int, prefix: str, seed: int) -> None:
        self.eval()
        returns = play_episodes(self.greedy, self.hparams.env_id, episodes, seed, self.device)
        self.log_dict(
            {
                f"{prefix}/return_mean": float(returns.mean()),
                f"{prefix}/return_std": float(returns.std()),
                "time/env_steps": float(self.env_steps * self.trainer.world_size),
                "time/train_seconds": self.train_seconds,
            },
            sync_dist=True,
            batch_size=1,
        )

    def validation_step(self, episodes: int, batch_idx: int) -> None:
        self._play(episodes, "eval", EVAL_SEED)

    def test_step(self, episodes: int, batch_idx: int) -> None:
        self._play(episodes, "test", TEST_SEED)

    # -- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["agent"] = {
            "algorithm": type(self).__name__,
            "env_id": self.hparams.env_id,
            "env_steps": self.env_steps,
            "train_seconds": self.train_seconds,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("agent")
        name = type(self).__name__
        if saved is None:
            raise CheckpointError(
                f"the checkpoint is not of a Lab 3 agent (no agent state): pass a {name} "
                "checkpoint written by `python -m lab3 fit`"
            )
        if saved["algorithm"] != name or saved["env_id"] != self.hparams.env_id:
            raise CheckpointError(
                f"the checkpoint is of {saved['algorithm']} on {saved['env_id']}, the config "
                f"of {name} on {self.hparams.env_id}: pass a checkpoint of this config's run"
            )
        self.env_steps = saved["env_steps"]
        self.train_seconds = saved["train_seconds"]

    def adam(self, parameters, **kwargs) -> torch.optim.Adam:
        """Adam, fused (one kernel for all tensors: a third of a tiny network's step time on a
        CPU) where Lightning can clip its gradients: not under mixed precision."""
        fused = "mixed" not in str(self.trainer.precision)
        return torch.optim.Adam(parameters, lr=self.hparams.learning_rate, fused=fused, **kwargs)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=torch.float32, device=self.device)


def _global_seed() -> int:
    """``seed_everything``'s seed (Lightning keeps it in this variable), 0 without one."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))
