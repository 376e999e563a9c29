"""Scenario folders: the sample is valid; broken ones name the file and line."""

import json

import pytest

from core.common.scenario import ScenarioError, load_eval_questions, load_scenario
from core.scenario_check import validate_scenario

SAMPLE = "scenarios/lumen_support"


def test_the_sample_scenario_is_valid():
    assert validate_scenario(SAMPLE) == []


def test_the_sample_scenario_has_enough_of_everything():
    scenario = load_scenario(SAMPLE)
    assert len([p for p in scenario.docs_dir.iterdir() if p.is_file()]) >= 8
    assert sum(1 for line in scenario.train_path.read_text().splitlines() if line.strip()) >= 150
    questions = load_eval_questions(scenario)
    assert len(questions) >= 40
    assert {q["kind"] for q in questions} == {"answerable", "fresh", "unanswerable", "style"}


def test_sample_training_answers_use_the_house_style():
    scenario = load_scenario(SAMPLE)
    for line in scenario.train_path.read_text().splitlines():
        assistant = json.loads(line)["messages"][-1]["content"]
        assert scenario.matches_style(assistant), assistant
    assert not scenario.matches_style("The return window is 45 days.")


def _scenario(tmp_path, toml='name = "t"\ntitle = "T"\n', train=None, evals=None):
    (tmp_path / "docs").mkdir(exist_ok=True)
    (tmp_path / "docs" / "a.md").write_text("text")
    (tmp_path / "scenario.toml").write_text(toml)
    if train is not None:
        (tmp_path / "train.jsonl").write_text(train)
    if evals is not None:
        (tmp_path / "eval.jsonl").write_text(evals)
    return tmp_path


def test_bad_manifest_is_explained(tmp_path):
    with pytest.raises(ScenarioError, match="TOML"):
        load_scenario(_scenario(tmp_path, toml="name = "))
    with pytest.raises(ScenarioError, match="style_regex"):
        load_scenario(_scenario(tmp_path, toml='name = "t"\nstyle_regex = "("\n'))
    with pytest.raises(ScenarioError, match="no scenario.toml"):
        load_scenario(tmp_path / "missing")


def test_problems_name_their_file_line(tmp_path):
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    evals = "\n".join(
        [
            json.dumps({"id": "a", "question": "q", "kind": "answerable", "must_include": ["x"]}),
            json.dumps({"id": "a", "question": "q", "kind": "weird", "must_include": ["("]}),
        ]
    )
    problems = validate_scenario(_scenario(tmp_path, train=good + "\n{bad json\n", evals=evals))
    text = "\n".join(problems)
    assert "train.jsonl:2: bad JSON" in text
    assert "eval.jsonl:2: kind must be one of" in text
    assert "duplicate id 'a'" in text and "does not compile" in text
