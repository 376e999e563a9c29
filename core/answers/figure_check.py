"""Figure check: a RAG or hybrid answer that states a figure none of its sources contains is withheld.

A small model asked something its sources don't cover rarely says so: it invents ("2.5 Nm of torque"),
or, fine-tuned, repeats what it memorised ("free over $50" when the sources now say $75). Figures are
what such answers get wrong and what a reader acts on, and unlike free prose they can be checked
exactly: money, quantities with units, times, e-mail and web addresses and phone numbers
(`core.text.facts`, spelling variants folded). When the answer states one that neither the retrieved
sources nor the question contains, the answer becomes a decline that names the figure; the draft is
kept on the Answer so the page can show it. Answers that already decline are left alone. While an
answer streams, `states_unsupported_figure` keeps such a figure off the screen (core.answers.release).
"""

import re

from core.common.vocabulary import RETRIEVAL_MODES, Answer
from core.text.facts import extract_facts
from core.text.refusals import is_decline
from core.text.sentences import split_sentences

MAX_GREETING_WORDS = 6  # a short fact-free first sentence is a greeting ("Hello from Lumen Care!")
MAX_SIGN_OFF_WORDS = 4  # a short fact-free last sentence is a sign-off ("Ride on!")
_WORDS_ONLY = re.compile(r"[A-Za-z][A-Za-z ,'’-]*[.!]?")


def unsupported_figures(text: str, supporting_texts: list[str]) -> list[str]:
    """The figures of `text`, as written, that none of `supporting_texts` states."""
    known = {fact.key for supporting in supporting_texts for fact in extract_facts(supporting)}
    return [fact.text for fact in extract_facts(text) if fact.key not in known]


def states_unsupported_figure(answer: Answer, text: str) -> bool:
    """While `answer` streams (core.answers.release): whether `text`, its start, states a figure that
    would get it withheld."""
    return bool(unsupported_figures(text, [source.text for source in answer.sources] + [answer.question]))


def withheld_reply(draft: str, reason: str) -> str:
    """The decline that replaces a draft: the draft's greeting and sign-off (its voice), the reason between."""
    sentences = split_sentences(draft)

    def plain(sentence: str, max_words: int) -> bool:  # words only: no figure, number or markup
        return len(sentence.split()) <= max_words and bool(_WORDS_ONLY.fullmatch(sentence))

    opening = sentences[0] if len(sentences) > 1 and plain(sentences[0], MAX_GREETING_WORDS) else ""
    closing = sentences[-1] if len(sentences) > 2 and plain(sentences[-1], MAX_SIGN_OFF_WORDS) else ""
    return " ".join(part for part in (opening, reason, closing) if part)


def figures_reason(figures: list[str]) -> str:
    return (
        f"I can't answer that reliably from the knowledge base: my draft stated {', '.join(figures[:3])}, "
        "which none of the retrieved passages contains."
    )


def withhold_unsupported_figures(answer: Answer) -> None:
    """Applied to a finished RAG or hybrid answer; other modes and answers without sources pass unchanged."""
    if answer.mode not in RETRIEVAL_MODES or not answer.sources or is_decline(answer.text):
        return
    figures = unsupported_figures(answer.text, [source.text for source in answer.sources] + [answer.question])
    if not figures:
        return
    answer.withheld_draft, answer.text = answer.text, withheld_reply(answer.text, figures_reason(figures))
    answer.notes.append(
        f"Figure check: the draft stated {', '.join(figures)}, found in no retrieved passage, so it was withheld."
    )
