"""Lab 3's commands and model loading: what ``import lab3`` pulls in, ``predict`` as the only
LightningCLI subcommand, ``interactive``'s options, values rejected at parse time, and models
that are neither cached nor downloadable (failing in seconds, in one line naming the model)."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from argparse import ArgumentError

import pytest
import yaml
from huggingface_hub import constants

from common.cli import main
from lab3.cli import Lab3CLI
from lab3.story import hub
from lab3.story.captioner import Captioner
from lab3.story.hub import ModelNotAvailableError, load_pretrained
from lab3.story.writer import StoryWriter
from tests.conftest import REPO

MISSING = "nobody-here/no-such-model-lab3"


def test_the_python_api_imports_no_lightning_and_leaves_matplotlib_alone():
    code = (
        "import sys, lab3\n"
        "from lab3 import ImageStoryGenerator, ImageInputError, StoryResult\n"
        "lightning = sorted(m for m in sys.modules if m.split('.')[0] == 'lightning')\n"
        "assert not lightning, lightning\n"
        "import matplotlib\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_one_help_lists_the_story_and_the_rl_commands(capsys):
    assert list(Lab3CLI.subcommands()) == ["fit", "validate", "test", "predict"]
    main("lab3", ["--help"])
    commands = capsys.readouterr().out.split("commands:")[1].split("\n\n")[0]
    names = [line.split()[0] for line in commands.strip().splitlines()]
    assert {"fit", "validate", "test", "predict", "interactive", "app"} == set(names)
    with pytest.raises(SystemExit, match="unknown command 'sweep'"):  # no classifier here
        main("lab3", ["sweep", f"--config={REPO / 'configs/lab3/story.yaml'}"])


@pytest.mark.parametrize(
    "option",
    [
        "--data.batch_size=0",
        "--data.num_workers=-1",
        "--data.timeout=0",
        "--data.max_bytes=0",
        "--model.init_args.length=0",
        "--model.init_args.length=-5",
        "--model.init_args.captioner.init_args.max_new_tokens=0",
        "--model.init_args.writer.init_args.lengths={short: 0, long: 9}",
        "--trainer.callbacks=[{class_path: lab3.story.report.StoryReport, "
        "init_args: {thumbnail_size: 0}}]",
    ],
)
def test_non_positive_sizes_are_rejected_when_parsing(option, tmp_path):
    args = [f"--config={REPO / 'configs/lab3/story.yaml'}", f"--data.images={tmp_path}", option]
    with pytest.raises(ArgumentError, match="PositiveInt|NonNegative|PositiveFloat"):
        Lab3CLI(args=args, run=False)  # parsing only: nothing is loaded


def test_interactive_prints_its_config_and_rejects_bad_values(tmp_path, capsys):
    config = tmp_path / "interactive.yaml"
    config.write_text("writer:\n  model: some/writer\n  lengths: {short: 5}\nseed: 3\n")
    with pytest.raises(SystemExit) as done:
        main("lab3", ["interactive", f"--config={config}", "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["captioner"]["model"] == "Salesforce/blip-image-captioning-base"
    assert printed["writer"]["model"] == "some/writer" and printed["writer"]["lengths"] == {
        "short": 5
    }
    assert printed["seed"] == 3
    with pytest.raises(SystemExit, match=r"^error: .*\(see `python -m lab3 interactive --help`\)"):
        main("lab3", ["interactive", "--captioner.max_new_tokens=0"])


@pytest.fixture
def online(monkeypatch):
    """HF_HUB_OFFLINE unset however the tests were started."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _timed(build):
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as error:
        build()
    return str(error.value), time.perf_counter() - start


@pytest.mark.parametrize("offline", [True, False])
@pytest.mark.parametrize("part", [Captioner, StoryWriter])
def test_a_model_neither_cached_nor_reachable_fails_fast_naming_it(
    part, offline, online, monkeypatch
):
    """Offline: at once. Not offline: after a reachability check of the real hub (unreachable on
    this team's machines; elsewhere the hub answers that the repository does not exist)."""
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message, seconds = _timed(lambda: part(MISSING))
    assert seconds < 15
    assert message.startswith(f"model '{MISSING}' ") and "\n" not in message
    if offline:
        assert "HF_HUB_OFFLINE is set" in message and seconds < 5
    assert "Hugging Face cache" in message or "cannot be loaded" in message


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_or_silent_hub_is_given_up_within_its_timeout(online, monkeypatch):
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_free_port()}")  # refused
    message, seconds = _timed(lambda: Captioner(MISSING))
    assert seconds < 5 and "the hub cannot be reached" in message
    assert "--model.init_args.captioner.init_args.model PATH" in message
    assert "--captioner.model PATH" in message and "HF_HUB_OFFLINE=1" in message
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr(hub, "HUB_TIMEOUT", 0.5)
        message, seconds = _timed(lambda: StoryWriter(MISSING, tokenizer="some/tokenizer"))
    assert seconds < 3
    assert message.startswith("model 'some/tokenizer' ")  # the tokenizer is loaded first
    assert "--model.init_args.writer.init_args.tokenizer PATH" in message


class _Hub(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_cache_first_then_download_when_the_hub_answers(online, monkeypatch, tmp_path):
    calls = []

    def loader(name, local_files_only=False, **kwargs):
        calls.append((name, local_files_only, kwargs))
        if local_files_only or name == "private/model":
            raise OSError(f"{name} is not in the cache\nsecond line")
        return "downloaded"

    server = http.server.HTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert load_pretrained(loader, "org/model", "writer.model", padding_side="left") == (
            "downloaded"
        )
        with pytest.raises(ModelNotAvailableError, match="^model 'private/model' cannot be "):
            load_pretrained(loader, "private/model", "writer.model")
    finally:
        server.shutdown()
    assert calls[:2] == [
        ("org/model", True, {"padding_side": "left"}),
        ("org/model", False, {"padding_side": "left"}),
    ]
    assert load_pretrained(lambda name: name, str(tmp_path), "captioner.model") == str(tmp_path)
    with pytest.raises(ModelNotAvailableError, match="model folder './gone' does not exist"):
        load_pretrained(loader, "./gone", "captioner.model")


def test_commands_report_an_unavailable_model_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    predict = [
        "predict",
        f"--config={REPO / 'configs/lab3/story.yaml'}",
        f"--model.init_args.captioner.init_args.model={MISSING}",
        f"--model.init_args.writer.init_args.model={MISSING}",
        f"--data.images={tmp_path}",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
    ]
    interactive = ["interactive", f"--captioner.model={MISSING}", f"--writer.model={MISSING}"]
    for args in (predict, interactive):
        start = time.perf_counter()
        with pytest.raises(SystemExit) as done:
            main("lab3", args)
        assert time.perf_counter() - start < 15
        message = str(done.value.code)
        assert message.startswith("error: ") and f"model '{MISSING}'" in message
        assert "\n" not in message
