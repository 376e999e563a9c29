"""The code's layout is a rule, not a habit: the import contracts of .importlinter hold, and the words
every layer speaks (modes, Answer, Decoding) come without the model stack."""

import subprocess
import sys

import pytest
from importlinter.cli import lint_imports

from tests.conftest import ROOT


def test_the_import_contracts_hold(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    status = lint_imports(no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert status == 0, report
    assert "0 broken" in report


@pytest.mark.process
def test_the_command_line_starts_without_the_model_stack():
    probe = "import sys, core.cli, core.common.vocabulary; print(sorted({'torch', 'chromadb', 'transformers'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
