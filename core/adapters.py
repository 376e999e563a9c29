"""The adapter registry: LoRA adapters per scenario on disk, their metadata, and which one is active.

Layout: DATA/adapters/SCENARIO/NAME/{adapter_config.json, adapter_model.safetensors, lab_adapter.json}
and DATA/adapters/SCENARIO/ACTIVE naming the adapter the fine-tuned and hybrid modes use. A new
adapter is written to a staging folder and renamed into place only when complete; ACTIVE is
replaced atomically, so a reader always sees either the old adapter or the new one.
"""

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

METADATA_FILE = "lab_adapter.json"
ACTIVE_FILE = "ACTIVE"


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


def list_adapters(data_dir: Path, scenario: str) -> list[AdapterInfo]:
    root = adapters_dir(data_dir, scenario)
    found = (
        [_read(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    )
    return [a for a in found if a]


def active_adapter(data_dir: Path, scenario: str) -> AdapterInfo | None:
    pointer = adapters_dir(data_dir, scenario) / ACTIVE_FILE
    try:
        name = pointer.read_text().strip()
    except OSError:
        return None
    return _read(adapters_dir(data_dir, scenario) / name) if name else None


def set_active(data_dir: Path, scenario: str, name: str) -> None:
    root = adapters_dir(data_dir, scenario)
    if _read(root / name) is None:
        raise ValueError(f"No adapter named {name!r} for scenario {scenario!r}")
    temporary = root / f".{ACTIVE_FILE}.tmp"
    temporary.write_text(name)
    os.replace(temporary, root / ACTIVE_FILE)


def publish(staged: Path, data_dir: Path, scenario: str, name: str, activate: bool = True) -> AdapterInfo:
    """Moves a complete staged adapter into place under `name` and makes it active."""
    target = adapters_dir(data_dir, scenario) / name
    os.rename(staged, target)  # atomic on one filesystem; fails rather than overwrite
    if activate:
        set_active(data_dir, scenario, name)
    info = _read(target)
    assert info is not None, f"published adapter {target} is incomplete"
    return info
