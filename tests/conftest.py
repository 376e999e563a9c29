"""Shared fixtures: a throw-away data dir, the real model and embeddings, the sample scenario indexed,
and a quickly trained real adapter. Heavy things are built once per session."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "scenarios" / "lumen_support"

# Set before anything reads settings (they are cached per process): the app, CLI subprocesses
# and AppTest all see this data dir. Short answers keep the real model fast; the small model serves every
# test that is not about the model choice (tests/test_qwen.py is).
DATA_DIR = Path(tempfile.mkdtemp(prefix="lab-test-"))
atexit.register(shutil.rmtree, DATA_DIR, ignore_errors=True)
os.environ.update(LAB_DATA_DIR=str(DATA_DIR), LAB_MAX_NEW_TOKENS="24", LAB_AUTO_TRAIN="0", LAB_MODEL="smollm2-135m")
# Reuse the model converted by `make prepare` instead of converting again (~1 min).
if (ROOT / ".lab" / "models").is_dir():
    (DATA_DIR / "models").symlink_to(ROOT / ".lab" / "models")

QUICK_TRAINING = dict(max_steps=3, batch_size=4, val_fraction=0.0, check_forgetting=False)


@pytest.fixture(scope="session")
def settings():
    from core.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def lab(settings):
    from core.lab import Lab

    return Lab(settings)


@pytest.fixture(scope="session")
def sample(lab):
    """The sample scenario, indexed, with a real (briefly trained) active adapter."""
    from core.finetune import train_adapter
    from core.scenario import load_scenario
    from core.train_config import TrainConfig

    scenario = load_scenario(SAMPLE)
    lab.ensure_ingested(scenario)
    if lab.active_adapter(scenario) is None:
        train_adapter(lab.settings, scenario, TrainConfig(**QUICK_TRAINING), name="quick")
    return scenario
