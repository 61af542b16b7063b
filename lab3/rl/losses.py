"""The course's own RL algorithms' arithmetic: GAE(λ), PPO's clipped losses, DQN's targets.

Written by hand (they are what Lab 3 teaches) and tested against hand-computed examples
(tests/test_lab3_rl.py). Time-major tensors: ``[steps, envs]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def generalized_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """GAE(λ) of a rollout (Schulman et al. 2016).

    ``next_values[t]`` is the value of the state step ``t`` reached — for a step that ended an
    episode, the episode's last state, not the next episode's first. A *terminated* step has no
    future (its next value counts 0); a *truncated* one (time limit, end of a rollout block) is
    bootstrapped from its next value; either way (``done``) the recursion does not carry the
    next episode's advantages back.
    """
    not_terminated = 1.0 - terminated.float()
    continues = 1.0 - done.float()
    deltas = rewards + gamma * next_values * not_terminated - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for step in reversed(range(rewards.shape[0])):
        running = deltas[step] + gamma * lam * continues[step] * running
        advantages[step] = running
    return advantages


def ppo_losses(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    clip: float,
    value_clip: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate policy loss and its (optionally clipped) value loss.

    Policy: ``-mean(min(r·A, clip(r, 1-ε, 1+ε)·A))`` with ``r = π/π_old``. Value:
    ``½·mean(max((V-R)², (V_old + clip(V-V_old, ±ε_v) - R)²))``, or ``½·mean((V-R)²)`` unclipped.
    """
    ratio = torch.exp(log_probs - old_log_probs)
    policy_loss = -torch.min(
        ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages
    ).mean()
    squared_error = (values - returns) ** 2
    if value_clip is not None:
        clipped = old_values + (values - old_values).clamp(-value_clip, value_clip)
        squared_error = torch.max(squared_error, (clipped - returns) ** 2)
    return policy_loss, 0.5 * squared_error.mean()


@torch.no_grad()
def dqn_targets(
    rewards: torch.Tensor,
    next_observations: torch.Tensor,
    terminated: torch.Tensor,
    target_network: nn.Module,
    gamma: float,
    online_network: nn.Module | None = None,
) -> torch.Tensor:
    """``r + γ·(1-terminated)·Q_target(s', a')``: ``a' = argmax Q_target(s')`` (DQN), or
    ``argmax Q_online(s')`` when ``online_network`` is given (Double DQN, van Hasselt 2016)."""
    next_q = target_network(next_observations)
    chooser = next_q if online_network is None else online_network(next_observations)
    best = chooser.argmax(dim=-1, keepdim=True)
    return rewards + gamma * (1.0 - terminated.float()) * next_q.gather(-1, best).squeeze(-1)


def td_loss(predicted: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """``huber`` (smooth L1, δ=1, as in the DQN paper's clipped error) or ``mse``."""
    if loss == "huber":
        return F.smooth_l1_loss(predicted, targets)
    return F.mse_loss(predicted, targets)
