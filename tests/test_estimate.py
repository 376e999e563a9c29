"""The one training estimate (core/training/estimate.py): the work it counts, the throughput it uses, and
the words every page and the command line show it in."""

import json

import pytest

from core.common.model_catalog import QWEN_CODER
from core.training.adapters import METADATA_FILE
from core.training.estimate import (
    DEFAULT_TOKENS_PER_S,
    FINISH_S,
    START_S,
    VALIDATION_COST,
    RecentRate,
    current_tokens_per_s,
    duration_words,
    estimate_seconds,
    measured_tokens_per_s,
    planned_tokens,
    seconds_for,
    time_left_words,
    validation_passes_left,
)
from core.training.train_config import TrainConfig


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (20, "under a minute"),
        (463, "about 8 min"),  # the Train tab once said "About 7 min 43 s"
        (1330, "about 20 min"),
        (3077, "about 50 min"),  # the job once said "about 51 min 17 s left"
        (3600, "about 1 h"),
        (5520, "about 1 h 30 min"),
    ],
)
def test_a_duration_is_said_in_whole_minutes(seconds, words):
    assert duration_words(seconds) == words


def test_time_left_says_when_only_publishing_remains():
    assert time_left_words(FINISH_S) == "finishing"
    assert time_left_words(None) == "time left not known yet"
    assert time_left_words(600) == "about 10 min left"


def test_a_run_at_its_start_has_the_estimate_left_less_the_loading():
    """The Train tab's estimate and a job's time left are the same sum: one estimate, not two."""
    lengths, config, rate = [100] * 40 + [300] * 10, TrainConfig(), 140.0
    trained, validated = planned_tokens(lengths, config)
    assert seconds_for(trained, validated, rate, FINISH_S) == pytest.approx(
        estimate_seconds(lengths, config, rate) - START_S
    )


def test_validation_counts_a_third_of_a_trained_token():
    config = TrainConfig(epochs=2, batch_size=5, val_fraction=0.2)
    trained, validated = planned_tokens([100] * 50, config)  # 40 trained, 10 held out, validated each epoch
    assert (trained, validated) == (40 * 2 * 100, 10 * 2 * 100)
    assert estimate_seconds([100] * 50, config, 100.0) == pytest.approx(
        START_S + FINISH_S + (trained + VALIDATION_COST * validated) / 100.0
    )


def test_max_steps_shortens_the_planned_work():
    config = TrainConfig(epochs=2, batch_size=4, val_fraction=0.0, max_steps=3)
    assert planned_tokens([50] * 20, config) == (3 * 4 * 50, 0.0)


def test_validation_runs_after_each_epoch_and_at_the_last_step():
    # 3 epochs of 4 steps: passes after steps 4, 8 and 12.
    assert [validation_passes_left(step, 12, 4) for step in (0, 3, 4, 7, 8, 12)] == [3, 3, 2, 2, 1, 0]
    # max_steps stopping mid-epoch: the last step validates too.
    assert [validation_passes_left(step, 6, 4) for step in (3, 4, 5, 6)] == [2, 1, 1, 0]


def test_the_recent_rate_forgets_progress_older_than_its_window():
    rate = RecentRate(window_s=300)
    rate.add(0, 0)
    rate.add(100, 100)  # 1 token/s while the app answered a lot
    for at in range(200, 801, 100):
        last = rate.add(at, 100 + (at - 100) * 3)  # then 3 tokens/s
    assert last == pytest.approx(3.0)


def test_a_job_training_now_sets_the_rate_for_the_next_one():
    assert current_tokens_per_s(140.0, 55.0) == (55.0, "the running job's throughput now")
    assert current_tokens_per_s(140.0, None)[0] == 140.0


def _adapter(root, name: str, model: str, rate: float) -> None:
    folder = root / "adapters" / "demo" / name
    folder.mkdir(parents=True)
    (folder / METADATA_FILE).write_text(json.dumps({"base_model": model, "device": "cpu", "tokens_per_s": rate}))


def test_the_measured_rate_is_the_newest_run_of_the_same_model(tmp_path):
    _adapter(tmp_path, "old", "SmolLM2", 100.0)
    _adapter(tmp_path, "other-model", "Qwen", 30.0)
    _adapter(tmp_path, "new", "SmolLM2", 120.0)
    assert measured_tokens_per_s(tmp_path, "cpu", "SmolLM2", 135_000_000) == 120.0


def test_without_a_run_the_default_rate_shrinks_with_the_model(tmp_path):
    assert measured_tokens_per_s(tmp_path, "cpu", "Big", 540_000_000) == DEFAULT_TOKENS_PER_S["cpu"] / 4


def test_without_a_run_a_bundled_model_takes_its_own_measured_rate(tmp_path):
    # a scaled SmolLM2 rate said ~23 minutes for Qwen's first launch, which takes ~5
    assert measured_tokens_per_s(tmp_path, "cpu", QWEN_CODER.name, 494_000_000) == QWEN_CODER.training_tokens_per_s
    _adapter(tmp_path, "mine", QWEN_CODER.name, 90.0)
    assert measured_tokens_per_s(tmp_path, "cpu", QWEN_CODER.name, 494_000_000) == 90.0
