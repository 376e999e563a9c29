"""Comparing two runs: the bootstrap interval of each metric's change, paired when the questions match."""

from core.evaluation.metrics import Score
from core.evaluation.run_compare import compare_runs


def run(correct: list[int], mode: str = "rag", prefix: str = "q", styled: list[int] | None = None) -> dict:
    """A stored run as core.evaluation.runs writes it, reduced to what the comparison reads: per-question scores."""
    questions = []
    for number, mark in enumerate(correct):
        score = Score(correct=mark, gradable=1)
        if styled is not None:
            score.style_checked, score.styled = 1, styled[number]
        questions.append({"id": f"{prefix}{number:02d}", "answers": {mode: {"score": score.to_dict()}}})
    return {"modes": {mode: {}}, "questions": questions}


def marks(right: int, total: int = 40) -> list[int]:
    return [1] * right + [0] * (total - right)


def by_metric(changes) -> dict:
    return {(c.mode, c.metric): c for c in changes}


def accuracy(changes):
    """The accuracy change (these runs also yield "wrongly declined": nothing declined, 0 before and after)."""
    return by_metric(changes)["rag", "accuracy"]


def test_identical_runs_show_no_change():
    before = run(marks(20), styled=marks(10))
    changes = by_metric(compare_runs(before, before, samples=500))
    # Metrics with nothing to count are left out; "wrongly declined" counts answerable questions too.
    assert set(changes) == {("rag", "accuracy"), ("rag", "wrongly_declined"), ("rag", "style")}
    accuracy = changes["rag", "accuracy"]
    assert accuracy.before == accuracy.after == 0.5 and accuracy.difference == 0
    assert accuracy.low <= 0 <= accuracy.high and not accuracy.real
    assert accuracy.paired and accuracy.questions == 40


def test_a_big_improvement_is_real_with_an_interval_around_the_true_difference():
    change = accuracy(compare_runs(run(marks(5)), run(marks(35))))
    assert (change.before, change.after, change.difference) == (0.125, 0.875, 0.75)
    assert change.real and 0 < change.low <= 0.75 <= change.high
    assert change.to_dict()["real"] is True and change.to_dict()["ci95_low"] == change.low


def test_a_one_question_change_is_not_real():
    change = accuracy(compare_runs(run(marks(20)), run(marks(21))))
    assert change.difference == 0.025
    assert not change.real and change.low <= 0 < change.high


def test_a_big_drop_is_real_with_an_interval_below_zero():
    change = accuracy(compare_runs(run(marks(35)), run(marks(5))))
    assert change.real and change.low <= -0.75 <= change.high < 0


def test_runs_on_different_questions_are_compared_unpaired_so_less_tightly():
    before, after = run(marks(20)), run(marks(25))
    paired = accuracy(compare_runs(before, after))
    unpaired = accuracy(compare_runs(before, run(marks(25), prefix="other-")))
    assert paired.paired and not unpaired.paired
    assert paired.difference == unpaired.difference == 0.125
    # the same five questions flip in the paired case; resampling each run alone adds both runs' noise
    assert paired.high - paired.low < unpaired.high - unpaired.low
    assert paired.real and not unpaired.real


def test_a_run_with_fewer_questions_is_compared_unpaired_on_its_own_count():
    change = accuracy(compare_runs(run(marks(20)), run(marks(15, total=30))))
    assert not change.paired and change.questions == 30 and change.after == 0.5


def test_only_modes_both_runs_measured_are_compared():
    before, after = run(marks(20)), run(marks(20))
    after["modes"]["base"] = {}
    for question in after["questions"]:
        question["answers"]["base"] = {"score": Score(correct=1, gradable=1).to_dict()}
    assert {c.mode for c in compare_runs(before, after)} == {"rag"}


def test_the_seed_makes_the_interval_reproducible():
    before, after = run(marks(18)), run(marks(24), prefix="other-")
    first = compare_runs(before, after, samples=300, seed=7)
    assert first == compare_runs(before, after, samples=300, seed=7)
