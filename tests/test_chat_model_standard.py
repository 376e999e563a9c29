"""LangChain's own standard suites (langchain-tests) against LocalChatModel, on the session's loaded model:
the unit suite (construction, the standard tracing parameters, serialisation) and the integration suite
(invoke, stream, batch, their async forms, conversations, usage metadata, stop words).

What a local text-only model does not do is switched off with the suites' documented feature flags, so
those tests skip: tool calling and structured output (no `bind_tools`), JSON mode, image, PDF and audio
inputs, and a per-call `model` (one engine serves one model)."""

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from core.answers.chat_model import LocalChatModel
from core.common.vocabulary import Decoding

pytestmark = pytest.mark.model


class LocalChatModelUnderTest:
    """The model and its features, for both suites. `engine` is the session's: no second model loads."""

    engine = None

    @pytest.fixture(scope="class", autouse=True)
    def _session_engine(self, request, lab):
        request.cls.engine = lab.engine

    @property
    def chat_model_class(self) -> type[LocalChatModel]:
        return LocalChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"engine": self.engine, "decoding": Decoding(max_new_tokens=8)}  # short answers keep it quick

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_tool_choice(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True  # the last chunk carries the engine's token counts


class TestLocalChatModelUnit(LocalChatModelUnderTest, ChatModelUnitTests):
    pass


class TestLocalChatModelIntegration(LocalChatModelUnderTest, ChatModelIntegrationTests):
    pass
