"""``python -m lab4 report`` on hand-made run folders: the three kinds, and what it writes."""

import csv
import json
import math
import os
from pathlib import Path

import pytest
import torch
import yaml

from common.cli import main
from common.run_logs import metric_by_epoch
from lab4.report import main as report
from tests.conftest import REPO


def write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


METRICS = {"aupr_in": 0.5, "aupr_out": 0.25, "fpr95_id_kept": 0.125, "fpr95_ood_caught": 0.375}


def ood_row(ood_set, detector, auroc, accuracy=0.8):
    group = {"imagenette": "near", "mnist": "far"}.get(ood_set, "")
    return {"ood_set": ood_set, "group": group, "detector": detector, "auroc": auroc,
            **METRICS, "id_accuracy": accuracy}  # fmt: skip


def summary_row(group, detector, auroc, accuracy=0.8):
    sets = {"near": "imagenette", "far": "mnist"}[group]
    return {"group": group, "ood_sets": sets, "detector": detector, "auroc": auroc,
            **METRICS, "id_accuracy": accuracy}  # fmt: skip


def write_run(version, rows):
    """``ood_metrics.csv`` and the ``ood_summary.csv`` of its groups (one set per group)."""
    group = {"imagenette": "near", "mnist": "far"}
    write_csv(version / "ood_metrics.csv", rows)
    summary = [summary_row(group[r["ood_set"]], r["detector"], r["auroc"], r["id_accuracy"])
               for r in rows]  # fmt: skip
    write_csv(version / "ood_summary.csv", sorted(summary, key=lambda r: r["group"] != "near"))


@pytest.fixture
def ood_runs(tmp_path):
    """Two models' test runs: an old version (ignored) and the newest with figures."""
    old = tmp_path / "runs/cnn/version_0"
    write_run(old, [ood_row("imagenette", "msp", 0.1)])
    new = tmp_path / "runs/cnn/version_1"
    write_run(
        new,
        [
            ood_row("imagenette", "msp", 0.7),
            ood_row("imagenette", "energy", 0.9),
            ood_row("mnist", "msp", 0.6),
            ood_row("imagenette", "autoencoder", 0.65),
        ],
    )
    os.utime(old / "ood_metrics.csv", (1, 1))  # older than version_1
    for name in ("msp", "energy", "max_logit"):
        (new / f"ood_{name}.png").write_bytes(name.encode())
    write_run(tmp_path / "runs/resnet/version_0", [ood_row("imagenette", "msp", 0.75, 0.9)])
    return {"CNN": str(tmp_path / "runs/cnn"), "ResNet": str(tmp_path / "runs/resnet")}


def test_ood_tables_group_means_and_sets_and_the_best_detectors_figures(ood_runs, tmp_path):
    output = tmp_path / "out/ood.md"
    report(["--kind=ood", f"--runs={ood_runs}", f"--output={output}"])
    lines = output.read_text().splitlines()
    assert (
        lines[0]
        == "ID = CIFAR-10 test. Means over each group's OOD sets (near = imagenette; far = mnist):"
    )
    assert lines[2:8] == [
        "| model | ID acc | detector | near AUROC ↑ | far AUROC ↑ "
        "| near FPR@95 ID-kept / OOD-caught ↓ | far FPR@95 ID-kept / OOD-caught ↓ |",
        "|---|---:|---|---:|---:|---:|---:|",
        "| CNN | 0.8000 | msp | 0.700 | 0.600 | 0.125 / 0.375 | 0.125 / 0.375 |",
        "| CNN | 0.8000 | energy | 0.900 | — | 0.125 / 0.375 | — |",
        "| autoencoder | — | autoencoder | 0.650 | — | 0.125 / 0.375 | — |",
        "| ResNet | 0.9000 | msp | 0.750 | — | 0.125 / 0.375 | — |",
    ]
    cells = "0.500 / 0.250 / 0.125 / 0.375"
    assert lines[9].startswith("Per OOD set, cells: AUROC ↑ / AUPR-In ↑ / AUPR-Out ↑ / FPR@95")
    assert lines[11:17] == [
        "| model | ID acc | detector | imagenette | mnist |",
        "|---|---:|---|---|---|",
        f"| CNN | 0.8000 | msp | 0.700 / {cells} | 0.600 / {cells} |",
        f"| CNN | 0.8000 | energy | 0.900 / {cells} | — |",
        f"| autoencoder | — | autoencoder | 0.650 / {cells} | — |",
        f"| ResNet | 0.9000 | msp | 0.750 / {cells} | — |",
    ]
    assert "FPR@95 OOD-caught: fraction of ID images rejected" in lines[-1]
    # MSP and the best near-OOD detector (energy) of the CNN; the ResNet run has no figures
    assert sorted(p.name for p in output.parent.iterdir()) == [
        "ood.md", "ood_cnn_energy.png", "ood_cnn_msp.png"
    ]  # fmt: skip
    assert (output.parent / "ood_cnn_energy.png").read_bytes() == b"energy"


def test_ood_table_asks_for_a_new_test_run_without_group_means(ood_runs, tmp_path):
    (next(iter(sorted((tmp_path / "runs/resnet").glob("version_*")))) / "ood_summary.csv").unlink()
    with pytest.raises(FileNotFoundError, match="no ood_summary.csv .* run `python -m lab4 test`"):
        report(["--kind=ood", f"--runs={ood_runs}"])


def test_adversarial_table_lists_models_not_run(tmp_path):
    run = tmp_path / "runs/adv/version_0"
    write_csv(
        run / "robustness.csv",
        [
            {"attack": "fgsm", "epsilon": 1.0, "robust_accuracy": 0.5, "success_rate": 0.375},
            {"attack": "iterative", "epsilon": 2.0, "robust_accuracy": 0.0, "success_rate": 1.0},
        ],
    )
    write_csv(run / "ood_metrics.csv", [ood_row("near", "msp", 0.7), ood_row("near", "knn5", 0.8)])
    runs = {"adv": str(tmp_path / "runs/adv"), "later": str(tmp_path / "runs/later")}
    text = report(["--kind=adversarial", f"--runs={runs}", "--near_ood=near"])
    assert text.splitlines()[2:] == [
        "| model | clean acc | fgsm ε=1 robust acc / success | iterative ε=2 robust acc / success"
        " | near AUROC msp | near AUROC best |",
        "|---|---:|---:|---:|---:|---:|",
        "| adv | 0.8000 | 0.500 / 0.375 | 0.000 / 1.000 | 0.7000 | 0.8000 (knn5) |",
        "| later | not run | | | | |",
    ]


def sweep_json(path, label, target, robust_accuracy, mtime):
    rows = [
        {
            "attack": attack,
            "epsilon": epsilon,
            "clean_accuracy": 0.75,
            "success_rate": 0.5,
            "mean_iterations": math.nan if attack == "fgsm" else 2.25,
            "confidence_drop": 0.125,
            "robust_accuracy": robust_accuracy,
            "seconds": 1.0,
        }
        for attack in ("fgsm", "iterative")
        for epsilon in (0.5, 2)
    ]
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"label": label, "target": target, "rows": rows}))
    (path.parent / "robustness_sweep.png").write_bytes(b"png")
    os.utime(path, (mtime, mtime))


@pytest.fixture
def attack_runs(tmp_path):
    """A model with an old and a new untargeted sweep and a targeted one; another model."""
    cnn = tmp_path / "sweeps/custom_cnn"
    sweep_json(cnn / "version_0/robustness.json", "x", None, 0.0, 100)
    sweep_json(cnn / "version_1/robustness.json", "x", "dog", 0.25, 300)
    sweep_json(cnn / "version_2/robustness.json", "x", None, 0.125, 200)
    sweep_json(tmp_path / "sweeps/resnet/version_0/robustness.json", "y", None, 0.5, 100)
    return {"custom CNN": str(cnn), "ResNet-20 (pretrained)": str(tmp_path / "sweeps/resnet")}


def test_attacks_table_from_the_newest_sweep_of_each_target(attack_runs, tmp_path):
    output = tmp_path / "results/attacks.md"
    text = report(["--kind=attacks", f"--runs={attack_runs}", f"--output={output}"])
    assert output.read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| model | attack | target | ε | clean acc | success rate |")
    assert rows[1:] == [
        f"| {model} | {attack} | {target} | {epsilon} | 0.750 | 0.500 | {iters} | 0.125 | {acc} |"
        for model, target, acc in [
            ("custom CNN", "—", "0.125"),  # version_2, not the older version_0
            ("custom CNN", "dog", "0.250"),
            ("ResNet-20 (pretrained)", "—", "0.500"),
        ]
        for attack, iters in (("fgsm", "—"), ("iterative", "2.250"))
        for epsilon in ("0.5", "2")
    ]
    assert sorted(p.name for p in output.parent.iterdir()) == [
        "attacks.md",
        "custom_cnn.json",
        "custom_cnn_dog.json",
        "custom_cnn_dog_sweep.png",
        "custom_cnn_sweep.png",
        "resnet_20_pretrained.json",
        "resnet_20_pretrained_sweep.png",
    ]
    copied = json.loads((output.parent / "custom_cnn.json").read_text())
    assert copied["rows"][0]["robust_accuracy"] == 0.125


@pytest.mark.parametrize("kind", ["ood", "adversarial", "attacks", "robustness"])
def test_without_output_the_table_is_printed_and_nothing_written(
    kind, ood_runs, attack_runs, tmp_path, monkeypatch, capsys
):
    runs = attack_runs if kind == "attacks" else ood_runs
    if kind in ("adversarial", "robustness"):
        runs = {"never run": str(tmp_path / "none")}
    before = sorted(tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)
    text = report([f"--kind={kind}", f"--runs={runs}", "--near_ood=near"])
    assert capsys.readouterr().out == text and text.count("\n| ") >= 2
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("kind", ["ood", "attacks"])
def test_runs_not_made_yet_are_named_and_the_others_reported(
    kind, ood_runs, attack_runs, tmp_path, caplog
):
    made = ood_runs if kind == "ood" else attack_runs
    missing = {"LogitNorm": str(tmp_path / "runs/logitnorm"), "JARN": str(tmp_path / "runs/jarn")}
    (tmp_path / "runs/jarn/version_0").mkdir(parents=True)  # a fit, no test run yet
    output = tmp_path / f"results/{kind}.md"
    text = report([f"--kind={kind}", f"--runs={ {**made, **missing} }", f"--output={output}"])
    assert text == report([f"--kind={kind}", f"--runs={made}"]) + (
        f"\nNot yet run (`python -m lab4 test` with its config, then report again): "
        f"LogitNorm ({missing['LogitNorm']}); JARN ({missing['JARN']}).\n"
    )
    assert output.read_text() == text
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w.split(" (")[0] for w in warnings] == ["not yet run: LogitNorm", "not yet run: JARN"]
    assert missing["JARN"] in warnings[1]


@pytest.mark.parametrize("kind", ["ood", "attacks"])
def test_no_run_made_yet_stops_in_one_line_before_anything_is_written(kind, tmp_path, caplog):
    output = tmp_path / f"results/{kind}.md"
    output.parent.mkdir()
    output.write_text("the committed table\n")
    runs = {"never run": str(tmp_path / "runs/none"), "nor this": str(tmp_path / "runs/other")}
    with pytest.raises(SystemExit) as error:
        main("lab4", ["report", f"--kind={kind}", f"--runs={runs}", f"--output={output}"])
    message = str(error.value)
    assert message.startswith("error: no ") and "\n" not in message
    assert runs["never run"] in message and "python -m lab4 test" in message
    assert not caplog.records  # that line alone
    assert output.read_text() == "the committed table\n"
    assert [p.name for p in output.parent.iterdir()] == [f"{kind}.md"]  # no figure copied


STRONG = [("fgsm", 1), ("pgd", 20), ("apgd_ce", 100)]


def strong_json(version, clean, robust, attacks=STRONG, mtime=None):
    """A ``robustness_strong.json`` as RobustnessEvaluation.write_tables writes it (ball mode)."""
    rows = [
        {"attack": attack, "epsilon": epsilon, "steps": steps, "restarts": 1, "samples": 1000.0,
         "clean_accuracy": clean, "misclassified_before": 1000 * (1 - clean),
         "success_rate": 0.5, "mean_iterations": math.nan if attack == "fgsm" else 3.5,
         "confidence_drop": 0.25, "robust_accuracy": robust[attack] / epsilon, "seconds": 2.0}
        for attack, steps in attacks
        for epsilon in (2.0, 8.0)
    ]  # fmt: skip
    run = {"label": version.parent.name, "target": None, "num_images": 1000, "iterations": None,
           "budget": None, "budget_mode": "ball", "restarts": 1, "rows": rows}  # fmt: skip
    version.mkdir(parents=True, exist_ok=True)
    path = version / "robustness_strong.json"
    path.write_text(json.dumps(run, indent=1))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def fit_version(version, start, end, resumed=False, pgd=()):
    """A fit session's files: config.yaml written at ``start``, metrics.csv last at ``end``;
    ``pgd``: (epoch, val/pgd_acc) rows of the catastrophic-overfitting monitor."""
    version.mkdir(parents=True)
    ckpt_path = "runs/x/checkpoints/last.ckpt" if resumed else "null"
    (version / "config.yaml").write_text(f"seed_everything: 0\nckpt_path: {ckpt_path}\n")
    rows = [{"epoch": 0, "train/loss": 1.0, "val/acc": 0.5, "val/pgd_acc": ""}]
    rows += [{"epoch": e, "train/loss": "", "val/acc": "", "val/pgd_acc": a} for e, a in pgd]
    write_csv(version / "metrics.csv", rows)
    os.utime(version / "config.yaml", (start, start))
    os.utime(version / "metrics.csv", (end, end))


@pytest.fixture
def strong_runs(tmp_path):
    """A model fitted three times (abandoned, fresh, resumed) then tested twice; a model whose
    fit had a Timer and whose evaluation had no APGD-CE; a model with a fit but no test yet."""
    cnn = tmp_path / "runs/cnn"
    fit_version(cnn / "version_0", 100, 200)  # an earlier fit, started over (--overwrite)
    fit_version(cnn / "version_1", 1_000, 4_600, pgd=[(0, 0.1), (1, 0.2)])  # 3600 s
    fit_version(cnn / "version_2", 5_000, 5_600, resumed=True, pgd=[(1, 0.25), (2, 0.3)])
    strong_json(cnn / "version_3", 0.5, {"fgsm": 0.8, "pgd": 0.8, "apgd_ce": 0.8}, mtime=6_000)
    write_csv(cnn / "version_3/metrics.csv", [{"test/acc": 0.8}])  # a test run: not a fit
    strong_json(cnn / "version_4", 0.75, {"fgsm": 1.0, "pgd": 0.5, "apgd_ce": 0.25}, mtime=7_000)
    timed = tmp_path / "runs/timed"
    strong_json(timed / "version_1", 0.625, {"fgsm": 0.5, "pgd": 0.25}, STRONG[:2])
    fit_version(timed / "version_0", 0, 10_000)  # file times say 10000 s; the Timer knows better
    (timed / "checkpoints").mkdir()
    torch.save(
        {"pytorch-lightning_version": "2.5.0", "state_dict": {},
         "callbacks": {"Timer": {"time_elapsed": {"train": 42.4, "validate": 3.0, "test": 0.0}}}},
        timed / "checkpoints/last.ckpt",
    )  # fmt: skip
    fit_version(tmp_path / "runs/untested/version_0", 0, 5_400)
    return {"CNN": str(cnn), "JARN": str(timed), "PGD-7": str(tmp_path / "runs/untested"),
            "never run": str(tmp_path / "runs/none")}  # fmt: skip


def test_robustness_table_robust_accuracy_per_attack_and_radius_and_training_time(
    strong_runs, tmp_path
):
    output = tmp_path / "results/robustness.md"
    text = report(["--kind=robustness", f"--runs={strong_runs}", f"--output={output}"])
    assert output.read_text() == text
    lines = text.splitlines()
    assert lines[0].startswith("Robust accuracy: the fraction of 1000 CIFAR-10 test images")
    table = lines[lines.index("") + 1 : -2]
    assert table == [
        "| model | clean acc | FGSM 2/255 ↑ | FGSM 8/255 ↑ | PGD-20 2/255 ↑ | PGD-20 8/255 ↑ "
        "| APGD-CE 2/255 ↑ | APGD-CE 8/255 ↑ | training time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| CNN | 0.750 | 0.500 | 0.125 | 0.250 | 0.062 | 0.125 | 0.031 | ≈ 70 min |",
        "| JARN | 0.625 | 0.250 | 0.062 | 0.125 | 0.031 | — | — | 42 s |",
        "| PGD-7 | not run |" + "  |" * 6 + " ≈ 1.5 h |",  # fitted (5400 s), not tested
        "| never run | not run |" + "  |" * 6 + " — |",
    ]
    assert lines[-1] == (
        "Per-epoch PGD accuracy on the monitor's validation images (CNN): "
        "robustness_pgd_curves.png (a collapse to ~0 within an epoch = catastrophic overfitting)."
    )
    assert sorted(p.name for p in output.parent.iterdir()) == [
        "cnn_robustness_strong.json", "jarn_robustness_strong.json", "robustness.md",
        "robustness_pgd_curves.png",
    ]  # fmt: skip
    pgd_acc = metric_by_epoch(Path(strong_runs["CNN"]), "val/pgd_acc")
    assert pgd_acc == [(0, 0.1), (1, 0.25), (2, 0.3)]  # the resumed session's epoch 1 wins
    copied = json.loads((output.parent / "cnn_robustness_strong.json").read_text())
    assert copied["rows"][0]["clean_accuracy"] == 0.75  # the newest test run's (version_4)


def test_robustness_table_names_restarts_and_other_step_counts(tmp_path):
    version = tmp_path / "runs/cnn/version_0"
    strong_json(version, 0.5, {"pgd": 0.5, "apgd_ce": 0.5}, [("pgd", 10), ("apgd_ce", 50)])
    path = version / "robustness_strong.json"
    run = json.loads(path.read_text())
    for row in run["rows"]:
        row["restarts"] = 5
    path.write_text(json.dumps(run))
    text = report(["--kind=robustness", f"--runs={{'CNN': '{tmp_path / 'runs/cnn'}'}}"])
    header = "| model | clean acc | PGD-10 ×5 2/255 ↑ | PGD-10 ×5 8/255 ↑ | APGD-CE-50 ×5 2/255 ↑"
    assert header in text
    assert text.rstrip().endswith("| CNN | 0.500 | 0.250 | 0.062 | 0.250 | 0.062 | — |")


def test_the_strong_test_override_replaces_the_test_callbacks_by_the_strong_evaluation(capsys):
    base, override = "configs/lab4/adversarial_cnn_cifar10.yaml", "configs/lab4/robustness"
    with pytest.raises(SystemExit):
        main(
            "lab4",
            ["test", f"--config={REPO / base}",
             f"--config={REPO / 'configs/lab4/adversarial/cnn_fgsm_rs_eps8.yaml'}",
             f"--config={REPO / override / 'strong_test.yaml'}", "--print_config"],
        )  # fmt: skip
    printed = yaml.safe_load(capsys.readouterr().out)
    (callback,) = printed["trainer"]["callbacks"]
    assert callback["class_path"] == "lab4.robustness.RobustnessEvaluation"
    assert callback["init_args"]["stem"] == "robustness_strong"
    assert callback["init_args"]["budget_mode"] == "ball"
    assert printed["trainer"]["default_root_dir"] == "runs/lab4/adversarial/cnn_fgsm_rs_eps8"


@pytest.mark.parametrize(
    "config", sorted((REPO / "configs/lab4").rglob("report.yaml")), ids=lambda p: p.parent.name
)
def test_every_report_config_parses(config, capsys):
    with pytest.raises(SystemExit) as done:
        main("lab4", ["report", f"--config={config}", "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["kind"] in ("ood", "adversarial", "attacks", "robustness") and printed["runs"]
