import lightning as L
import torch

from common.callbacks import GradientNormMonitor
from common.classifier import ImageClassifier
from common.data import FakeDataModule
from lab1.models import ResidualMLP


def test_weights_and_biases_are_measured_apart_and_match_autograd():
    model = ImageClassifier(
        ResidualMLP((1, 4, 4), 3, width=5, depth=2), num_classes=3, normalization=((0.5,), (0.3,))
    )
    loss = model(torch.rand(8, 1, 4, 4)).logsumexp(-1).sum()
    loss.backward()
    monitor = GradientNormMonitor(every_n_steps=1)

    class Recorder:
        def log_metrics(self, metrics, step):
            self.metrics = metrics

    class Trainer:  # only what the hook reads
        global_step = 0
        loggers = [Recorder()]

    monitor.on_before_optimizer_step(Trainer(), model, None)
    logged = Trainer.loggers[0].metrics
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4
    for name, module in linears:
        assert abs(logged[f"grad_norm/weight/{name}"] - module.weight.grad.norm()) < 1e-4
        assert abs(logged[f"grad_norm/bias/{name}"] - module.bias.grad.norm()) < 1e-4
    rows = monitor.mean_norms()
    assert [r["depth"] for r in rows if r["kind"] == "weight"] == [0, 1, 2, 3]
    assert {r["kind"] for r in rows} == {"weight", "bias"}


def test_fit_writes_table_and_figure(tmp_path):
    L.seed_everything(0)
    model = ImageClassifier(
        ResidualMLP((1, 8, 8), 4, width=8, depth=4), num_classes=4, normalization=((0.5,), (0.29,))
    )
    data = FakeDataModule(image_shape=(1, 8, 8), num_classes=4, train_size=128, batch_size=32)
    trainer = L.Trainer(
        max_epochs=2,
        callbacks=[GradientNormMonitor(every_n_steps=2)],
        default_root_dir=tmp_path,
        logger=L.pytorch.loggers.CSVLogger(tmp_path),
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, data)
    run_dir = tmp_path / "lightning_logs" / "version_0"
    assert (run_dir / "grad_norms.png").stat().st_size > 1000
    lines = (run_dir / "grad_norms.csv").read_text().splitlines()
    assert lines[0] == "depth,layer,kind,norm" and len(lines) == 1 + 2 * 6  # 6 Linear layers
    metrics = (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "grad_norm/weight/model.classifier" in metrics
    assert "grad_norm/bias/model.classifier" in metrics


def test_a_resumed_fit_keeps_the_measurements_made_before_the_interruption(tmp_path):
    def fit(max_epochs: int, ckpt_path=None) -> GradientNormMonitor:
        L.seed_everything(0)
        model = ImageClassifier(
            ResidualMLP((1, 8, 8), 4, width=8, depth=2), 4, normalization=((0.5,), (0.29,))
        )
        data = FakeDataModule(image_shape=(1, 8, 8), num_classes=4, train_size=96, batch_size=32)
        monitor = GradientNormMonitor(every_n_steps=1)
        checkpoint = L.pytorch.callbacks.ModelCheckpoint(tmp_path / "checkpoints", "last")
        trainer = L.Trainer(
            max_epochs=max_epochs,
            callbacks=[monitor, checkpoint],
            default_root_dir=tmp_path,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(model, data, ckpt_path=ckpt_path)
        return monitor

    first = fit(1)
    steps_before = len(next(iter(first.history.values())))
    resumed = fit(2, ckpt_path=tmp_path / "checkpoints" / "last.ckpt")
    history = resumed.history[("model.classifier", "weight")]
    assert len(history) == 2 * steps_before  # both epochs, not only the resumed one
    assert history[:steps_before] == first.history[("model.classifier", "weight")]
