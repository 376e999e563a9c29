"""How long training takes, computed in one place and said in the same words wherever the Lab shows it:
the Train tab before a run, a running job's progress (fine-tuning page, the wait on the fine-tuned and
hybrid pages, the sidebar and the overview), and `python -m core train` (what `make demo` prints).

Every figure divides the work left (tokens still to train, plus validation passes at a third of the
cost, since they have no backward pass) by a measured throughput:
- a running job: its own tokens per second over the last five minutes, the pauses while the app
  answers included (core.engine.cpu_budget), so the estimate follows the current load. A one-minute
  window swung with every answer: on first launch beside a visitor's questions it said 51 minutes
  for a run that took 22;
- before a run: the running job's current rate when one trains now (the load it meets is the one the
  next run will meet), else the last finished run of the same model on this machine, pauses included;
- before any run: the rate measured when the Lab was built, for a bundled model on CPU its own
  (core.common.model_catalog), for any other model SmolLM2's scaled by the model's size.
The fixed costs (loading the model and the set; the forgetting check and publishing) are rough.
Imports nothing heavy: pages and the command line use it without loading torch.
"""

import json
from pathlib import Path

from core.common.model_catalog import bundled_model
from core.training.adapters import METADATA_FILE
from core.training.train_config import TrainConfig

# Training tokens/s on the 2-core CPU this Lab was built on, with SmolLM2-135M (DEFAULT_RATE_PARAMETERS) and
# adapters on every layer: the guess for a model that is not bundled.
DEFAULT_TOKENS_PER_S = {"cpu": 140.0, "cuda": 3000.0}
DEFAULT_RATE_PARAMETERS = 135_000_000
START_S = 10.0  # loading the model and the training set
FINISH_S = 5.0  # saving and publishing (the forgetting check of a small model is a few seconds more)
SETUP_S = START_S + FINISH_S
VALIDATION_COST = 1 / 3  # a validation token costs about a third of a trained one (forward pass only)
RATE_WINDOW_S = 300.0  # a running job's throughput is measured over this many seconds


def measured_tokens_per_s(data_dir: Path, device: str, base_model: str, parameters: int) -> float:
    """Throughput of the most recent training of `base_model` on this machine (pauses included); without
    one, the rate measured when the Lab was built (`default_tokens_per_s`)."""
    newest = 0.0
    rate = default_tokens_per_s(device, base_model, parameters)
    for meta_file in Path(data_dir).glob(f"adapters/*/*/{METADATA_FILE}"):
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        mine = meta.get("device", "cpu") == device and meta.get("base_model") == base_model
        if mine and meta.get("tokens_per_s") and meta_file.stat().st_mtime > newest:
            newest, rate = meta_file.stat().st_mtime, float(meta["tokens_per_s"])
    return rate


def default_tokens_per_s(device: str, base_model: str, parameters: int) -> float:
    """A bundled model's own first-launch rate on CPU; otherwise SmolLM2's, scaled by parameter count."""
    bundled = bundled_model(base_model)
    if bundled and device == "cpu":
        return bundled.training_tokens_per_s
    return DEFAULT_TOKENS_PER_S.get(device, DEFAULT_TOKENS_PER_S["cpu"]) * min(
        1.0, DEFAULT_RATE_PARAMETERS / parameters
    )


def current_tokens_per_s(measured: float, running_job_rate: float | None) -> tuple[float, str]:
    """The rate a run started now would see, and where it comes from in words: a job training now
    measures the current load; otherwise the last run's (or the default) rate."""
    if running_job_rate:
        return running_job_rate, "the running job's throughput now"
    return measured, "the last run's throughput on this machine"


def planned_tokens(lengths: list[int], config: TrainConfig) -> tuple[float, float]:
    """(tokens the training steps will process, tokens the validation passes will) for examples of
    these token lengths, split into training and held-out examples as training splits them."""
    if not lengths:
        return 0.0, 0.0
    per_example = sum(min(n, config.max_seq_len) for n in lengths) / len(lengths)
    held_out = config.held_out(len(lengths))
    train_examples = len(lengths) - held_out
    steps_per_epoch = -(-train_examples // config.batch_size)
    steps = steps_per_epoch * config.epochs
    if config.max_steps:
        steps = min(steps, config.max_steps)
    passes = -(-steps // steps_per_epoch) if steps_per_epoch else 0  # validation runs once per epoch begun
    trained = min(steps * config.batch_size, train_examples * config.epochs) * per_example
    return trained, held_out * passes * per_example


def seconds_for(train_tokens: float, val_tokens: float, tokens_per_s: float, fixed_s: float) -> float:
    """Wall time for this much work at this throughput, plus the fixed costs still ahead."""
    return fixed_s + (max(0.0, train_tokens) + VALIDATION_COST * max(0.0, val_tokens)) / max(tokens_per_s, 1e-6)


def estimate_seconds(lengths: list[int], config: TrainConfig, tokens_per_s: float) -> float:
    """A whole run, before it starts: what the Train tab shows."""
    trained, validated = planned_tokens(lengths, config)
    return seconds_for(trained, validated, tokens_per_s, SETUP_S)


class RecentRate:
    """Training tokens per second over the last `window_s` seconds, pauses included (the job pauses while
    the app answers), so the time left follows the current load rather than the run's average."""

    def __init__(self, window_s: float = RATE_WINDOW_S):
        self.window_s = window_s
        self._points: list[tuple[float, int]] = []  # (time, tokens seen so far)

    def add(self, at: float, tokens_seen: int) -> float:
        """Records progress; returns the recent rate (tokens/s)."""
        self._points.append((at, tokens_seen))
        while len(self._points) > 2 and at - self._points[1][0] >= self.window_s:
            self._points.pop(0)
        (first_at, first_tokens), (last_at, last_tokens) = self._points[0], self._points[-1]
        return (last_tokens - first_tokens) / (last_at - first_at) if last_at > first_at else 0.0


def duration_words(seconds: float) -> str:
    """A duration as the Lab says it everywhere: whole minutes (fives past twenty), never false precision."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes >= 20:
        minutes = 5 * round(minutes / 5)
    if minutes < 60:
        return f"about {minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"about {hours} h {rest:02d} min" if rest else f"about {hours} h"


def time_left_words(eta_s: float | None) -> str:
    """A running job's time left, in the words every page and the command line use."""
    if eta_s is None:
        return "time left not known yet"
    return "finishing" if eta_s <= FINISH_S else f"{duration_words(eta_s)} left"


def validation_passes_left(step: int, total_steps: int, steps_per_epoch: int) -> int:
    """Validation passes still ahead after `step`: training validates at the end of each epoch and at its last step."""
    if steps_per_epoch < 1:
        return 0
    total = -(-total_steps // steps_per_epoch)
    done = step // steps_per_epoch + (1 if step == total_steps and step % steps_per_epoch else 0)
    return max(0, total - done)
