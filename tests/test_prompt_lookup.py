"""Guessing a row's next tokens from its own prompt and answer (core/engine/prompt_lookup.py): what followed
the latest earlier occurrence of its last three, else two, tokens."""

from core.engine.prompt_lookup import PromptLookup


def test_a_guess_is_what_followed_the_last_two_tokens_before():
    lookup = PromptLookup([5, 6, 7, 8, 9, 1, 5, 6])
    assert lookup.guess(3) == [7, 8, 9]
    assert lookup.guess(1) == [7]


def test_the_latest_earlier_occurrence_and_the_longest_match_win():
    # (2, 3) continued with 4 first, then with 7; (1, 2, 3) only ever with 9
    lookup = PromptLookup([1, 2, 3, 9, 0, 2, 3, 4, 0, 2, 3, 7, 1, 2, 3])
    assert lookup.guess(2) == [9, 0]
    lookup = PromptLookup([2, 3, 4, 0, 2, 3, 7, 8, 5, 2, 3])
    assert lookup.guess(2) == [7, 8]


def test_answer_tokens_count_and_the_row_never_matches_itself():
    lookup = PromptLookup([1, 2, 3])
    assert lookup.guess(3) == []  # its last two tokens appeared nowhere before
    for token in (4, 1, 2):
        lookup.add(token)
    assert lookup.guess(3) == [3, 4, 1]  # what followed (1, 2) in the prompt, up to the answer so far


def test_no_guess_without_a_match_or_without_room():
    lookup = PromptLookup([1, 2, 1, 2])
    assert lookup.guess(0) == []
    assert PromptLookup([]).guess(3) == [] == PromptLookup([7]).guess(3)
