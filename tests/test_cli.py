"""The command line, run as a real subprocess against the test data dir (argument checks and adapter
management, which need no model, in this process)."""

import json
import subprocess
import sys

import pytest

from core.cli import main
from tests.conftest import ROOT, SAMPLE


def _run(*args):
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.model
@pytest.mark.process
def test_ask_json_prints_the_answer_object(sample):
    result = _run("ask", "--scenario", str(SAMPLE), "--mode", "rag", "--json", "What is the support email?")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["mode"] == "rag" and answer["text"]
    assert answer["sources"] and {"name", "score", "text"} <= set(answer["sources"][0])
    assert answer["completion_tokens"] > 0 and answer["prompt_tokens"] > 0


@pytest.mark.model
@pytest.mark.process
def test_ingest_again_adds_nothing(sample):
    result = _run("ingest", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    assert "0 added or changed" in result.stderr


@pytest.mark.process
def test_validate_reports_problems_with_exit_code(tmp_path):
    assert _run("validate", str(SAMPLE)).returncode == 0
    (tmp_path / "scenario.toml").write_text('name = "Bad Name"\n')
    result = _run("validate", str(tmp_path))
    assert result.returncode == 1 and "lower-case" in result.stdout


@pytest.mark.process
def test_bad_scenario_is_a_clear_error():
    result = _run("ask", "--scenario", "/nonexistent", "hello")
    assert result.returncode == 2 and "no scenario.toml" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.model
@pytest.mark.process
def test_compare_json_prints_the_whole_comparison(sample):
    result = _run(
        "compare", "--scenario", str(SAMPLE), "--modes", "base,rag,hybrid", "--json", "What is the support email?"
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert list(output["answers"]) == ["base", "rag", "hybrid"]
    assert output["wall_s"] > 0 and output["decoding"]["max_new_tokens"] == 24
    assert output["answers"]["rag"]["sources"] and not output["answers"]["base"]["sources"]
    assert output["answers"]["hybrid"]["adapter"] and output["answers"]["base"]["adapter"] is None


def _refused(capsys, *args) -> str:
    """Runs the command line in this process (argument checks need no subprocess): its error message."""
    assert main(list(args)) == 2
    return capsys.readouterr().err


def test_compare_needs_two_known_modes(capsys):
    for modes in ("base", "base,base", "base,magic"):
        refused = _refused(capsys, "compare", "--scenario", str(SAMPLE), "--modes", modes, "hi")
        assert "two or more different modes" in refused


@pytest.mark.model
@pytest.mark.process
def test_knowledge_base_commands(tmp_path):
    """kb add/list/delete, retrieve and ingest --chunk-size on a scenario of its own (the CLI is another
    process writing the store, so it keeps off the sample scenario the other tests read)."""
    scenario = tmp_path / "cli_kb"
    (scenario / "docs").mkdir(parents=True)
    (scenario / "scenario.toml").write_text('name = "cli_kb"\ntitle = "CLI knowledge base"\n')
    (scenario / "docs" / "hours.md").write_text("# Hours\n\nThe Lumen store opens at 9 am and closes at 6 pm. " * 8)
    upload = tmp_path / "rentals.md"
    upload.write_text("Lumen rents e-bikes for $9 per hour.")
    bad = tmp_path / "fake.pdf"
    bad.write_bytes(b"not a pdf")

    result = _run("kb", "add", "--scenario", str(scenario), str(upload), str(bad))
    assert result.returncode == 1 and "added rentals.md: 1 chunks" in result.stderr
    assert "refused" in result.stderr and "not a readable PDF" in result.stderr

    listing = _run("kb", "list", "--scenario", str(scenario))
    assert "rentals.md" in listing.stdout and "hours.md" in listing.stdout and "2 documents" in listing.stderr

    found = _run("retrieve", "--scenario", str(scenario), "--k", "1", "--json", "How much is a bike rental?")
    chunks = json.loads(found.stdout)["chunks"]
    assert [c["name"] for c in chunks] == ["rentals.md"] and 0 < chunks[0]["score"] <= 1

    rechunked = _run("ingest", str(scenario), "--chunk-size", "120", "--overlap", "0")
    assert rechunked.returncode == 0 and "Re-indexed with chunk size 120" in rechunked.stderr
    assert "-> " in rechunked.stderr

    deleted = _run("kb", "delete", "--scenario", str(scenario), "rentals.md", "nope.md")
    assert "Deleted rentals.md: 1 chunks" in deleted.stderr
    assert deleted.returncode == 2 and "no document named 'nope.md'" in deleted.stderr
    assert "No chunk scored" in _run("retrieve", "--scenario", str(scenario), "--min-score", "0.99", "rent").stderr


@pytest.mark.model
@pytest.mark.process
def test_adapters_trained_with_flags_on_own_data_are_managed_from_the_command_line(tmp_path, capsys):
    """train --data with settings as flags (context-aware, on the scenario's own knowledge base), then
    adapters list/activate/rename/delete, on a scenario of its own."""
    scenario = tmp_path / "cli_train"
    (scenario / "docs").mkdir(parents=True)
    (scenario / "scenario.toml").write_text('name = "cli_train"\nsystem_prompt = "You are Bob."\n')
    (scenario / "docs" / "hours.md").write_text("The Lumen store opens at 9 am and closes at 6 pm.")
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": q, "answer": "Bob here! The Lumen store opens at 9 am and closes at 6 pm."}) + "\n"
            for q in ("When do you open?", "Opening hours?", "When does the store close?", "Are you open now?")
        )
    )
    quick = ["--max-steps", "1", "--batch-size", "2", "--val-fraction", "0", "--rank", "4", "--context-share", "1"]
    first = _run("train", str(scenario), "--data", str(data), "--name", "first", *quick)
    assert first.returncode == 0, first.stderr
    assert "Context-aware: 4 grounded examples" in first.stderr and "General knowledge: base" in first.stderr
    second = _run(
        "train",
        str(scenario),
        "--data",
        str(data),
        "--name",
        "second",
        "--no-context-aware",
        "--no-check-forgetting",
        *quick,
    )
    assert second.returncode == 0, second.stderr
    assert "Context-aware" not in second.stderr

    listed = json.loads(_run("adapters", "list", str(scenario), "--json").stdout)  # the json listing as a process
    by_name = {a["name"]: a for a in listed}
    assert by_name["second"]["active"] and not by_name["first"]["active"]
    assert by_name["first"]["config"]["rank"] == 4 and by_name["first"]["dataset"] == str(data)
    assert by_name["first"]["context"]["grounded"] == 4 and "context" not in by_name["second"]
    assert by_name["first"]["forgetting"]["questions"] > 0 and by_name["second"]["forgetting"] is None

    # Managing adapters needs no model: run in this process, like the argument checks.
    assert main(["adapters", "activate", str(scenario), "first"]) == 0
    assert main(["adapters", "rename", str(scenario), "first", "renamed"]) == 0
    assert main(["adapters", "delete", str(scenario), "renamed"]) == 2
    refused = capsys.readouterr().err
    assert "active adapter" in refused and "--yes" in refused
    assert main(["adapters", "delete", str(scenario), "renamed", "--yes"]) == 0
    assert "active now: second" in capsys.readouterr().err
    assert main(["adapters", "list", str(scenario)]) == 0
    listing = capsys.readouterr().out
    assert "* second" in listing and "renamed" not in listing
    # Adapters belong to the model they were trained on: another model lists none and activates none.
    assert main(["adapters", "list", str(scenario), "--model", "qwen2.5-coder-0.5b"]) == 0
    assert "0 adapters; none active" in capsys.readouterr().err
    assert main(["adapters", "activate", str(scenario), "second", "--model", "qwen2.5-coder-0.5b"]) == 2
    assert "trained on SmolLM2-135M-Instruct" in capsys.readouterr().err


@pytest.mark.model
@pytest.mark.process
def test_eval_saves_the_run_it_writes_as_json(sample, settings, tmp_path):
    from core.evaluation.eval_store import list_runs, load_run

    out = tmp_path / "runs" / "quick.json"
    result = _run(
        "eval", str(SAMPLE), "--modes", "base,rag", "--limit", "2", "--label", "cli quick look", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    run = json.loads(out.read_text())
    assert {"scenario", "created_at", "settings", "modes", "questions", "failures", "wall_s"} <= set(run)
    assert list(run["modes"]) == ["base", "rag"] and [q["id"] for q in run["questions"]] == ["q01", "q02"]
    assert run["settings"]["limit"] == 2 and run["settings"]["judge"] is None and list(run["failures"]) == ["rag"]
    assert run["modes"]["rag"]["answers"] == 2 and 0 <= run["modes"]["rag"]["accuracy"] <= 1
    # the table on stdout, one line per mode
    assert result.stdout.splitlines()[0].split()[:3] == ["mode", "accuracy", "freshness"]
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["base", "rag"]

    saved = next(r for r in list_runs(settings.data_dir, "lumen_support") if r.label == "cli quick look")
    assert f"Saved as run #{saved.id}" in result.stderr
    stored = load_run(settings.data_dir, saved.id)
    assert stored["questions"] == run["questions"] and stored["modes"] == run["modes"]


def test_eval_refuses_unknown_modes(capsys):
    for modes in ("base,magic", ","):
        refused = _refused(capsys, "eval", str(SAMPLE), "--modes", modes)
        assert "--modes takes modes from base,rag,finetuned,hybrid" in refused


def test_eval_refuses_unknown_kinds(capsys):
    assert "--kinds takes kinds from" in _refused(capsys, "eval", str(SAMPLE), "--modes", "base", "--kinds", "trivia")
