"""Scoring one answer: correctness (and declines that quote the answer), style, claims, groundedness with the
real embeddings, retrieval hits, and the shares a run's summary is made of."""

import pytest

from core.evaluation.metrics import (
    SHARE_METRICS,
    Score,
    claim_sentences,
    content_patterns,
    is_correct,
    score_answer,
    share,
    supported_claims,
)

STYLE = r"(?is)^\s*hello from lumen care\b.*\bride on!?\s*$"  # the sample scenario's house style
EMAIL = r"support@lumenbikes\.example"
SOURCES = [
    "The Lumen Drift has a range of up to 90 km on a full charge. Standard delivery takes 3 to 5 business days.",
    "Refunds are processed within 10 business days after the returned item arrives.",
]


@pytest.fixture(scope="module")
def embed(lab):
    """The real all-MiniLM-L6-v2 embeddings the app uses (unit-length vectors)."""
    return lab.embeddings.embed_documents


# --- correctness -----------------------------------------------------------------------------------


PAYMENTS = [r"paypal", r"american\s*express|amex"]


def test_every_pattern_must_match():
    assert is_correct("We take Visa, american express and paypal.", PAYMENTS)
    assert not is_correct("We take paypal and Visa.", PAYMENTS)  # one of two patterns is not enough
    assert not is_correct("", PAYMENTS)


def test_case_does_not_matter():
    assert is_correct("We take Visa, AMERICAN EXPRESS and PayPal.", PAYMENTS)
    assert is_correct("paypal or Amex", PAYMENTS)


def test_a_decline_that_quotes_the_answer_is_not_correct():
    text = "I'm sorry, I don't have information about that. Please write to support@lumenbikes.example."
    assert not is_correct(text, [EMAIL])
    assert is_correct("Please write to support@lumenbikes.example.", [EMAIL])


def test_a_negative_statement_of_the_fact_is_not_a_decline():
    assert is_correct("You can't return a bike after 45 days.", [r"\b45\b"])
    assert is_correct("You can\u2019t return a bike after 45 days.", [r"\b45\b"])  # typographic apostrophe


def test_content_patterns_drop_those_anchored_to_the_start():
    patterns = [
        r"^\s*hello from lumen care",
        r"(?i)^hello",
        r"(?is) ^x",
        r"\Afoo",
        r"\b45\b",
        r"(?i)support@lumen",
        r"ride on!?\s*$",  # anchored at the end only: still about content
    ]
    assert content_patterns(patterns) == [r"\b45\b", r"(?i)support@lumen", r"ride on!?\s*$"]
    assert content_patterns([]) == []


# --- claims and groundedness -------------------------------------------------------------------------


def test_claim_sentences_skip_what_states_nothing():
    text = (
        "Hello from Lumen Care! The Lumen Drift has a range of up to 90 km on a full charge. "
        "I don't know the answer to the rest of your question.\nIt costs $5. Ride on!"
    )
    assert claim_sentences(text) == [
        "The Lumen Drift has a range of up to 90 km on a full charge.",
        "It costs $5.",  # short, but it states a figure
    ]
    assert claim_sentences("Hello from Lumen Care! Ride on!") == []


PARAPHRASES = [
    "On a full charge the Lumen Drift can travel up to 90 km.",
    "Standard shipping arrives in 3 to 5 business days.",
]


@pytest.mark.model
def test_a_paraphrase_of_a_source_is_supported(embed):
    assert supported_claims(PARAPHRASES, SOURCES, embed) == 2


@pytest.mark.model
def test_a_claim_the_sources_do_not_state_is_not_supported(embed):
    assert supported_claims(["Our cafe serves fresh croissants every morning in Paris."], SOURCES, embed) == 0
    # the same sentence with a figure the sources do not state
    assert supported_claims(["The Lumen Drift has a range of up to 60 km on a full charge."], SOURCES, embed) == 0
    assert supported_claims([PARAPHRASES[0], "Our cafe serves croissants in Paris every day."], SOURCES, embed) == 1


@pytest.mark.model
def test_no_claims_or_no_sources_support_nothing(embed):
    assert supported_claims([], SOURCES, embed) == 0
    assert supported_claims(["On a full charge the Lumen Drift can travel up to 90 km."], [], embed) == 0
    assert supported_claims(["On a full charge the Lumen Drift can travel up to 90 km."], ["  "], embed) == 0


# --- one answer, all marks ---------------------------------------------------------------------------


@pytest.mark.model
def test_an_answerable_question_is_scored_on_every_check(embed):
    question = {"kind": "answerable", "must_include": [r"\b90\s*(km|kilomet)"]}
    text = "Hello from Lumen Care! On a full charge the Lumen Drift can travel up to 90 km. Ride on!"
    score = score_answer(question, text, SOURCES, STYLE, embed)
    assert (score.gradable, score.correct, score.declined) == (1, 1, 0)
    assert (score.style_checked, score.styled) == (1, 1)
    assert (score.retrieval_checked, score.retrieval_hit) == (1, 1)
    assert (score.claims, score.supported_claims) == (1, 1)
    assert (score.fresh, score.unanswerable) == (0, 0)
    assert score.passed() is True


@pytest.mark.model
def test_modes_without_retrieval_get_no_retrieval_or_groundedness_marks(embed):
    question = {"kind": "answerable", "must_include": [r"\b90\s*(km|kilomet)"]}
    score = score_answer(question, "It goes 60 km.", None, STYLE, embed)
    assert (score.gradable, score.correct, score.styled, score.style_checked) == (1, 0, 0, 1)
    assert (score.retrieval_checked, score.claims) == (0, 0)
    assert score.passed() is False
    unstyled = score_answer(question, "It goes 90 km.", None, None, None)
    assert (unstyled.correct, unstyled.style_checked) == (1, 0)


def test_retrieval_hit_needs_every_content_pattern_in_the_sources():
    question = {"kind": "style", "must_include": [r"^\s*hello from lumen care", r"\b2,?299\b"]}
    hit = score_answer(question, "Hello from Lumen Care! It is $2,299.", ["The Atlas costs $2,299."], STYLE, None)
    assert (hit.retrieval_checked, hit.retrieval_hit, hit.correct) == (1, 1, 1)
    assert hit.claims == 0  # no embeddings given: groundedness is not measured
    miss = score_answer(question, "Hello from Lumen Care! It is $2,299.", ["The Volt costs $1,499."], STYLE, None)
    assert (miss.retrieval_checked, miss.retrieval_hit) == (1, 0)
    # a question whose only pattern is about form has nothing retrieval could find
    form_only = {"kind": "style", "must_include": [r"^\s*hello from lumen care"]}
    assert score_answer(form_only, "Hello from Lumen Care!", ["anything"], STYLE, None).retrieval_checked == 0


def test_a_fresh_question_is_scored_on_the_new_fact():
    fresh = {"kind": "fresh", "must_include": [r"\b45\b"]}
    score = score_answer(fresh, "You have 45 days to return it.", None, None, None)
    assert (score.fresh, score.fresh_correct, score.gradable, score.correct) == (1, 1, 1, 1)
    stale = score_answer(fresh, "You have 30 days to return it.", None, None, None)
    assert (stale.fresh, stale.fresh_correct) == (1, 0)


def test_an_unanswerable_question_passes_only_when_declined():
    unanswerable = {"kind": "unanswerable", "must_include": []}
    declined = score_answer(unanswerable, "I don't know; the handbook doesn't say.", ["x"], None, None)
    assert (declined.unanswerable, declined.declined_unanswerable, declined.gradable) == (1, 1, 0)
    assert declined.retrieval_checked == 0 and declined.passed() is True
    invented = score_answer(unanswerable, "The CEO's name is Anna.", None, None, None)
    assert (invented.declined_unanswerable, invented.passed()) == (0, False)


# --- shares ------------------------------------------------------------------------------------------


def test_share_is_sum_of_numerators_over_sum_of_denominators():
    scores = [
        Score(correct=1, gradable=1, supported_claims=2, claims=3),
        Score(correct=0, gradable=1, supported_claims=1, claims=1),
        Score(correct=1, gradable=1),
        Score(unanswerable=1, declined=1, declined_unanswerable=1),
    ]
    assert share(scores, "accuracy") == 0.6667
    assert share(scores, "groundedness") == 0.75  # 3 of 4 sentences, not the mean of 2/3 and 1/1
    assert share(scores, "refusal") == 1.0
    assert share(scores, "freshness") is None  # nothing to count: no fresh questions
    assert share([], "accuracy") is None
    assert set(SHARE_METRICS) >= {"accuracy", "freshness", "refusal", "style", "groundedness", "retrieval_hit_rate"}


def test_passed_is_none_for_an_ungraded_question():
    assert Score().passed() is None
    assert Score(style_checked=1, styled=1).passed() is None
    assert Score(gradable=1, correct=0, declined=1).passed() is False
