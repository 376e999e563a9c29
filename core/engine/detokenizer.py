"""A row's generated tokens turned into text as they come, at a flat cost per token.

Decoding the whole answer again for every new token costs a consumer thread time that grows with the
answer (0.21 ms a token at 256 tokens for SmolLM2, measured), and consumer threads share the
interpreter with the engine's worker. Here each token decodes a short window: the tokens since the
text last grew, after the few before them (their context decides spaces and merged characters). The
pieces add up to the whole answer's decode (tests/test_detokenizer.py checks it on the bundled
tokenizers); a token that ends halfway through a character waits for the rest.
"""


class Detokenizer:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self._prefix = 0  # where the window starts: context only, already shown
        self._read = 0  # where the text not yet shown starts

    def add(self, token: int) -> str:
        """Takes the next token; returns the text it completes ('' while a character is unfinished)."""
        self.tokens.append(token)
        shown = self._decode(self.tokens[self._prefix : self._read])
        text = self._decode(self.tokens[self._prefix :])
        if len(text) <= len(shown) or text.endswith("\ufffd"):  # nothing new yet, or half a character
            return ""
        self._prefix, self._read = self._read, len(self.tokens)
        return text[len(shown) :]

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True) if tokens else ""
