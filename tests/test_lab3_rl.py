"""Lab 3's RL edition: the algorithms' arithmetic against direct computations, the replay
buffer, exact resume and determinism of ``fit``, every RL config smoke-run, and the errors."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from common.cli import main
from lab3.rl.losses import dqn_targets, generalized_advantages, ppo_losses
from lab3.rl.replay import ReplayBuffer
from tests.conftest import REPO

RL_CONFIGS = sorted((REPO / "configs/lab3/rl").glob("*.yaml"))
#: a fit of a few hundred env steps: two epochs of 128 (CartPole)
TINY = [
    "--trainer.max_epochs=2",
    "--trainer.enable_progress_bar=false",
    "--trainer.logger=false",
    "--model.init_args.env_steps_per_epoch=128",
    "--model.init_args.eval_episodes=2",
    "--model.init_args.test_episodes=2",
]
TINY_DQN = [
    "--model.init_args.num_envs=2",
    "--model.init_args.train_frequency=8",
    "--model.init_args.gradient_steps=4",
    "--model.init_args.learning_starts=32",
    "--model.init_args.batch_size=16",
    "--model.init_args.hidden=[16]",
]
TINY_PPO = [
    "--model.init_args.num_envs=2",
    "--model.init_args.rollout_steps=16",
    "--model.init_args.minibatch_size=8",
    "--model.init_args.hidden=[16]",
]


# -- the arithmetic -------------------------------------------------------------------------
def test_gae_matches_a_hand_computed_rollout_with_a_termination_and_a_truncation():
    """One env, 4 steps, γ = 0.9, λ = 0.5: step 1 terminates (no future), step 2 is truncated
    (bootstrapped from its last state's value 5, not from the next episode's first state)."""
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    values = torch.tensor([[0.5], [1.0], [2.0], [1.5]])
    next_values = torch.tensor([[1.0], [9.0], [5.0], [2.5]])  # 9: ignored (terminated)
    terminated = torch.tensor([[False], [True], [False], [False]])
    done = torch.tensor([[False], [True], [True], [False]])
    advantages = generalized_advantages(rewards, values, next_values, terminated, done, gamma, lam)
    delta3 = 4.0 + 0.9 * 2.5 - 1.5  # the rollout's end: bootstrapped, nothing after it
    delta2 = 3.0 + 0.9 * 5.0 - 2.0  # truncated: bootstrapped, the recursion cut
    delta1 = 2.0 - 1.0  # terminated
    delta0 = 1.0 + 0.9 * 1.0 - 0.5
    expected = [delta0 + gamma * lam * delta1, delta1, delta2, delta3]
    torch.testing.assert_close(advantages[:, 0], torch.tensor(expected))


def test_gae_with_lambda_one_and_no_ends_is_the_discounted_return_minus_the_value():
    rewards, values = torch.rand(6, 3), torch.rand(6, 3)
    next_values = torch.cat([values[1:], torch.rand(1, 3)])
    flags = torch.zeros(6, 3, dtype=torch.bool)
    advantages = generalized_advantages(rewards, values, next_values, flags, flags, 0.9, 1.0)
    returns = next_values[-1].clone()
    for step in reversed(range(6)):
        returns = rewards[step] + 0.9 * returns
        torch.testing.assert_close(advantages[step], returns - values[step])


def test_ppo_clipped_losses_match_a_direct_computation():
    torch.manual_seed(0)
    log_probs, old_log_probs = torch.randn(32) * 0.3, torch.randn(32) * 0.3
    advantages, values, old_values, returns = torch.randn(32), *torch.randn(3, 32)
    policy_loss, value_loss = ppo_losses(
        log_probs, old_log_probs, advantages, values, old_values, returns, 0.2, 0.1
    )
    expected_policy, expected_value = [], []
    for i in range(32):
        ratio = math.exp(log_probs[i] - old_log_probs[i])
        clipped_ratio = min(max(ratio, 0.8), 1.2)
        expected_policy.append(-min(ratio * advantages[i], clipped_ratio * advantages[i]))
        clipped_value = old_values[i] + min(max(values[i] - old_values[i], -0.1), 0.1)
        expected_value.append(max((values[i] - returns[i]) ** 2, (clipped_value - returns[i]) ** 2))
    torch.testing.assert_close(policy_loss, torch.tensor(expected_policy).mean())
    torch.testing.assert_close(value_loss, 0.5 * torch.tensor(expected_value).mean())
    _, unclipped = ppo_losses(
        log_probs, old_log_probs, advantages, values, old_values, returns, 0.2, None
    )
    torch.testing.assert_close(unclipped, 0.5 * ((values - returns) ** 2).mean())


class TableQ(torch.nn.Module):
    """A Q-function given as a table over 3 states (one-hot observations), 2 actions."""

    def __init__(self, table: list[list[float]]) -> None:
        super().__init__()
        self.table = torch.tensor(table)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return observations @ self.table


@pytest.mark.parametrize("double", [False, True])
def test_dqn_targets_match_a_direct_computation(double):
    target = TableQ([[1.0, 3.0], [5.0, 2.0], [0.0, 4.0]])
    online = TableQ([[2.0, 1.0], [0.0, 7.0], [1.0, 0.0]])  # disagrees with the target's argmax
    states = torch.eye(3)
    rewards, terminated = torch.tensor([1.0, -1.0, 0.5]), torch.tensor([False, False, True])
    targets = dqn_targets(rewards, states, terminated, target, 0.9, online if double else None)
    if double:  # a' = argmax online = (0, 1, 0), valued by the target: (1, 2, -)
        expected = [1.0 + 0.9 * 1.0, -1.0 + 0.9 * 2.0, 0.5]
    else:  # max target = (3, 5, -)
        expected = [1.0 + 0.9 * 3.0, -1.0 + 0.9 * 5.0, 0.5]
    torch.testing.assert_close(targets, torch.tensor(expected))


def test_replay_buffer_keeps_the_last_transitions_and_samples_them_uniformly():
    buffer = ReplayBuffer(capacity=5, observation_size=1)
    for start in (0, 3, 6):  # 9 transitions in batches of 3 into 5 slots: 4..8 remain
        ids = torch.arange(start, start + 3, dtype=torch.float32)
        buffer.add(
            observations=ids[:, None], actions=ids.long(), rewards=ids,
            next_observations=ids[:, None] + 1, terminated=ids > 7,
        )  # fmt: skip
    assert len(buffer) == 5
    sample = buffer.sample(20_000, torch.Generator().manual_seed(0))
    assert set(sample["actions"].tolist()) == {4, 5, 6, 7, 8}
    counts = torch.bincount(sample["actions"], minlength=9)[4:].float()
    assert (counts / 20_000 - 0.2).abs().max() < 0.015  # uniform (5σ ≈ 0.014)
    torch.testing.assert_close(sample["rewards"], sample["actions"].float())  # rows kept whole
    torch.testing.assert_close(sample["next_observations"][:, 0], sample["rewards"] + 1)
    assert sample["terminated"].tolist() == (sample["actions"] > 7).tolist()
    restored = ReplayBuffer(capacity=5, observation_size=1)
    restored.load_state_dict(buffer.state_dict())
    again = restored.sample(100, torch.Generator().manual_seed(1))
    first = buffer.sample(100, torch.Generator().manual_seed(1))
    assert all(torch.equal(again[key], first[key]) for key in first)


def test_async_vector_envs_step_like_sync_ones():
    """``vectorization: async`` (a process per env) plays the same seeded episodes."""
    from lab3.rl.environments import make_vector_env

    observations = {}
    for mode in ("sync", "async"):
        envs = make_vector_env("CartPole-v1", 2, mode)
        first, _ = envs.reset(seed=3)
        stepped = envs.step([0, 1])[0]
        envs.close()
        observations[mode] = (first, stepped)
    for sync, asynchronous in zip(observations["sync"], observations["async"], strict=True):
        assert (sync == asynchronous).all()


# -- fit: determinism, exact resume -----------------------------------------------------------
class StopAfterFirstEpoch(L.Callback):
    """An interruption after the first epoch's checkpoint, as a killed run would leave it."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.should_stop = True


def fit(tmp_path: Path, config: str, *extra: str) -> dict[str, torch.Tensor]:
    run = tmp_path / "run"
    algorithm = TINY_DQN if config.startswith("dqn") else TINY_PPO
    main(
        "lab3",
        [
            "fit", f"--config={REPO / 'configs/lab3/rl' / config}",
            f"--trainer.default_root_dir={run}", *TINY, *algorithm, *extra,
        ],
    )  # fmt: skip
    return torch.load(run / "checkpoints/last.ckpt", weights_only=True)


@pytest.mark.parametrize("config", ["dqn_cartpole.yaml", "ppo_cartpole.yaml"])
def test_same_seed_same_agent_and_a_resumed_fit_is_the_uninterrupted_one(config, tmp_path):
    whole = fit(tmp_path / "a", config)
    again = fit(tmp_path / "b", config)
    other_seed = fit(tmp_path / "c", config, "--seed_everything=7")
    halves = tmp_path / "d"  # stopped after its first epoch (of two: the same lr schedule)
    fit(halves, config, "--trainer.callbacks+=tests.test_lab3_rl.StopAfterFirstEpoch")
    assert torch.load(halves / "run/checkpoints/last.ckpt", weights_only=True)["epoch"] == 0
    resumed = fit(halves, config, "--ckpt_path=last")
    for key, tensor in whole["state_dict"].items():
        assert torch.equal(tensor, again["state_dict"][key]), key
        assert torch.equal(tensor, resumed["state_dict"][key]), key
    assert any(
        not torch.equal(t, other_seed["state_dict"][k]) for k, t in whole["state_dict"].items()
    )
    assert whole["agent"]["env_steps"] == resumed["agent"]["env_steps"] == 2 * 128
    if config.startswith("dqn"):
        for name, tensor in whole["agent"]["replay"]["storage"].items():
            assert torch.equal(tensor, resumed["agent"]["replay"]["storage"][name]), name


class CountBackwardHooks(L.Callback):
    """Listens to the backward hooks (so the agent must take Lightning's path) and writes how
    many it heard."""

    def __init__(self, path: str) -> None:
        self.path, self.calls = Path(path), 0

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.calls += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.path.write_text(str(self.calls))


@pytest.mark.parametrize("config", ["dqn_cartpole.yaml", "ppo_cartpole.yaml"])
def test_the_plain_backward_is_lightnings_computation(config, tmp_path):
    plain = fit(tmp_path / "plain", config)
    heard = tmp_path / "heard.txt"
    listener = (
        "--trainer.callbacks+={class_path: tests.test_lab3_rl.CountBackwardHooks, "
        f"init_args: {{path: {heard}}}}}"
    )
    hooked = fit(tmp_path / "hooked", config, listener)
    assert int(heard.read_text()) == hooked["global_step"] > 0  # every backward was heard
    for key, tensor in plain["state_dict"].items():
        assert torch.equal(tensor, hooked["state_dict"][key]), key


class Fingerprint(L.Callback):
    """Writes, per rank, the sum of the agent's weights and its env steps after the fit."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = sum(p.double().sum().item() for p in pl_module.parameters())
        record = {"weights": total, "env_steps": pl_module.env_steps}
        Path(f"{self.out_dir}/rank{trainer.global_rank}.json").write_text(json.dumps(record))


def test_under_ddp_two_processes_share_the_env_steps_and_keep_one_agent(tmp_path):
    """Each process plays its own seeded envs (half of an epoch's iterations), and the
    averaged gradients keep the two copies of the network equal."""
    from lab3.rl.ppo import PPO
    from tests.conftest import tiny_trainer

    agent = PPO(
        env_id="CartPole-v1", num_envs=2, env_steps_per_epoch=128, eval_episodes=2,
        rollout_steps=16, minibatch_size=16, hidden=(16,),
    )  # fmt: skip
    trainer = tiny_trainer(
        tmp_path, devices=2, strategy="ddp_spawn", max_epochs=1, limit_train_batches=None,
        limit_val_batches=None, callbacks=[Fingerprint(str(tmp_path))],
    )  # fmt: skip
    trainer.fit(agent)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["env_steps"] == rank1["env_steps"] == 64
    assert rank0["weights"] == rank1["weights"]
    alone = PPO(**{**agent.hparams, "env_steps_per_epoch": 64})
    tiny_trainer(tmp_path / "alone", max_epochs=1, limit_train_batches=None).fit(alone)
    assert sum(p.double().sum().item() for p in alone.parameters()) != rank0["weights"]


# -- every config, end to end ------------------------------------------------------------------
@pytest.mark.parametrize("config", RL_CONFIGS, ids=lambda p: p.stem)
def test_every_rl_config_fits_validates_and_tests_a_few_hundred_env_steps(config, tmp_path, capsys):
    run = tmp_path / "run"
    spec = yaml.safe_load(config.read_text())["model"]["init_args"]
    per_iteration = spec["num_envs"] * spec.get("rollout_steps", spec.get("train_frequency"))
    common = [f"--config={config}", f"--trainer.default_root_dir={run}", *TINY[1:3]]
    steps = [f"--model.init_args.env_steps_per_epoch={per_iteration}"]
    if "learning_starts" in spec:  # a checkpoint needs an optimizer step: DQN learns at once
        steps.append("--model.init_args.learning_starts=0")
    main(
        "lab3",
        ["fit", *common, *steps, "--trainer.max_epochs=1", "--model.init_args.eval_episodes=2"],
    )
    assert (run / "checkpoints/best.ckpt").is_file()
    main("lab3", ["test", *common, "--ckpt_path=best", "--model.init_args.test_episodes=2"])
    out = capsys.readouterr().out
    assert "test/return_mean" in out and "episode GIF" in out
    gif = next(run.rglob("episode.gif"))
    assert gif.read_bytes()[:6] == b"GIF89a"


# -- errors: one line each ----------------------------------------------------------------------
def error_of(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stopped:
        main("lab3", args)
    message = str(stopped.value.code) if stopped.value.code not in (None, 0) else ""
    message = message or capsys.readouterr().err.strip()
    assert "\n" not in message.strip(), message
    return message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("--model.init_args.env_id=CartPol-v1", "did you mean CartPole-v1"),
        ("--model.init_args.num_envs=0", "num_envs must be at least 1"),
    ],
)
def test_bad_env_settings_are_one_line(override, expected, tmp_path, capsys):
    config = f"--config={REPO / 'configs/lab3/rl/ppo_cartpole.yaml'}"
    message = error_of(["fit", config, f"--trainer.default_root_dir={tmp_path}", override], capsys)
    assert expected in message


def test_dqn_on_continuous_actions_says_to_choose_discrete_ones(tmp_path, capsys):
    config = f"--config={REPO / 'configs/lab3/rl/dqn_cartpole.yaml'}"
    env = "--model.init_args.env_id=MountainCarContinuous-v0"
    message = error_of(["fit", config, f"--trainer.default_root_dir={tmp_path}", env], capsys)
    assert "discrete action" in message and "Box" in message


def test_a_missing_box2d_names_the_install_command(tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.box2d")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, without Box2D:
    monkeypatch.setitem(sys.modules, "Box2D", None)  # as if it were not installed
    config = f"--config={REPO / 'configs/lab3/rl/ppo_lunarlander.yaml'}"
    message = error_of(["fit", config, f"--trainer.default_root_dir={tmp_path}"], capsys)
    assert "LunarLander-v3 needs" in message and "pip install 'gymnasium[box2d]'" in message


def test_a_checkpoint_of_another_algorithm_or_lab_is_refused_in_one_line(tmp_path, capsys):
    dqn = fit(tmp_path / "dqn", "dqn_cartpole.yaml", "--trainer.max_epochs=1")
    assert dqn["agent"]["algorithm"] == "DQN"
    ppo_config = f"--config={REPO / 'configs/lab3/rl/ppo_cartpole.yaml'}"
    dqn_checkpoint = tmp_path / "dqn/run/checkpoints/last.ckpt"
    message = error_of(["test", ppo_config, f"--ckpt_path={dqn_checkpoint}", *TINY_PPO], capsys)
    assert "DQN" in message and "PPO" in message
    foreign = tmp_path / "foreign.ckpt"  # another lab's: a Lightning checkpoint of no agent
    torch.save({"pytorch-lightning_version": "2.6", "state_dict": {}, "epoch": 0}, foreign)
    message = error_of(["test", ppo_config, f"--ckpt_path={foreign}", *TINY_PPO], capsys)
    assert "not of a Lab 3 agent" in message


def test_a_nan_loss_stops_in_one_line_and_keeps_the_finished_epochs(tmp_path, capsys, monkeypatch):
    fit(tmp_path, "ppo_cartpole.yaml", "--trainer.max_epochs=1")
    last = tmp_path / "run/checkpoints/last.ckpt"
    saved = last.read_bytes()
    monkeypatch.setattr(
        "lab3.rl.ppo.ppo_losses", lambda *args: (torch.tensor(math.nan, requires_grad=True),) * 2
    )
    args = [
        "fit", f"--config={REPO / 'configs/lab3/rl/ppo_cartpole.yaml'}",
        f"--trainer.default_root_dir={tmp_path / 'run'}", *TINY, *TINY_PPO, "--overwrite=true",
    ]  # fmt: skip
    message = error_of(args, capsys)
    assert "loss is nan" in message and "lower the learning rate" in message
    assert last.read_bytes() == saved
