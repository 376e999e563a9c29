"""A LangChain chat model over the shared local Engine; each instance names its adapter (or none)."""

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LangSmithParams
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field

from core.common.vocabulary import Decoding, GenerationStats
from core.engine.engine import Engine


class LocalChatModel(BaseChatModel):
    """Streams tokens from the local model. The last chunk carries usage and timing metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    engine: Engine = Field(exclude=True)
    adapter: str | None = None
    decoding: Decoding = Field(default_factory=Decoding)

    @property
    def _llm_type(self) -> str:
        return "lab-local-transformers"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.engine.model_name, "adapter": self.adapter, **self.decoding.__dict__}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """What a LangSmith trace records of a call: the model (a per-call `model` overrides it, as
        LangChain's convention asks), and the decoding this instance answers with."""
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="lab-local",
            ls_model_name=model if isinstance(model, str) else self.engine.model_name,
            ls_model_type="chat",
            ls_temperature=self.decoding.temperature,
            ls_max_tokens=self.decoding.max_new_tokens,
        )
        if stop:
            params["ls_stop"] = stop
        return params

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for event in self.engine.stream(convert_to_openai_messages(messages), self.adapter, self.decoding):
            if isinstance(event, GenerationStats):
                yield ChatGenerationChunk(message=_final_chunk(event, self.engine.model_name, self.adapter))
                continue
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=event))
            if run_manager:
                run_manager.on_llm_new_token(event, chunk=chunk)
            yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))


def _final_chunk(stats: GenerationStats, model_name: str, adapter: str | None) -> AIMessageChunk:
    return AIMessageChunk(
        content="",
        usage_metadata={
            "input_tokens": stats.prompt_tokens,
            "output_tokens": stats.completion_tokens,
            "total_tokens": stats.prompt_tokens + stats.completion_tokens,
        },
        response_metadata={"model_name": model_name, "adapter": adapter, **stats.to_metadata()},
        chunk_position="last",
    )
