"""Training settings: one set of rules that the fine-tuning page and the command line both enforce."""

import subprocess
import sys

import pytest

from core.training.train_config import TrainConfig
from tests.conftest import ROOT


def test_the_defaults_have_no_problem():
    assert TrainConfig().problems() == []


def test_adapted_layers_are_the_top_share_and_at_least_one():
    assert TrainConfig(upper_layers=1).adapted_layers(24) is None  # all of them
    assert TrainConfig().adapted_layers(30) == list(range(15, 30))  # the default: the upper half
    assert TrainConfig(upper_layers=0.01).adapted_layers(24) == [23]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"epochs": 0}, "at least 1"),
        ({"max_seq_len": 16}, "max seq len at least 32"),
        ({"learning_rate": 1.5}, "learning rate"),
        ({"val_fraction": 0.5}, "Validation split"),
        ({"context_share": 1.2}, "context share"),
        ({"max_steps": 0}, "Max steps"),
        ({"upper_layers": 0}, "adapted layers"),
    ],
)
def test_each_unusable_setting_is_named(change, words):
    problems = TrainConfig(**change).problems()
    assert len(problems) == 1 and words in problems[0]


@pytest.mark.process
def test_the_command_line_refuses_a_bad_config_before_loading_anything():
    done = subprocess.run(
        [sys.executable, "-m", "core", "train", "scenarios/lumen_support", "--epochs", "0", "--learning-rate", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "at least 1" in done.stderr + done.stdout and "learning rate" in done.stderr + done.stdout


@pytest.mark.model  # the sample fixture trains the session's quick adapter
@pytest.mark.process
def test_train_if_missing_keeps_the_adapter_a_scenario_already_has(lab, sample):
    active, before = lab.active_adapter(sample), [a.name for a in lab.adapters(sample)]
    done = subprocess.run(
        [sys.executable, "-m", "core", "train", str(sample.path), "--if-missing"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"already has an adapter for {lab.model_label}: {active.name}" in done.stderr + done.stdout
    assert lab.active_adapter(sample).name == active.name
    assert [a.name for a in lab.adapters(sample)] == before  # nothing trained


def test_a_set_under_ten_examples_holds_none_out():
    config = TrainConfig(val_fraction=0.1)
    assert (config.held_out(9), config.held_out(10), config.held_out(194)) == (0, 1, 19)
