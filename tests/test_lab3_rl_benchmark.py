"""benchmarks/lab3_rl.py at tiny sizes: the bare loops run the configs' algorithms, and the
report turns saved runs into its table and figure (Stable-Baselines3 is not needed for these)."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
lab3_rl = pytest.importorskip("lab3_rl")


@pytest.mark.parametrize("pair", ["dqn_cartpole", "ppo_cartpole"])
def test_the_bare_loops_play_the_env_steps_they_are_asked_for(pair, monkeypatch):
    agent = lab3_rl.build_agent(pair, seed=0)
    agent.hparams.update(num_envs=2, learning_starts=16, gradient_steps=2, rollout_steps=8)
    bare = lab3_rl.bare_ppo if pair.startswith("ppo") else lab3_rl.bare_dqn
    before = [p.detach().clone() for p in agent.parameters()]
    seconds = bare(agent, env_steps=64)
    assert seconds > 0
    assert any(not b.equal(p) for b, p in zip(before, agent.parameters(), strict=True))


def test_the_report_tables_both_sides_and_draws_the_curves(tmp_path):
    def record(part: str, seed: int, solve_at: int | None) -> dict:
        curve = [
            {"env_steps": step, "seconds": step / 1000, "return_mean": 500.0 if solve_at and
             step >= solve_at else 100.0}
            for step in range(5000, 25000, 5000)
        ]  # fmt: skip
        return {"part": part, "pair": "ppo_cartpole", "seed": seed, "curve": curve,
                "test_mean": 490.0 + seed, "test_std": 1.0, "gif": "", "cpu": "a CPU"}  # fmt: skip

    runs = tmp_path / "runs"
    for part, solves in (("ours", (10000, 10000, 15000)), ("sb3", (15000, None, 20000))):
        (runs / part).mkdir(parents=True)
        for seed, solve in enumerate(solves):
            path = runs / part / f"ppo_cartpole_seed{seed}.json"
            path.write_text(json.dumps(record(part, seed, solve)))
    lab3_rl.report(runs, tmp_path / "out", ["ppo_cartpole"])
    table = (tmp_path / "out/README.md").read_text()
    assert "| 3/3 | 11,667 ± 2,357 (10,000, 10,000, 15,000)" in table
    assert "| 2/3 | 17,500 ± 2,500 (15,000, not solved, 20,000)" in table
    assert (tmp_path / "out/ppo_cartpole.png").stat().st_size > 10_000
