"""Checks a whole scenario folder before use: documents present, the train set readable, the eval set
well formed. It reads the train set the way training will, so it sits above core/training."""

from pathlib import Path

from core.common.scenario import Report, ScenarioError, check_eval, load_scenario
from core.training.datasets import load_chat_dataset


def validate_scenario(path: str | Path) -> list[str]:
    """Every problem found in the folder; an empty list means the scenario is usable."""
    try:
        scenario = load_scenario(path)
    except ScenarioError as error:
        return str(error).splitlines()
    report = Report()
    documents = [p for p in scenario.docs_dir.rglob("*") if p.is_file()] if scenario.docs_dir.is_dir() else []
    if not documents:
        report.add(str(scenario.docs_dir), "no documents for the knowledge base")
    if scenario.train_path.exists():
        report.problems.extend(load_chat_dataset(scenario.train_path, scenario.system_prompt).errors)
    else:
        report.add(str(scenario.train_path), "missing (needed for fine-tuning)")
    if scenario.eval_path.exists():
        check_eval(scenario.eval_path, report)
    return report.problems
