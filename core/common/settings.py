"""Settings: environment (prefix LAB_) over a .env file over .streamlit/secrets.toml over the defaults.

secrets.toml takes the field names in lower case (`openai_api_key = "..."`), as Streamlit's secrets do.
Secrets are SecretStr: they print as '**********' and reach only the client that needs them.
"""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.common.model_catalog import BUNDLED_MODELS, DEFAULT_MODEL

SECRETS_TOML = Path(".streamlit/secrets.toml")

# USD per million tokens (input, output) for models whose price is public; LAB_PRICES adds or overrides.
DEFAULT_PRICES = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "ft:gpt-4o-mini": (0.30, 1.20),  # fine-tuned models are priced by their base: ft:BASE:org::id
    "ft:gpt-4.1-mini": (0.80, 3.20),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAB_", env_file=".env", extra="ignore", toml_file=SECRETS_TOML)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, dotenv_settings, TomlConfigSettingsSource(settings_cls)

    data_dir: Path = Field(Path(".lab"), description="Where models, indexes, adapters and the database live.")
    scenarios_dir: Path = Field(Path("scenarios"), description="Folder of scenario folders.")
    default_scenario: str = Field("lumen_support", description="Scenario selected when the app opens.")

    auto_train: bool = Field(
        True, description="Train a scenario's missing adapter in the background when the app opens it."
    )

    model: str = Field(
        DEFAULT_MODEL,
        description=f"A bundled model ({' | '.join(BUNDLED_MODELS)}; 'bundled' is {DEFAULT_MODEL}), "
        "a Hugging Face id already in the local cache, or a local folder.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA if present, else CPU.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto",
        description="auto: on CPU bfloat16 for Qwen where the CPU has native bf16 (faster, evaluated), else float32; "
        "bfloat16 or float16 on a GPU.",
    )
    quantization: Literal["none", "int8"] = Field(
        "none",
        description="int8: the embedded model's linear layers keep int8 weights on CPU, a quarter of the bytes "
        "read per token (core/engine/int8_weights.py); training keeps full precision.",
    )

    threads: int | None = Field(
        None,
        ge=1,
        description="Torch threads for every Lab process (unset: the app and its jobs share the cores, "
        "answers first; core/engine/cpu_budget.py).",
    )

    backend: Literal["local", "openai"] = Field(
        "local", description="local: the embedded model; openai: an OpenAI-compatible server (OpenAI, vLLM, ...)."
    )
    openai_base_url: str | None = Field(
        None, description="The server's /v1 URL, e.g. http://gpu-host:8000/v1 (unset: api.openai.com)."
    )
    openai_api_key: SecretStr | None = Field(
        None, description="API key of that server (any text for servers without keys); never shown or logged."
    )
    openai_model: str | None = Field(None, description="Base model name on the server (base and RAG modes).")
    openai_finetuned_model: str | None = Field(
        None,
        description="Fine-tuned model (an ft: id, or a LoRA adapter name served by vLLM) for fine-tuned and hybrid.",
    )
    openai_timeout_s: float = Field(60.0, gt=0, description="Seconds to wait for the server before giving up.")
    openai_max_retries: int = Field(
        3, ge=0, le=10, description="Retries, with exponential backoff, on rate limits (429), timeouts and 5xx."
    )
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description='Extra prices, USD per million tokens: {"model": [input, output]} (JSON).'
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
    retrieval_lexical: bool = Field(
        True, description="Fuse BM25 keyword search with the embeddings' ranking, so exact identifiers are found."
    )
    retrieval_lexical_weight: float = Field(
        1.0, ge=0.0, le=5.0, description="BM25's weight in that fusion (the embeddings' weight is 1)."
    )
    figure_check: bool = Field(
        True,
        description="Withhold a RAG or hybrid answer that states a figure (price, duration, address…) no retrieved "
        "passage contains; the draft stays visible.",
    )
    topic_check: bool = Field(
        True,
        description="Withhold a RAG or hybrid answer that repeats a word of the question no knowledge-base document "
        "contains (the subject it would be about is not in the documents); the draft stays visible.",
    )
    chunk_size: int = Field(500, ge=100, le=8000, description="Characters per knowledge-base chunk.")
    chunk_overlap: int = Field(80, ge=0, le=2000, description="Characters shared by neighbouring chunks.")

    chroma_host: str | None = Field(
        None,
        description="A Chroma server (chroma run) to keep the knowledge bases in, instead of the embedded store; "
        "the way several app processes share one index.",
    )
    chroma_port: int = Field(8000, ge=1, le=65535, description="Port of that Chroma server.")

    judge_base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint of an optional LLM judge for evaluations, e.g. http://host:8000/v1.",
    )
    judge_model: str | None = Field(None, description="The judge's model name on that endpoint.")
    judge_api_key: SecretStr | None = Field(None, description="The judge's API key; never shown or logged.")

    max_upload_mb: int = Field(20, ge=1, le=1000, description="Largest document accepted for upload.")
    parse_timeout_s: float = Field(30.0, gt=0, description="An upload that takes longer to parse is refused.")
    parse_memory_mb: int = Field(1536, ge=256, description="Address-space limit of the process that parses an upload.")

    # Access for shared demos (core/common/access.py); unset: no login, everyone may do everything.
    password: SecretStr | None = Field(
        None, description="Password every visitor must enter before any page shows; never shown or logged."
    )
    admin_password: SecretStr | None = Field(
        None, description="Password that also allows training and deleting; never shown or logged."
    )
    demo_mode: bool = Field(
        False,
        description="Public demo: visitors come in without a login and may chat, compare and vote; only the "
        "presenter (LAB_ADMIN_PASSWORD, signed in from the sidebar) changes documents, adapters or runs.",
    )
    admin_emails: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="With an [auth] login in secrets.toml: the e-mail addresses (comma list) that are admins.",
    )

    @field_validator("password", "admin_password", mode="before")
    @classmethod
    def _blank_is_unset(cls, value):
        # LAB_PASSWORD= (empty) must not become a password that an empty form field matches
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(text, str) and not text.strip() else value

    @field_validator("admin_emails", mode="before")
    @classmethod
    def _email_list(cls, value):
        items = value.split(",") if isinstance(value, str) else value or []
        return [item.strip().lower() for item in items if item.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
