"""The adapter registry: activate, rename and delete, with the active pointer kept right."""

import shutil

import pytest

from core.common.model_catalog import SMOLLM2
from core.training.adapters import (
    ActiveAdapterError,
    active_adapter,
    delete_adapter,
    friendly_name,
    list_adapters,
    publish,
    rename_adapter,
    set_active,
    staging_dir,
)

pytestmark = pytest.mark.model


@pytest.fixture
def registry(lab, sample, tmp_path):
    """Three copies of the sample's quick adapter, published in order; the last is active."""
    source = active_adapter(lab.settings.data_dir, sample.name, SMOLLM2.name).path
    for name in ("a", "b", "c"):
        staged = staging_dir(tmp_path, "demo")
        shutil.copytree(source, staged, dirs_exist_ok=True)
        publish(staged, tmp_path, "demo", name)
    return tmp_path


def test_rename_keeps_the_active_pointer(registry):
    rename_adapter(registry, "demo", "c", "final")
    assert active_adapter(registry, "demo", SMOLLM2.name).name == "final"
    assert [a.name for a in list_adapters(registry, "demo")] == ["a", "b", "final"]
    with pytest.raises(ValueError, match="already exists"):
        rename_adapter(registry, "demo", "a", "b")
    with pytest.raises(ValueError, match="adapter name"):
        rename_adapter(registry, "demo", "a", "../escape")


def test_deleting_the_active_adapter_needs_confirmation(registry):
    with pytest.raises(ActiveAdapterError):
        delete_adapter(registry, "demo", "c")
    assert [a.name for a in list_adapters(registry, "demo")] == ["a", "b", "c"]
    assert delete_adapter(registry, "demo", "a").name == "c"  # not active: no confirmation needed
    now_active = delete_adapter(registry, "demo", "c", confirm_active=True)
    assert now_active.name == "b" and active_adapter(registry, "demo", SMOLLM2.name).name == "b"
    set_active(registry, "demo", "b")
    assert delete_adapter(registry, "demo", "b", confirm_active=True) is None
    assert active_adapter(registry, "demo", SMOLLM2.name) is None and list_adapters(registry, "demo") == []
    assert not [p for p in (registry / "adapters" / "demo").iterdir() if p.name.startswith(".")]


def test_an_adapter_named_by_its_training_time_reads_as_that_time():
    assert friendly_name("lumen_support-20261128-022259") == "trained 28 Nov 2026, 02:22 UTC"
    assert friendly_name("quick") == "quick"  # a chosen name stays
    assert friendly_name("v-20261328-022259") == "v-20261328-022259"  # no 13th month: not a time
