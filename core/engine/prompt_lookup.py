"""Guesses a row's next tokens from its own text: where its last three (or two) tokens appeared before in
its prompt or answer, the tokens that followed them then (prompt lookup decoding).

An answer often repeats its prompt: RAG quotes its sources, a reply names the question's terms, a list
repeats its own pattern. A decode step on CPU reads every weight once for a block of rows
(core.engine.row_products), so a step with one row has room for the guesses beside it: the engine checks
them in that same step, each as the row's next position, and keeps the ones the model itself would
have produced (core.engine.batch_decoder). The answer is the same token for token; only the number of
steps changes.
"""

NGRAM_SIZES = (3, 2)  # longest first: a longer match guesses better


class PromptLookup:
    """A row's tokens so far (prompt, then answer) and, for each n-gram of them, where it last continued."""

    def __init__(self, tokens: list[int]):
        self.tokens: list[int] = []
        self._continued_at: dict[tuple[int, ...], int] = {}  # n-gram -> index of the token that followed it last
        for token in tokens:
            self.add(token)

    def add(self, token: int) -> None:
        """Appends a token; the n-grams it ends are registered once a token follows them (then the row's
        last n-gram is never its own match)."""
        end = len(self.tokens)
        for size in NGRAM_SIZES:
            if end >= size:
                self._continued_at[tuple(self.tokens[end - size : end])] = end
        self.tokens.append(token)

    def guess(self, count: int) -> list[int]:
        """Up to `count` tokens that followed the latest earlier occurrence of the row's last n-gram; none
        when its last two tokens never appeared before."""
        if count <= 0:
            return []
        for size in NGRAM_SIZES:
            start = self._continued_at.get(tuple(self.tokens[-size:]))
            if start is not None:
                return self.tokens[start : start + count]
        return []
