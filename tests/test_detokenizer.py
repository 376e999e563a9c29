"""Streamed text (core/engine/detokenizer.py): the pieces, token by token, add up to the whole answer's
decode on both bundled tokenizers, through spaces, line breaks, special tokens and characters that span
several tokens."""

import random

import pytest
from transformers import AutoTokenizer

from core.common.model_catalog import QWEN_CODER, SMOLLM2
from core.engine.detokenizer import Detokenizer
from core.engine.model_store import converted_model_dir, prepare_bundled_model

TEXTS = [
    "The Lumen Drift's warranty: 5 years (frame), 2 years — parts.\n\n- Reset: hold ⏻ for 10 s.\n",
    "Prix : 1 299 € · Größe M · 日本語のテキスト · emoji 🚲🔋 · code `def f(x): return x**2`",
    "  leading spaces,\ttabs,\r\nand   runs   of   spaces  ",
]

pytestmark = pytest.mark.model


@pytest.fixture(scope="module", params=[SMOLLM2, QWEN_CODER], ids=["smollm2", "qwen"])
def tokenizer(request, settings):
    prepare_bundled_model(settings, request.param)
    return AutoTokenizer.from_pretrained(converted_model_dir(settings, request.param))


def _streamed(tokenizer, tokens: list[int]) -> str:
    detokenizer = Detokenizer(tokenizer)
    return "".join(detokenizer.add(token) for token in tokens)


@pytest.mark.parametrize("text", TEXTS)
def test_the_pieces_of_a_text_add_up_to_its_decode(tokenizer, text):
    tokens = tokenizer.encode(text, add_special_tokens=False)
    assert _streamed(tokenizer, tokens) == tokenizer.decode(tokens, skip_special_tokens=True) == text


def test_random_tokens_and_special_tokens_add_up_to_their_decode(tokenizer):
    """Token runs no text encodes to (half characters next to each other, special tokens between)."""
    rng = random.Random(0)
    special = tokenizer.all_special_ids
    for _ in range(20):
        tokens = [rng.randrange(len(tokenizer)) for _ in range(40)] + [rng.choice(special)] + [rng.randrange(1000)]
        whole = tokenizer.decode(tokens, skip_special_tokens=True)
        streamed = _streamed(tokenizer, tokens)
        # a trailing half character is held back until the rest comes, which it never does here
        assert whole.startswith(streamed) and set(whole[len(streamed) :]) <= {"\ufffd"}
