"""Deep Q-learning (Mnih et al. 2015) as a LightningModule; Double DQN (van Hasselt 2016) too."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import torch

from lab3.rl.agent import Agent
from lab3.rl.losses import dqn_targets, td_loss
from lab3.rl.networks import QNetwork
from lab3.rl.replay import ReplayBuffer


class DQN(Agent):
    """ε-greedy acting into a replay buffer; TD updates of a Q-network against a target network.

    One training step: ``train_frequency`` steps of the vector env (``num_envs`` transitions
    each), then — once ``learning_starts`` env steps are stored — ``gradient_steps`` updates
    on minibatches drawn uniformly from the buffer. The target network follows the online one
    every ``target_update_interval`` updates: a copy (``tau`` 1, hard) or ``tau``-Polyak.
    ε falls linearly from ``exploration_initial`` to ``exploration_final`` over
    ``exploration_steps`` env steps. Other arguments: :class:`lab3.rl.agent.Agent`.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (256, 256),
        learning_rate: float = 1e-3,
        buffer_size: int = 100_000,
        batch_size: int = 64,
        learning_starts: int = 1_000,
        train_frequency: int = 4,
        gradient_steps: int = 1,
        target_update_interval: int = 250,
        tau: float = 1.0,
        double_dqn: bool = True,
        loss: Literal["huber", "mse"] = "huber",
        max_grad_norm: float | None = 10.0,
        exploration_initial: float = 1.0,
        exploration_final: float = 0.05,
        exploration_steps: int = 10_000,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)  # saves this class's arguments too
        if not 0 < tau <= 1:
            raise ValueError(f"tau must be in (0, 1] (1: hard target updates; got {tau})")
        self.q_network = QNetwork(self.observation_size, self.action_count, hidden)
        self.target_network = copy.deepcopy(self.q_network).requires_grad_(False)
        self.buffer = ReplayBuffer(buffer_size, self.observation_size)

    @property
    def vector_steps_per_iteration(self) -> int:
        return self.hparams.train_frequency

    def greedy(self, observations: torch.Tensor) -> torch.Tensor:
        return self.q_network.greedy(observations)

    def epsilon(self) -> float:
        h = self.hparams
        progress = min(1.0, self.env_steps / max(1, h.exploration_steps))
        return h.exploration_initial + progress * (h.exploration_final - h.exploration_initial)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.adam(self.q_network.parameters())

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.buffer.storage["actions"].device != self.device:  # once on the module's device
            state = self.buffer.state_dict()
            self.buffer = ReplayBuffer(self.buffer.capacity, self.observation_size, self.device)
            self.buffer.load_state_dict(state)

    def act(self, observations: torch.Tensor) -> torch.Tensor:
        """ε-greedy actions, the coins and random actions drawn from the agent's generator."""
        with torch.no_grad():
            actions = self.q_network.greedy(observations)
        count = len(observations)
        explore = torch.rand(count, generator=self.generator, device=self.device) < self.epsilon()
        random = torch.randint(
            self.action_count, (count,), generator=self.generator, device=self.device
        )
        return torch.where(explore, random, actions)

    def training_step(self, batch: int, batch_idx: int) -> None:
        h = self.hparams
        for _ in range(h.train_frequency):
            self.buffer.add(**self.step_envs(self.act(self.observations)))
        metrics: dict[str, torch.Tensor | float] = {"train/epsilon": self.epsilon()}
        if self.env_steps >= h.learning_starts:
            optimizer = self.optimizers()
            for _ in range(h.gradient_steps):
                sample = self.buffer.sample(h.batch_size, self.generator)
                targets = dqn_targets(
                    sample["rewards"],
                    sample["next_observations"],
                    sample["terminated"],
                    self.target_network,
                    h.gamma,
                    self.q_network if h.double_dqn else None,
                )
                q_values = self.q_network(sample["observations"])
                predicted = q_values.gather(1, sample["actions"][:, None]).squeeze(1)
                loss = td_loss(predicted, targets, h.loss)
                self.gradient_step(optimizer, loss, h.max_grad_norm)
                if self.global_step % h.target_update_interval == 0:  # optimizer steps so far
                    self.update_target()
            self.check_finite(loss.detach())
            metrics.update({"train/loss": loss.detach(), "train/q": predicted.detach().mean()})
        self.log_iteration(metrics)

    @torch.no_grad()
    def update_target(self) -> None:
        """``θ⁻ ← τ·θ + (1-τ)·θ⁻`` (τ = 1: a copy)."""
        for target, online in zip(
            self.target_network.parameters(), self.q_network.parameters(), strict=True
        ):
            target.lerp_(online, self.hparams.tau)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["agent"]["replay"] = self.buffer.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.buffer.load_state_dict(checkpoint["agent"]["replay"])
