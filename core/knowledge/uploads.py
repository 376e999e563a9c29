"""Checks a file from outside before the knowledge base sees it: a safe display name, a size limit,
and parsing in a child process with a time and memory bound, so a hostile PDF or zip bomb cannot
hang or exhaust the app. The uploaded name is only ever a label: files are written under names we
choose.
"""

import json
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import unicodedata
from pathlib import Path

from core.knowledge.loaders import SUPPORTED_SUFFIXES, ParsedText, UnreadableDocument

_UNSAFE = re.compile(r"[^\w.\- ()]+")
MAX_NAME_CHARS = 120


def safe_document_name(raw: str) -> str:
    """The last path component, NFC, with odd characters replaced: 'a/../b<c>.md' -> 'b_c_.md'."""
    name = unicodedata.normalize("NFC", raw.replace("\\", "/")).rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    stem, suffix = os.path.splitext(name)
    stem = stem.strip(" .") or "document"
    return stem[: MAX_NAME_CHARS - len(suffix)] + suffix.lower()


def parse_upload(
    data: bytes, raw_name: str, max_bytes: int, timeout_s: float, memory_mb: int
) -> tuple[str, ParsedText]:
    """(safe name, parsed text) for an uploaded file; raises UnreadableDocument with the reason."""
    name = safe_document_name(raw_name)
    suffix = Path(name).suffix
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableDocument(f"{name}: unsupported type; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    if len(data) > max_bytes:
        raise UnreadableDocument(f"{name}: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit")
    if not data.strip():
        raise UnreadableDocument(f"{name}: the file is empty")
    with tempfile.TemporaryDirectory(prefix="lab-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        return name, parse_bounded(path, name, timeout_s, memory_mb)


def parse_bounded(path: Path, name: str, timeout_s: float, memory_mb: int) -> ParsedText:
    """parse_file in the parse worker process: stopped after timeout_s, at most memory_mb of memory."""
    with _workers_lock:
        worker = _workers.get(memory_mb)
        if worker is None:
            worker = _workers[memory_mb] = ParseWorker(memory_mb)
    return worker.parse(path, name, timeout_s)


class ParseWorker:
    """A long-lived `python -m core.knowledge.parse_worker` (the parsers are imported once, ~2 s), one file at a
    time. A file that hangs it or exhausts its memory gets it killed; the next file starts a new one."""

    def __init__(self, memory_mb: int):
        self.memory_mb = memory_mb
        self.process: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def parse(self, path: Path, name: str, timeout_s: float) -> ParsedText:
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self._start()
            self.process.stdin.write(json.dumps({"path": str(path), "name": name}) + "\n")
            self.process.stdin.flush()
            reply = self._read_line(timeout_s)
            if not reply:
                timed_out = self.process.poll() is None
                self._stop()
                if timed_out:
                    raise UnreadableDocument(f"{name}: parsing took longer than {timeout_s:.0f} s and was stopped")
                raise UnreadableDocument(
                    f"{name}: parsing used more than {self.memory_mb} MB or crashed, and was stopped"
                )
        result = json.loads(reply)
        if "error" in result:
            raise UnreadableDocument(result["error"])
        return ParsedText(result["text"], result["notes"])

    def _start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "core.knowledge.parse_worker", str(self.memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        if self._read_line(WORKER_START_TIMEOUT_S) != READY + "\n":  # start-up is not charged to a file
            self._stop()
            raise UnreadableDocument("the document parser could not start; see the server log")

    def _read_line(self, timeout_s: float) -> str:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        return self.process.stdout.readline() if ready else ""

    def _stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self.process = None


READY = "ready"
WORKER_START_TIMEOUT_S = 120
_workers: dict[int, ParseWorker] = {}
_workers_lock = threading.Lock()
