"""``EpisodeGIF``: after ``test``, one greedy episode as an animated GIF in the run and in W&B."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch import Callback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from lab3.rl.agent import TEST_SEED, Agent
from lab3.rl.environments import episode_frames


class EpisodeGIF(Callback):
    """Renders the first test episode (seed ``TEST_SEED``) into ``<log_dir>/episode.gif``.

    Frames are kept every ``frame_step`` env steps and shrunk to ``width`` pixels, so a 500-step
    CartPole episode stays a few hundred kilobytes; it plays at the env's speed.
    """

    def __init__(self, width: int = 300, frame_step: int = 2) -> None:
        self.width = width
        self.frame_step = frame_step

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module: Agent) -> None:
        env_id = pl_module.hparams.env_id
        frames = episode_frames(pl_module.greedy, env_id, TEST_SEED, pl_module.device)
        path = Path(trainer.log_dir or trainer.default_root_dir) / "episode.gif"
        fps = 50 / self.frame_step  # classic control and Box2D render at 50 fps
        save_gif(frames[:: self.frame_step], path, self.width, fps)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                logger.experiment.log({"test/episode": wandb.Video(str(path), format="gif")})
        print(f"episode GIF ({len(frames) - 1} steps): {path}")


def save_gif(frames: list[np.ndarray], path: Path, width: int, fps: float) -> None:
    images = [Image.fromarray(frame) for frame in frames]
    height = round(images[0].height * width / images[0].width)
    images = [image.resize((width, height), Image.Resampling.BILINEAR) for image in images]
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
    )
