"""The adapter registry: LoRA adapters per scenario on disk, their metadata, and which one is active.

Layout: DATA/adapters/SCENARIO/NAME/{adapter_config.json, adapter_model.safetensors, lab_adapter.json}
and DATA/adapters/SCENARIO/ACTIVE.<base model> naming the adapter the fine-tuned and hybrid modes use
with that base model. An adapter belongs to the base model it was trained on (`base_model` in its
metadata): listing and activating take that model, so an adapter is never offered to another one.
A new adapter is written to a staging folder and renamed into place only when complete; the pointer
is replaced atomically, so a reader always sees either the old adapter or the new one.
"""

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

METADATA_FILE = "lab_adapter.json"
ACTIVE_FILE = "ACTIVE"
ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class AdapterNotReady(RuntimeError):
    """The mode needs a fine-tuned adapter and the scenario has none yet (or not the one named)."""


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: Path
    metadata: dict

    @property
    def engine_name(self) -> str:
        """Name under which the engine loads it: unique across scenarios."""
        return f"{self.metadata.get('scenario', 'x')}--{self.name}"

    @property
    def base_model(self) -> str:
        return str(self.metadata.get("base_model", ""))


_TRAINED_AT = re.compile(r"-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})\d{2}$")
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def friendly_name(name: str) -> str:
    """An adapter's name for people. One named by its training time, as training names it unless told
    otherwise (`lumen_support-20261128-022259`), reads "trained 28 Nov 2026, 02:22 UTC"; a chosen name stays."""
    found = _TRAINED_AT.search(name)
    if not found or not 1 <= int(found[2]) <= 12:
        return name
    year, month, day, hour, minute = found.groups()
    return f"trained {int(day)} {_MONTHS[int(month) - 1]} {year}, {hour}:{minute} UTC"


def adapters_dir(data_dir: Path, scenario: str) -> Path:
    return Path(data_dir) / "adapters" / scenario


def staging_dir(data_dir: Path, scenario: str) -> Path:
    root = adapters_dir(data_dir, scenario)
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=root))


def _read(path: Path) -> AdapterInfo | None:
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not (path / "adapter_config.json").exists():
        return None
    return AdapterInfo(name=path.name, path=path, metadata=metadata)


def list_adapters(data_dir: Path, scenario: str, base_model: str | None = None) -> list[AdapterInfo]:
    """The scenario's adapters (only those trained on `base_model`, when given), by name."""
    root = adapters_dir(data_dir, scenario)
    found = (
        [_read(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    )
    return [a for a in found if a and base_model in (None, a.base_model)]


def _pointer(data_dir: Path, scenario: str, base_model: str) -> Path:
    return adapters_dir(data_dir, scenario) / f"{ACTIVE_FILE}.{re.sub(r'[^A-Za-z0-9._-]', '_', base_model)}"


def active_adapter(data_dir: Path, scenario: str, base_model: str) -> AdapterInfo | None:
    """The adapter fine-tuned and hybrid use with `base_model`. A data folder from before adapters had
    a base model each has one pointer (ACTIVE): it still counts for the model its adapter was trained on."""
    for pointer in (_pointer(data_dir, scenario, base_model), adapters_dir(data_dir, scenario) / ACTIVE_FILE):
        try:
            name = pointer.read_text().strip()
        except OSError:
            continue
        adapter = _read(adapters_dir(data_dir, scenario) / name) if name else None
        if adapter and adapter.base_model == base_model:
            return adapter
    return None


def set_active(data_dir: Path, scenario: str, name: str) -> None:
    """Makes `name` the active adapter of the base model it was trained on."""
    root = adapters_dir(data_dir, scenario)
    adapter = _read(root / name)
    if adapter is None:
        raise ValueError(f"No adapter named {name!r} for scenario {scenario!r}")
    temporary = root / f".{ACTIVE_FILE}.tmp"
    temporary.write_text(name)
    os.replace(temporary, _pointer(data_dir, scenario, adapter.base_model))


def publish(staged: Path, data_dir: Path, scenario: str, name: str, activate: bool = True) -> AdapterInfo:
    """Moves a complete staged adapter into place under `name` and makes it active."""
    target = adapters_dir(data_dir, scenario) / check_name(name)
    os.rename(staged, target)  # atomic on one filesystem; fails rather than overwrite
    if activate:
        set_active(data_dir, scenario, name)
    info = _read(target)
    assert info is not None, f"published adapter {target} is incomplete"
    return info


def check_name(name: str) -> str:
    if not ADAPTER_NAME.match(name or ""):
        raise ValueError("An adapter name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    return name


def rename_adapter(data_dir: Path, scenario: str, old: str, new: str) -> AdapterInfo:
    """Renames an adapter; the active pointer follows it."""
    root = adapters_dir(data_dir, scenario)
    if _read(root / old) is None:
        raise ValueError(f"No adapter named {old!r} for scenario {scenario!r}")
    if (root / check_name(new)).exists():
        raise ValueError(f"An adapter named {new!r} already exists.")
    base_model = _read(root / old).base_model
    was_active = (active := active_adapter(data_dir, scenario, base_model)) is not None and active.name == old
    os.rename(root / old, root / new)
    if was_active:
        set_active(data_dir, scenario, new)
    return _read(root / new)


class ActiveAdapterError(ValueError):
    """Deleting the active adapter needs an explicit confirmation."""


def delete_adapter(data_dir: Path, scenario: str, name: str, confirm_active: bool = False) -> AdapterInfo | None:
    """Deletes an adapter and returns the one now active for its base model. Deleting the active adapter
    needs `confirm_active`; the newest remaining adapter of the same base model then becomes active (or none)."""
    root = adapters_dir(data_dir, scenario)
    doomed_info = _read(root / name)
    if doomed_info is None:
        raise ValueError(f"No adapter named {name!r} for scenario {scenario!r}")
    base_model = doomed_info.base_model
    active = active_adapter(data_dir, scenario, base_model)
    was_active = active is not None and active.name == name
    if was_active and not confirm_active:
        raise ActiveAdapterError(f"{name} is the active adapter: confirm to delete it.")
    doomed = Path(tempfile.mkdtemp(prefix=".deleting-", dir=root))
    os.rename(root / name, doomed / name)  # gone from the registry at once; the files follow
    shutil.rmtree(doomed, ignore_errors=True)
    if not was_active:
        return active
    remaining = sorted(list_adapters(data_dir, scenario, base_model), key=lambda a: a.metadata.get("created_at", ""))
    if remaining:
        set_active(data_dir, scenario, remaining[-1].name)
        return remaining[-1]
    _pointer(data_dir, scenario, base_model).unlink(missing_ok=True)
    return None
