"""The OpenAI-compatible backend: chat models for each mode, the price of an answer, and errors in plain words.

Base and RAG use `openai_model`; fine-tuned and hybrid use `openai_finetuned_model` (an OpenAI `ft:`
id, or the name of a LoRA adapter that vLLM serves next to its base model). Every mode gets the same
decoding settings and seed. The openai client retries rate limits (429), timeouts, dropped
connections and 5xx answers itself, with exponential backoff, `openai_max_retries` times.
The openai client is imported where it is used: the embedded model's answers never pay its import
(~1 s of the cold start).
"""

from typing import TYPE_CHECKING
from urllib.parse import urlparse

from core.common.settings import DEFAULT_PRICES, Settings
from core.common.vocabulary import Decoding

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

OPENAI_URL = "https://api.openai.com/v1"


class BackendNotConfigured(RuntimeError):
    """Backend openai without the settings it needs: the message says which."""


def check_openai_settings(settings: Settings) -> None:
    """Raises BackendNotConfigured with what to set, when the openai backend lacks a key or a model."""
    missing = []
    if settings.openai_api_key is None or not settings.openai_api_key.get_secret_value().strip():
        missing.append("LAB_OPENAI_API_KEY (any text for a server without keys, such as a local vLLM)")
    if not settings.openai_model:
        missing.append("LAB_OPENAI_MODEL (the base model's name on the server)")
    if missing:
        raise BackendNotConfigured(
            "The OpenAI-compatible backend (LAB_BACKEND=openai) needs " + " and ".join(missing) + ", set in the "
            "environment, .env or .streamlit/secrets.toml. Or set LAB_BACKEND=local to use the embedded model."
        )


def server_label(settings: Settings) -> str:
    """Where answers come from, for the UI: host[:port] of the server, never its key."""
    url = urlparse(settings.openai_base_url or OPENAI_URL)
    return url.netloc or url.path


def remote_chat_model(settings: Settings, model: str, decoding: Decoding) -> "ChatOpenAI":
    from langchain_openai import ChatOpenAI

    check_openai_settings(settings)
    return ChatOpenAI(
        model=model,
        base_url=settings.openai_base_url or OPENAI_URL,
        api_key=settings.openai_api_key,
        temperature=decoding.temperature,
        top_p=decoding.top_p if decoding.temperature > 0 else None,
        seed=decoding.seed,
        max_tokens=decoding.max_new_tokens,
        timeout=settings.openai_timeout_s,
        max_retries=settings.openai_max_retries,
        streaming=True,
        stream_usage=True,  # the last chunk carries token counts
    )


def price_per_million(settings: Settings, model: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens: the model's own price, else its fine-tuning base's, else None."""
    prices = {**DEFAULT_PRICES, **settings.prices}
    if model in prices:
        return tuple(prices[model])
    if model.startswith("ft:"):
        base = "ft:" + model.split(":")[1]
        return tuple(prices[base]) if base in prices else None
    return None


def answer_cost(settings: Settings, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    price = price_per_million(settings, model)
    if price is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000


def is_server_error(error: Exception) -> bool:
    """Whether the error came from the openai client (the server, or the way to it)."""
    import openai

    return isinstance(error, openai.OpenAIError)


def describe_error(error: Exception, settings: Settings) -> str:
    """One sentence a user can act on. Server messages are included only with the key scrubbed out
    (some servers echo the key they refused)."""
    import openai

    server = server_label(settings)
    if isinstance(error, openai.AuthenticationError):
        return f"The server at {server} refused the API key (401). Check LAB_OPENAI_API_KEY."
    if isinstance(error, openai.PermissionDeniedError):
        return f"The server at {server} denied access to this model (403)."
    if isinstance(error, openai.RateLimitError):
        return (
            f"The server at {server} is rate-limiting requests (429), still after "
            f"{settings.openai_max_retries} retries with backoff. Wait a little and ask again."
        )
    if isinstance(error, openai.APITimeoutError):
        return f"The server at {server} did not answer within {settings.openai_timeout_s:g} s."
    if isinstance(error, openai.APIConnectionError):
        return f"The server at {server} cannot be reached. Is it running, and is LAB_OPENAI_BASE_URL right?"
    if isinstance(error, openai.NotFoundError):
        return f"The server at {server} has no such model or route (404). Check the model names."
    if isinstance(error, openai.APIStatusError):
        return f"The server at {server} answered {error.status_code}: {scrub(str(error.message), settings)[:200]}"
    return f"The request to {server} failed: {scrub(str(error), settings)[:200]}"


def scrub(text: str, settings: Settings) -> str:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
    return text.replace(key, "***") if len(key) >= 4 else text
