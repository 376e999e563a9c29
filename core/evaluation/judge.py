"""Optional LLM-as-judge: grades answers against the reference, and picks the best of an arena vote's answers.

Off unless an OpenAI-compatible judge is configured (LAB_JUDGE_BASE_URL and LAB_JUDGE_MODEL, key in
LAB_JUDGE_API_KEY). The judge is any LangChain chat model, so a test can hand it the
local one. A reply the judge garbles counts as "no verdict", never as a pass or a fail.
"""

import re
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate

from core.evaluation.arena import ALL_BAD, TIE, Vote

GRADE_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You grade a support assistant's answer against a reference answer. Reply with one word: "
            "CORRECT if the answer states the reference's facts without contradicting them, otherwise INCORRECT.",
        ),
        ("human", "Question: {question}\n\nReference answer: {reference}\n\nAnswer to grade: {answer}"),
    ]
)
PICK_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "Several assistants answered the same customer question. Reply with only the letter of the best "
            "answer: correct, helpful, honest about what it does not know.",
        ),
        ("human", "Question: {question}\n\n{answers}"),
    ]
)
_VERDICT = re.compile(r"\b(INCORRECT|CORRECT)\b", re.IGNORECASE)


@dataclass
class Judge:
    name: str  # shown with its scores: which model judged
    model: BaseChatModel

    def grade(self, question: str, reference: str, answer: str) -> bool | None:
        """True (correct), False, or None when there is no reference or the reply has no verdict."""
        if not reference.strip():
            return None
        reply = self.model.invoke(GRADE_PROMPT.format_messages(question=question, reference=reference, answer=answer))
        return parse_verdict(str(reply.content))

    def pick(self, vote: Vote) -> str | None:
        """The label the judge prefers among the vote's answers, or None."""
        answers = "\n\n".join(f"Answer {e['label']}: {e['text']}" for e in vote.entries)
        reply = self.model.invoke(PICK_PROMPT.format_messages(question=vote.question, answers=answers))
        return parse_pick(str(reply.content), [e["label"] for e in vote.entries])


def parse_verdict(reply: str) -> bool | None:
    if re.search(r"\bnot\s+correct\b", reply, re.IGNORECASE):
        return False
    found = _VERDICT.search(reply)
    return None if found is None else found.group(1).upper() == "CORRECT"


def parse_pick(reply: str, labels: list[str]) -> str | None:
    """The label in the reply ("B", "Answer B is best"), or None; "A clear winner: B" is B, not A."""
    named = re.search(r"\b(?:answer|option)\s+([A-Z])\b", reply, re.IGNORECASE)
    if named and named.group(1).upper() in labels:
        return named.group(1).upper()
    for token in re.findall(r"\b[A-Z]\b(?!\s+[a-z])", reply):
        if token in labels:
            return token
    return None


def vote_agreement(judge: Judge, votes: list[Vote]) -> dict:
    """How often the judge picks what the people who voted picked (ties and "all bad" are left out)."""
    decided = [v for v in votes if v.choice not in (TIE, ALL_BAD)]
    agreed = judged = 0
    for vote in decided:
        pick = judge.pick(vote)
        if pick is not None:
            judged += 1
            agreed += pick == vote.choice
    return {
        "votes": len(decided),
        "judged": judged,
        "agreed": agreed,
        "agreement": round(agreed / judged, 3) if judged else None,
    }


def configured_judge(settings) -> Judge | None:
    """The judge from settings, or None when none is configured."""
    if not (settings.judge_base_url and settings.judge_model):
        return None
    from langchain_openai import ChatOpenAI

    key = settings.judge_api_key.get_secret_value() if settings.judge_api_key else "not-needed"
    model = ChatOpenAI(
        base_url=settings.judge_base_url,
        model=settings.judge_model,
        api_key=key,
        temperature=0,
        max_tokens=8,
        timeout=60,
        max_retries=2,
    )
    return Judge(name=settings.judge_model, model=model)
