"""The shared figures: built without pyplot, so importing them leaves matplotlib's backend alone."""

import subprocess
import sys

import torch

from common.metrics import ood_metrics_and_curves
from common.plots import plot_heatmap, plot_ood_scores
from tests.conftest import REPO


def test_importing_the_plots_keeps_the_users_backend():
    # a fresh interpreter: this one's backend may already be set by other tests
    code = (
        "import matplotlib; matplotlib.use('svg'); "
        "import common.plots, common.callbacks; "
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_ood_figure_draws_the_given_curves(tmp_path):
    generator = torch.Generator().manual_seed(0)
    id_scores = torch.randn(300, generator=generator) + 2
    ood = {"near": torch.randn(200, generator=generator) + 1, "far": torch.randn(100)}
    curves = {name: ood_metrics_and_curves(id_scores, s)[1] for name, s in ood.items()}
    path = plot_ood_scores(id_scores, ood, curves, tmp_path / "sub" / "ood.png", title="t")
    assert path.stat().st_size > 10_000
    heatmap = plot_heatmap(torch.rand(2, 3), ["1", "10"], ["0", "1", "2"], tmp_path / "h.png")
    assert heatmap.stat().st_size > 5_000
