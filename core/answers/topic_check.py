"""Topic check: a RAG or hybrid answer about something the knowledge base never mentions is withheld.

A model that reads its sources well can still fail to decline: asked what the documents don't cover,
Qwen2.5-Coder-0.5B turns the question into an answer ("No, there is not a Lumen Bikes store in
Berlin", "The Drift's motor produces 250 Nm of torque"); its RAG refusal on the sample was 0.00 with
the grounded prompt alone, and every stronger decline instruction tried made it decline answerable
questions too. Such answers repeat the question's subject, and that subject is a word no document
of the knowledge base contains. So when an answer uses a content word of the question (stemmed,
stop words and numbers aside: figures are the figure check's) that appears nowhere in the knowledge
base, the answer becomes a decline that names the word; the draft stays on the Answer. A right answer
repeats the question's words too, but mostly words the documents use, since retrieval found them for
it. Two guards keep right answers: the whole knowledge base counts, not only the retrieved passages,
so a word the documents use elsewhere ("cover", "charge") never triggers it; and an answer that states
a figure its sources state ("up to 25 km/h") is anchored in them, so rewording the question's verbs
("the motor keeps helping") does not either.
"""

from functools import cache

from core.answers.figure_check import withheld_reply
from core.common.vocabulary import RETRIEVAL_MODES, Answer
from core.knowledge.lexical_index import tokenize
from core.text.facts import extract_facts
from core.text.refusals import is_decline


@cache
def _stop_stems() -> frozenset[str]:
    # imported here: scikit-learn takes ~1 s to import, which a base answer need not wait for (a
    # retrieval answer has it already: sentence-transformers imports it)
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset({stem for words in tokenize(sorted(ENGLISH_STOP_WORDS)) for stem in words} | {"yes"})


def unknown_topic_words(answer: str, question: str, vocabulary: set[str]) -> list[str]:
    """The question's content words the answer repeats and `vocabulary` (the knowledge base's stemmed
    words) lacks, as the question writes them."""
    stems = set(tokenize([answer])[0]) & set(tokenize([question])[0])
    stop = _stop_stems()
    unknown = {s for s in stems if s not in vocabulary and s not in stop and not any(c.isdigit() for c in s)}
    return [word for word in question.replace("?", " ").split() if _stem(word) in unknown]


def states_a_source_figure(text: str, sources: list[str]) -> bool:
    """Whether the answer states a figure (price, quantity, time, address...) that a source states too."""
    known = {fact.key for source in sources for fact in extract_facts(source)}
    return any(fact.key in known for fact in extract_facts(text))


def _stem(word: str) -> str | None:
    stems = tokenize([word])[0]
    return stems[0] if len(stems) == 1 else None


def topic_hold(vocabulary):
    """While an answer streams (core.answers.release): whether a text, its start, is one the check would
    withhold it for. `vocabulary()` returns the knowledge base's words, read when needed."""

    def holds(answer: Answer, text: str) -> bool:
        if states_a_source_figure(text, [source.text for source in answer.sources]):
            return False
        return bool(unknown_topic_words(text, answer.question, vocabulary()))

    return holds


def topic_check(vocabulary):
    """The finishing step for one knowledge base: `vocabulary()` returns its words, read when needed."""

    def withhold_unknown_topics(answer: Answer) -> None:
        if answer.mode not in RETRIEVAL_MODES or not answer.sources or is_decline(answer.text):
            return
        if states_a_source_figure(answer.text, [source.text for source in answer.sources]):
            return  # anchored in a source ("up to 25 km/h"): rewording the question is no sign of invention
        found = unknown_topic_words(answer.text, answer.question, vocabulary())
        words = list(dict.fromkeys(word.strip(".,;:!'\"()") for word in found))
        if not words:
            return
        named = " or ".join(f"“{w}”" for w in words[:3])
        reason = f"I can't answer that from the knowledge base: none of its documents mentions {named}."
        answer.withheld_draft, answer.text = answer.text, withheld_reply(answer.text, reason)
        answer.notes.append(f"Topic check: no document mentions {named}, so the draft was withheld.")

    return withhold_unknown_topics
