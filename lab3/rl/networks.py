"""The networks of Lab 3's agents: plain MLPs, a Q-network and an actor-critic."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for index, (inputs, outputs) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(inputs, outputs))
        if index < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class QNetwork(nn.Module):
    """Observation → one value per action (DQN)."""

    def __init__(self, observation_size: int, actions: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.layers = mlp([observation_size, *hidden, actions])

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.layers(observations)

    def greedy(self, observations: torch.Tensor) -> torch.Tensor:
        return self(observations).argmax(dim=-1)


class ActorCritic(nn.Module):
    """A categorical policy and a state-value function as two separate tanh MLPs (PPO).

    Orthogonal initialisation as in the PPO implementations that reproduce the paper (Huang et
    al., *The 37 implementation details of PPO*): gain √2 for hidden layers, 0.01 for the policy's
    output (near-uniform first actions) and 1 for the value's.
    """

    def __init__(self, observation_size: int, actions: int, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        self.actor = mlp([observation_size, *hidden, actions], nn.Tanh)
        self.critic = mlp([observation_size, *hidden, 1], nn.Tanh)
        for network, output_gain in ((self.actor, 0.01), (self.critic, 1.0)):
            linears = [m for m in network if isinstance(m, nn.Linear)]
            for layer in linears:
                gain = output_gain if layer is linears[-1] else math.sqrt(2)
                nn.init.orthogonal_(layer.weight, gain)
                nn.init.zeros_(layer.bias)

    def log_policy(self, observations: torch.Tensor) -> torch.Tensor:
        """``log π(·|s)`` for every action (no ``torch.distributions``: its checks cost more
        than these tiny networks)."""
        return self.actor(observations).log_softmax(dim=-1)

    def value(self, observations: torch.Tensor) -> torch.Tensor:
        return self.critic(observations).squeeze(-1)

    def greedy(self, observations: torch.Tensor) -> torch.Tensor:
        return self.actor(observations).argmax(dim=-1)
