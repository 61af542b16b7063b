"""Gymnasium environments: checked ids, seeded vector envs, and greedy episodes for evaluation.

Every vector env here resets a finished episode *in the same step* (``AutoresetMode.SAME_STEP``):
the observation a step returns is already the next episode's first one, and the last observation
of the finished episode is in ``info["final_obs"]`` (:func:`next_observations` puts it back),
so no step is wasted on a reset and a truncated episode can be bootstrapped from its true last
state.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

Vectorization = Literal["sync", "async"]
#: a policy for evaluation: a batch of observations → one action per observation
Policy = Callable[[torch.Tensor], torch.Tensor]


class EnvironmentConfigError(ValueError):
    """An environment that cannot be made; the message says what to do, in one line."""


def check_env_id(env_id: str) -> None:
    """Raise with the registered ids closest to a misspelt ``env_id``."""
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "see gymnasium.registry for the ids"
    raise EnvironmentConfigError(f"unknown gymnasium environment {env_id!r}: {hint}")


def make_env(env_id: str, render_mode: str | None = None) -> gym.Env:
    """One environment; a missing optional dependency (Box2D, pygame) names its install command."""
    check_env_id(env_id)
    try:
        return gym.make(env_id, render_mode=render_mode)
    except gym.error.DependencyNotInstalled as error:
        package = "box2d" if "box2d" in str(error).lower() else "classic-control"
        raise EnvironmentConfigError(
            f"{env_id} needs gymnasium's {package} extra: pip install 'gymnasium[{package}]' "
            "(in this project: pip install -e '.[rl]')"
        ) from None


def make_vector_env(env_id: str, num_envs: int, vectorization: Vectorization = "sync") -> VectorEnv:
    """``num_envs`` copies of ``env_id`` stepped as one batch (``async``: each in a process)."""
    if num_envs < 1:
        raise EnvironmentConfigError(f"num_envs must be at least 1 (got {num_envs})")
    if vectorization not in ("sync", "async"):
        raise EnvironmentConfigError(
            f"vectorization must be 'sync' or 'async' (got {vectorization!r})"
        )
    make_env(env_id).close()  # the clear errors, before any worker process starts
    return gym.make_vec(
        env_id,
        num_envs,
        vectorization_mode=vectorization,
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
    )


def next_observations(observations: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """The state each env reached in a step: the returned observation, or, where an episode
    ended (and the env already reset), the episode's last one."""
    if not done.any():
        return observations
    reached = observations.copy()
    for index in np.flatnonzero(done):
        reached[index] = info["final_obs"][index]
    return reached


def play_episodes(
    policy: Policy, env_id: str, episodes: int, seed: int, device: torch.device | str = "cpu"
) -> np.ndarray:
    """The return of ``episodes`` episodes played by ``policy``, all at once on a vector env
    whose env ``i`` is seeded ``seed + i`` (the same episodes for every evaluation)."""
    envs = make_vector_env(env_id, episodes)
    try:
        observations, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes)
        playing = np.ones(episodes, dtype=bool)
        while playing.any():
            with torch.inference_mode():
                batch = torch.as_tensor(observations, dtype=torch.float32, device=device)
                actions = policy(batch).cpu().numpy()
            observations, rewards, terminated, truncated, _ = envs.step(actions)
            returns += rewards * playing
            playing &= ~(terminated | truncated)
        return returns
    finally:
        envs.close()


def episode_frames(policy: Policy, env_id: str, seed: int, device: torch.device | str = "cpu"):
    """The rendered frames (``H × W × 3`` uint8 arrays) of one episode played by ``policy``."""
    env = make_env(env_id, render_mode="rgb_array")
    try:
        observation, _ = env.reset(seed=seed)
        frames, done = [env.render()], False
        while not done:
            with torch.inference_mode():
                batch = torch.as_tensor(observation, dtype=torch.float32, device=device)[None]
                action = policy(batch)[0].item()
            observation, _, terminated, truncated, _ = env.step(action)
            frames.append(env.render())
            done = terminated or truncated
        return frames
    finally:
        env.close()
