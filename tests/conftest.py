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
MODEL_FIXTURES = {"lab", "sample"}  # the Lab loads the model and the embeddings on first use; `sample` trains


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Markers (pytest.ini) are set per module; a test that uses the Lab is a `model` test even where its
    module forgot to say so, so that the fast lane (`make test-fast`) never loads the model."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


@pytest.fixture(scope="session")
def settings():
    from core.common.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def lab(settings):
    from core.lab import Lab

    return Lab(settings)


@pytest.fixture(scope="session")
def sample(lab):
    """The sample scenario, indexed, with a real (briefly trained) active adapter."""
    from core.common.scenario import load_scenario
    from core.training.finetune import train_adapter
    from core.training.train_config import TrainConfig

    scenario = load_scenario(SAMPLE)
    lab.ensure_ingested(scenario)
    if lab.active_adapter(scenario) is None:
        train_adapter(lab.settings, scenario, TrainConfig(**QUICK_TRAINING), name="quick")
    return scenario
