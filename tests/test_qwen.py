"""The second bundled model, Qwen2.5-Coder-0.5B-Instruct: its checked assembly, every mode, its own
adapters, and the switch that frees the other model. The rest of the suite runs on SmolLM2."""

import subprocess
import sys

import pytest
import torch

from core.answers.compare import Column
from core.common.model_catalog import QWEN_CODER, SMOLLM2
from core.common.vocabulary import MODES
from core.engine.model_store import checked_gguf, model_source, prepare_bundled_model
from core.training.adapters import AdapterNotReady
from core.training.finetune import train_adapter
from core.training.train_config import TrainConfig
from tests.conftest import QUICK_TRAINING, ROOT
from tests.support.reference import reference_model

QUESTION = "How many days do I have to return a bike?"


@pytest.fixture(scope="module")
def qwen_lab(lab, sample):
    """The session's Lab (SmolLM2, with the sample's quick adapter), switched to Qwen for these tests and
    back afterwards, so the other modules keep their model."""
    lab.switch_model(QWEN_CODER.key)
    yield lab
    lab.switch_model(SMOLLM2.key)


def test_the_chunks_assemble_into_the_pinned_file(tmp_path):
    gguf = checked_gguf(QWEN_CODER, tmp_path)
    assert gguf.parent == tmp_path and gguf.stat().st_size == 5 * 89_128_960 + 45_755_264
    assert (QWEN_CODER.licence_dir / "NOTICE").read_text().count(QWEN_CODER.sha256) == 1


@pytest.mark.model
def test_the_converted_folder_ships_the_licence(settings):
    folder = prepare_bundled_model(settings, QWEN_CODER)
    assert (folder / "licence" / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert '"qwen2"' in (folder / "config.json").read_text()


FREES_THE_OTHER = """
import gc, weakref
from core.lab import Lab
from core.common.settings import get_settings
lab = Lab(get_settings())
small = weakref.ref(lab.engine.model)
lab.switch_model("qwen2.5-coder-0.5b")
gc.collect()
print(small() is None, lab.engine.model_name)
"""


@pytest.mark.model
@pytest.mark.process
def test_switching_frees_the_other_model(settings):
    # In a fresh process: in this one, objects kept by earlier tests (a failed test's frames) may hold it.
    done = subprocess.run([sys.executable, "-c", FREES_THE_OTHER], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", QWEN_CODER.name]  # one model in memory at a time


@pytest.mark.model
def test_switching_keeps_adapters_apart(lab, sample):
    smol_active = lab.active_adapter(sample)
    assert lab.model_label == SMOLLM2.name and smol_active is not None
    lab.switch_model(QWEN_CODER.key)
    try:
        assert lab.model_label == QWEN_CODER.name and lab.engine.model_name == QWEN_CODER.name
        # The sample's SmolLM2 adapter is listed apart and never loaded into Qwen.
        assert lab.active_adapter(sample) is None and lab.adapters(sample) == []
        hidden = lab.other_models_adapters(sample)
        assert smol_active.name in [adapter.name for adapter in hidden]
        assert {adapter.base_model for adapter in hidden} == {SMOLLM2.name}
        with pytest.raises(AdapterNotReady, match="trained on SmolLM2"):
            lab.ask(sample, "finetuned", QUESTION, adapter=smol_active.name)
        with pytest.raises(AdapterNotReady, match="Qwen2.5-Coder-0.5B-Instruct"):
            lab.ask(sample, "hybrid", QUESTION)
    finally:
        lab.switch_model(SMOLLM2.key)
    assert lab.active_adapter(sample).name == smol_active.name  # still SmolLM2's active adapter


@pytest.mark.model
def test_every_mode_answers_with_a_trained_adapter(qwen_lab, sample):
    adapter = train_adapter(qwen_lab.settings, sample, TrainConfig(**QUICK_TRAINING), name="qwen-quick")
    assert adapter.base_model == QWEN_CODER.name and qwen_lab.active_adapter(sample).name == "qwen-quick"
    stream = qwen_lab.compare(sample, [Column(mode) for mode in MODES], QUESTION)
    for _ in stream:
        pass
    for mode, answer in zip(MODES, stream.answers, strict=True):
        assert answer.model == QWEN_CODER.name and answer.text.strip() and answer.completion_tokens > 0
        assert answer.adapter == ("qwen-quick" if mode in ("finetuned", "hybrid") else None)
    alone = qwen_lab.ask(sample, "finetuned", QUESTION).collect()
    assert alone.text == stream.answers[MODES.index("finetuned")].text

    # Round trip: loaded with plain peft, the saved adapter gives the engine's logits exactly (on the
    # engine's kernels: float32 layers are packed for oneDNN, core/engine/row_products.py).
    engine = qwen_lab.engine
    reloaded = reference_model(model_source(qwen_lab.settings)[0], engine.dtype, adapter.path)
    ids = torch.tensor([engine.encode([{"role": "user", "content": "Hi"}], 1)[0]])
    with torch.inference_mode():
        expected = reloaded(input_ids=ids).logits
        engine.lora.route([adapter.engine_name])
        got = engine.model(input_ids=ids).logits
    assert torch.equal(expected, got)
