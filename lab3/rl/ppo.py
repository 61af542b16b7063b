"""Proximal Policy Optimization (Schulman et al. 2017), clipped, as a LightningModule."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lab3.rl.agent import Agent
from lab3.rl.losses import generalized_advantages, ppo_losses
from lab3.rl.networks import ActorCritic

#: what the updates read of a rollout (its other tensors served the advantages)
MINIBATCH_KEYS = ("observations", "actions", "log_probs", "values", "advantages", "returns")


class PPO(Agent):
    """Rollouts of ``rollout_steps`` steps of every env, then ``update_epochs`` passes of
    minibatches over them.

    Advantages by GAE(``gae_lambda``), normalised per minibatch; the clipped surrogate and value
    losses (``clip``, ``value_clip``; ``None``: the value loss unclipped), an entropy bonus;
    the learning rate falls linearly to 0 over the fit's env-step budget
    (``trainer.max_epochs × env_steps_per_epoch``) when ``anneal_lr``. One training step is one
    rollout and its update. Other arguments: :class:`lab3.rl.agent.Agent`.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (64, 64),
        learning_rate: float = 3e-4,
        anneal_lr: bool = True,
        rollout_steps: int = 128,
        gae_lambda: float = 0.95,
        update_epochs: int = 4,
        minibatch_size: int = 256,
        clip: float = 0.2,
        value_clip: float | None = 0.2,
        value_coef: float = 0.5,
        entropy_coef: float = 0.01,
        normalize_advantages: bool = True,
        max_grad_norm: float = 0.5,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)  # saves this class's arguments too
        self.network = ActorCritic(self.observation_size, self.action_count, hidden)

    @property
    def vector_steps_per_iteration(self) -> int:
        return self.hparams.rollout_steps

    def greedy(self, observations: torch.Tensor) -> torch.Tensor:
        return self.network.greedy(observations)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.adam(self.network.parameters(), eps=1e-5)

    @torch.no_grad()
    def collect_rollout(self) -> dict[str, torch.Tensor]:
        """``rollout_steps`` steps of every env with actions sampled from the policy:
        time-major tensors ``[steps, envs, ...]``, with advantages and returns."""
        h = self.hparams
        steps: list[dict[str, torch.Tensor]] = []
        for _ in range(h.rollout_steps):
            observations = self.observations
            log_policy = self.network.log_policy(observations)
            actions = torch.multinomial(log_policy.exp(), 1, generator=self.generator)
            transition = self.step_envs(actions.squeeze(1))
            transition["log_probs"] = log_policy.gather(1, actions).squeeze(1)
            transition["values"] = self.network.value(observations)
            steps.append(transition)
        rollout = {key: torch.stack([s[key] for s in steps]) for key in steps[0]}
        next_values = self.network.value(rollout["next_observations"])
        rollout["advantages"] = generalized_advantages(
            rollout["rewards"],
            rollout["values"],
            next_values,
            rollout["terminated"],
            rollout["done"],
            h.gamma,
            h.gae_lambda,
        )
        rollout["returns"] = rollout["advantages"] + rollout["values"]
        return rollout

    def training_step(self, batch: int, batch_idx: int) -> None:
        h = self.hparams
        optimizer = self.optimizers()
        if h.anneal_lr:
            for group in optimizer.param_groups:
                group["lr"] = h.learning_rate * (1.0 - self.env_steps / self.budget())
        rollout = self.collect_rollout()
        flat = {key: rollout[key].flatten(0, 1) for key in MINIBATCH_KEYS}
        size = len(flat["actions"])
        clip_fractions = []
        for _ in range(h.update_epochs):
            order = torch.randperm(size, generator=self.generator, device=self.device)
            for indices in order.split(h.minibatch_size):
                minibatch = {key: value[indices] for key, value in flat.items()}
                log_policy = self.network.log_policy(minibatch["observations"])
                log_probs = log_policy.gather(1, minibatch["actions"][:, None]).squeeze(1)
                advantages = minibatch["advantages"]
                if h.normalize_advantages and len(indices) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                policy_loss, value_loss = ppo_losses(
                    log_probs,
                    minibatch["log_probs"],
                    advantages,
                    self.network.value(minibatch["observations"]),
                    minibatch["values"],
                    minibatch["returns"],
                    h.clip,
                    h.value_clip,
                )
                entropy = -(log_policy.exp() * log_policy).sum(dim=-1).mean()
                loss = policy_loss + h.value_coef * value_loss - h.entropy_coef * entropy
                self.gradient_step(optimizer, loss, h.max_grad_norm)
                with torch.no_grad():
                    ratio_change = (log_probs - minibatch["log_probs"]).exp().sub(1).abs()
                    clip_fractions.append((ratio_change > h.clip).float().mean())
        self.check_finite(loss.detach())
        self.log_iteration(
            {
                "train/policy_loss": policy_loss.detach(),
                "train/value_loss": value_loss.detach(),
                "train/entropy": entropy.detach(),
                "train/clip_fraction": torch.stack(clip_fractions).mean(),
                "train/lr": optimizer.param_groups[0]["lr"],
            }
        )

    def budget(self) -> int:
        """The fit's env steps on this process: ``max_epochs`` epochs of this process's
        iterations (under DDP each process plays its share of an epoch's)."""
        max_epochs = self.trainer.max_epochs
        if max_epochs is None or max_epochs < 1:
            raise ValueError("anneal_lr needs trainer.max_epochs (the env-step budget)")
        iterations = self.trainer.num_training_batches
        return max_epochs * iterations * self.hparams.num_envs * self.hparams.rollout_steps
