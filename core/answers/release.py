"""What of a streaming answer may be shown yet, so that a draft a check will withhold is never shown.

The figure and topic checks judge a finished RAG or hybrid answer and may replace it by a decline
(core.answers.figure_check, core.answers.topic_check). Showing the draft as it streamed and replacing
it afterwards put the very figure the check withheld on screen first. So while such an answer streams,
its text is released a whole sentence at a time: a sentence is shown once it is complete and the text
up to its end passes every check's rule for partial text (a `Hold`). A sentence that fails stays
hidden, and so does everything after it unless a longer text passes again (the topic check forgives a
text that also states a figure of its sources); when the answer is final, its final text is shown
whole: the answer, or the decline that replaced it. The final text is exactly what it was before;
only what is shown while it streams changes.

What this does not give: an earlier sentence that passed can still give way to the decline when a
later one fails; the sentence that fails is the one never shown. Base and fine-tuned answers, and any
answer when the checks are off, stream word by word as before.
"""

from collections.abc import Callable
from dataclasses import dataclass

from core.common.vocabulary import RETRIEVAL_MODES, Answer
from core.text.sentences import complete_sentence_ends

Hold = Callable[[Answer, str], bool]  # (answer, the start of its text) -> would a check withhold it for that?


def any_hold(holds: list[Hold]) -> Hold | None:
    """One hold that holds when any of `holds` does; None when there are none (nothing is ever held)."""
    if not holds:
        return None
    return lambda answer, text: any(hold(answer, text) for hold in holds)


@dataclass(frozen=True)
class Shown:
    text: str  # what may be shown now
    held: bool = False  # a complete sentence is waiting because a check would withhold the answer for it


class Release:
    """What of one streaming answer may be shown; `final` once the checks have run on the whole answer.
    Verdicts on complete sentences are kept: a text's start never changes as the answer grows."""

    def __init__(self, answer: Answer, hold: Hold | None):
        self.answer = answer
        self.hold = hold if answer.mode in RETRIEVAL_MODES else None  # only these modes are checked
        self.final = False
        self._verdicts: dict[int, bool] = {}  # sentence end -> held

    def shown(self) -> Shown:
        answer = self.answer
        if self.final or self.hold is None or not answer.sources:  # no sources: a fixed decline, unchecked
            return Shown(answer.text)
        text, released, held = answer.text, 0, False
        for end in complete_sentence_ends(text):
            if end not in self._verdicts:
                self._verdicts[end] = self.hold(answer, text[:end])
            held = self._verdicts[end]
            if not held:
                released = end
        return Shown(text[:released], held)
