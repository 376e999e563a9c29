"""The README's screenshot script (docs/screenshots.py): it works on a copy of the data folder, and it
draws a page into a PNG in real Chromium."""

import importlib.util
import os
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "docs" / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_copy_links_the_models_and_leaves_the_data_folder_alone(tmp_path):
    source, copy = tmp_path / "data", tmp_path / "copy"
    (source / "models" / "m").mkdir(parents=True)
    (source / "adapters" / "demo").mkdir(parents=True)
    (source / "adapters" / "demo" / "ACTIVE.m").write_text("v1")
    (source / "logs").mkdir()
    (source / "jobs.lock").write_text("")
    _script().copy_data(source, copy)
    assert (copy / "models").is_symlink() and (copy / "models").resolve() == (source / "models").resolve()
    assert (copy / "adapters" / "demo" / "ACTIVE.m").read_text() == "v1"
    assert not (copy / "logs").exists() and not (copy / "jobs.lock").exists()
    (copy / "adapters" / "demo" / "ACTIVE.m").write_text("v2")  # what the shots change stays in the copy
    assert (source / "adapters" / "demo" / "ACTIVE.m").read_text() == "v1"


@pytest.mark.model
@pytest.mark.process
@pytest.mark.browser
def test_the_overview_is_saved_as_a_png(tmp_path):
    data_dir = Path(os.environ["LAB_DATA_DIR"])  # the suite's, with the converted model linked
    assert _script().main(["--only", "overview", "--data-dir", str(data_dir), "--out", str(tmp_path)]) == 0
    picture = (tmp_path / "overview.png").read_bytes()
    assert picture.startswith(b"\x89PNG") and int.from_bytes(picture[16:20], "big") == 1400  # the viewport's width
