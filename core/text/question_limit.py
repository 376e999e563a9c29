"""How long a chat or compare question may be, and the message that says so when one is longer.

The Lab (core.lab: `ask` and `compare`) refuses a longer question, so the pages, the command line and
any other caller meet the same limit; the chat pages check it first and hand the text back to be
shortened, so nothing typed is lost.

Why 2,000 characters: about 500 tokens of English (~4 characters a token), a long e-mail's worth.
Hybrid's prompt already holds ~600 tokens of sources, the system prompt and earlier turns, and up to
160 new tokens must fit after it; 500 more keep the whole prompt far inside SmolLM2's 8,192-token
window (Qwen's is 32,768), so the question itself is never cut. Reading the prompt is most of a long
question's wait on 2 cores: a 5,000-character message took 250 s to answer.
"""

MAX_QUESTION_CHARS = 2000


class QuestionTooLong(ValueError):
    """A question over MAX_QUESTION_CHARS; its message says how much to cut."""


def question_problem(question: str) -> str | None:
    """What is wrong with the question's length, in words; None when it fits."""
    if len(question) <= MAX_QUESTION_CHARS:
        return None
    over = len(question) - MAX_QUESTION_CHARS
    return (
        f"Your message is {len(question):,} characters long; the Lab takes up to {MAX_QUESTION_CHARS:,} "
        f"(about a page), so the model can read it with its sources. Shorten it by {over:,} "
        f"character{'' if over == 1 else 's'} and send it again."
    )


def check_question(question: str) -> None:
    """Raises QuestionTooLong for a question over the limit."""
    if problem := question_problem(question):
        raise QuestionTooLong(problem)
