"""DQN's experience replay: a ring buffer of transitions, preallocated tensors, uniform samples."""

from __future__ import annotations

import torch

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated")


class ReplayBuffer:
    """The last ``capacity`` transitions; :meth:`sample` draws uniformly with replacement.

    Batches of transitions (one per env of a vector env) go in at once. ``next_observations``
    is the state a step reached (the episode's last one when it ended), ``terminated`` whether
    it has no future (a truncated episode's last step is not terminated: it is bootstrapped).
    """

    def __init__(self, capacity: int, observation_size: int, device: torch.device | str = "cpu"):
        if capacity < 1:
            raise ValueError(f"buffer_size must be at least 1 (got {capacity})")
        self.capacity = capacity
        self.size = 0
        self.position = 0
        self.storage = {
            "observations": torch.zeros(capacity, observation_size, device=device),
            "actions": torch.zeros(capacity, dtype=torch.long, device=device),
            "rewards": torch.zeros(capacity, device=device),
            "next_observations": torch.zeros(capacity, observation_size, device=device),
            "terminated": torch.zeros(capacity, dtype=torch.bool, device=device),
        }

    def __len__(self) -> int:
        return self.size

    def add(self, **transitions: torch.Tensor) -> None:
        """Append a batch (``observations=[n, d]``, ``actions=[n]``, …: the ``FIELDS``; other
        keywords are ignored)."""
        count = len(transitions["actions"])
        slots = (self.position + torch.arange(count)) % self.capacity
        for name in FIELDS:
            self.storage[name][slots] = transitions[name].to(self.storage[name].device)
        self.position = (self.position + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``batch_size`` stored transitions drawn uniformly (indices from ``generator``)."""
        if self.size == 0:
            raise RuntimeError("sample from an empty replay buffer")
        device = self.storage["actions"].device
        indices = torch.randint(
            self.size, (batch_size,), generator=generator, device=generator.device
        ).to(device)
        return {name: tensor[indices] for name, tensor in self.storage.items()}

    def state_dict(self) -> dict:
        """The filled part and the write position (a checkpoint resumes with the same buffer)."""
        return {
            "capacity": self.capacity,
            "position": self.position,
            "storage": {name: t[: self.size].cpu() for name, t in self.storage.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"the checkpoint's replay buffer holds {state['capacity']} transitions, the "
                f"config's {self.capacity}: resume with the buffer_size it was trained with"
            )
        self.position = state["position"]
        self.size = len(state["storage"]["actions"])
        for name, saved in state["storage"].items():
            self.storage[name][: self.size] = saved.to(self.storage[name].device)
