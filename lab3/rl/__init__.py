"""Lab 3, reinforcement-learning edition: deep Q-learning and PPO on gymnasium environments."""
