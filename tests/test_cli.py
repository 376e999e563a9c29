"""The command line, run as a real subprocess against the test data dir."""

import json
import subprocess
import sys

from tests.conftest import ROOT, SAMPLE


def _run(*args):
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ask_json_prints_the_answer_object(sample):
    result = _run("ask", "--scenario", str(SAMPLE), "--mode", "rag", "--json", "What is the support email?")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["mode"] == "rag" and answer["text"]
    assert answer["sources"] and {"name", "score", "text"} <= set(answer["sources"][0])
    assert answer["completion_tokens"] > 0 and answer["prompt_tokens"] > 0


def test_ingest_again_adds_nothing(sample):
    result = _run("ingest", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    assert "0 added or changed" in result.stderr


def test_validate_reports_problems_with_exit_code(tmp_path):
    assert _run("validate", str(SAMPLE)).returncode == 0
    (tmp_path / "scenario.toml").write_text('name = "Bad Name"\n')
    result = _run("validate", str(tmp_path))
    assert result.returncode == 1 and "lower-case" in result.stdout


def test_bad_scenario_is_a_clear_error():
    result = _run("ask", "--scenario", "/nonexistent", "hello")
    assert result.returncode == 2 and "no scenario.toml" in result.stderr and "Traceback" not in result.stderr


def test_compare_json_prints_every_answer_and_the_batch_time(sample):
    result = _run(
        "compare", "--scenario", str(SAMPLE), "--modes", "base,rag,hybrid", "--json", "What is the support email?"
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert list(output["answers"]) == ["base", "rag", "hybrid"]
    assert output["wall_s"] > 0 and output["decoding"]["max_new_tokens"] == 24
    assert output["answers"]["rag"]["sources"] and not output["answers"]["base"]["sources"]
    assert output["answers"]["hybrid"]["adapter"] and output["answers"]["base"]["adapter"] is None


def test_compare_needs_two_known_modes():
    for modes in ("base", "base,base", "base,magic"):
        result = _run("compare", "--scenario", str(SAMPLE), "--modes", modes, "hi")
        assert result.returncode == 2 and "two or more different modes" in result.stderr


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
