"""Reliability with real processes, real Chroma and real SQLite: one process at a time writes the embedded
store (another is told so, and still reads); kill -9 mid-ingest leaves every document whole or
absent; SQLite takes writers in threads and another process at once; a restart finds every row."""

import json
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from core import jobs
from core.evaluation.eval_store import list_runs, rename_run
from core.knowledge.knowledge_base import (
    EMBED_BATCH,
    KnowledgeBase,
    KnowledgeBaseBusy,
    chroma_client,
    split_text,
)
from core.knowledge.loaders import ParsedText
from tests.conftest import ROOT
from tests.support.db_worker import SCENARIO as DB_SCENARIO
from tests.support.db_worker import read_rows, settings_for, write_rows
from tests.support.kb_worker import BIG, CITIES, SCENARIO, SETTINGS, documents, store_state

pytestmark = pytest.mark.process

DOCS = documents()
EXPECTED = {name: len(split_text(text, SETTINGS.chunk_size, SETTINGS.chunk_overlap)) for name, text in DOCS}


class Worker:
    """A `python -m tests.support.kb_worker` process; `until` reads its reports up to the one wanted."""

    def __init__(self, data_dir, *args):
        self.stderr = open(data_dir.parent / f"{data_dir.name}-worker-{time.monotonic_ns()}.log", "w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.kb_worker", str(data_dir), *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.reports: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.reports.put(json.loads(line))
        self.reports.put(None)

    def until(self, event: str, limit_s: float = 300, **fields) -> dict:
        deadline = time.monotonic() + limit_s
        while True:
            try:
                report = self.reports.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                report = None
            if report is None:
                self.stderr.seek(0)
                raise AssertionError(f"the worker stopped before {event} {fields}: {self.stderr.read()[-3000:]}")
            if report["event"] == event and all(report.get(k) == v for k, v in fields.items()):
                return report

    def go_on(self) -> None:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL


@pytest.fixture
def start_worker(tmp_path):
    """Starts workers on tmp_path/data; any still running when the test ends (it failed) is killed."""
    started = []

    def start(*args) -> Worker:
        started.append(Worker(tmp_path / "data", *args))
        return started[-1]

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        worker.stderr.close()


def consistent(state: dict) -> bool:
    """Every committed document has exactly its chunks in Chroma, and nothing else is there."""
    return state["strays"] == 0 and state["chroma"] == state["manifest"] == {n: EXPECTED[n] for n in state["manifest"]}


@pytest.mark.model
def test_one_process_at_a_time_writes_the_store(lab, tmp_path, start_worker):
    data_dir = tmp_path / "data"
    holder = start_worker("--pause-in", str(BIG))
    pid = holder.until("opened")["pid"]
    holder.until("paused")  # mid-document: its first batch of chunks is in Chroma, nothing committed, lock held

    kb = KnowledgeBase(data_dir, SCENARIO, lab.embeddings, SETTINGS)  # opening leaves its chunks alone
    in_flight = store_state(data_dir, kb.client)
    assert in_flight["strays"] == EMBED_BATCH and len(in_flight["manifest"]) == BIG
    for write in (  # an upload or ingest, and a delete (a re-index takes the same lock)
        lambda: kb.add_text("porto.md", ParsedText("Lumen rents e-bikes in Porto.")),
        lambda: kb.delete_document(DOCS[0][0]),
    ):
        with pytest.raises(KnowledgeBaseBusy, match=rf"being written by another process \(pid {pid}\)"):
            write()
    # Reads go on: the committed documents answer, the one being written is not seen.
    hits = kb.search(f"Which depot keeps spare batteries in {CITIES[BIG]}?")
    assert len(hits) == SETTINGS.k and all(hit.name != DOCS[BIG][0] for hit in hits)
    assert kb.search(f"Which depot keeps spare batteries in {CITIES[2]}?")[0].name == DOCS[2][0]
    assert store_state(data_dir, kb.client) == in_flight  # the refused writes changed nothing

    holder.go_on()
    assert holder.until("committed", doc=BIG)["chunks"] == EXPECTED[DOCS[BIG][0]]  # whole: none tidied away
    holder.until("batch", doc=BIG + 1)
    holder.kill()  # a writer killed -9 leaves no stale lock: the next write goes through
    assert kb.add_text("porto.md", ParsedText("Lumen rents e-bikes in Porto.")) == 1
    state = store_state(data_dir, kb.client)
    assert state["manifest"].pop("porto.md") == state["chroma"].pop("porto.md") == 1
    # The kill lands just before or just after the next document's commit: that one is whole or absent
    # (its written chunks, if any, are never searched, and go when the store is next opened).
    assert state["strays"] in (0, EXPECTED[DOCS[BIG + 1][0]]) and consistent({**state, "strays": 0})
    assert len(state["manifest"]) in (BIG + 1, BIG + 2)
    assert store_state(data_dir, KnowledgeBase(data_dir, SCENARIO, lab.embeddings, SETTINGS).client)["strays"] == 0


@pytest.mark.model
def test_kill_9_mid_ingest_leaves_every_document_whole_or_absent(lab, tmp_path, start_worker):
    data_dir = tmp_path / "data"
    writer = start_worker("--pause-in", str(BIG))
    writer.until("paused")  # where a kill can land: one of the document's two batches written, not committed
    writer.kill()
    left = store_state(data_dir, chroma_client(data_dir / "chroma"))
    assert left["strays"] == EMBED_BATCH and consistent({**left, "strays": 0})

    kb = KnowledgeBase(data_dir, SCENARIO, lab.embeddings, SETTINGS)  # the next process to open the store
    state = store_state(data_dir, kb.client)
    assert consistent(state) and set(state["manifest"]) == {name for name, _ in DOCS[:BIG]}
    # Neither index shows the half-written document: not BM25 for its own city's name either.
    hits = kb.search(CITIES[BIG], SETTINGS)
    assert hits and all(hit.name != DOCS[BIG][0] and hit.lexical_rank is None for hit in hits)
    assert kb.search(f"Which depot keeps spare batteries in {CITIES[2]}?")[0].name == DOCS[2][0]
    for name, text in DOCS[BIG:]:  # the ingest goes on where it stopped
        kb.add_text(name, ParsedText(text))
    final = store_state(data_dir, kb.client)
    assert consistent(final) and final["manifest"] == EXPECTED
    assert kb.search(f"Which depot keeps spare batteries in {CITIES[BIG]}?")[0].name == DOCS[BIG][0]
    hits = kb.search(CITIES[BIG], SETTINGS)  # whole now, in both indexes
    assert all(hit.name == DOCS[BIG][0] and hit.lexical_rank for hit in hits)


THREADS, ROUNDS = 4, 20


def test_sqlite_takes_writers_from_threads_with_another_process_at_once(tmp_path):
    """Votes, evaluation runs and job rows, written as the app writes them, into a database that does not
    exist yet (the schema is made under contention too): nobody sees "database is locked", nothing is lost."""
    data_dir = tmp_path / "data"
    other = subprocess.Popen(
        [sys.executable, "-m", "tests.support.db_worker", str(data_dir), "write", "process", str(ROUNDS)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    start, errors = threading.Barrier(THREADS + 1), []

    def write(name: str) -> None:
        start.wait()
        try:
            write_rows(data_dir, name, ROUNDS)
        except Exception as error:  # collected: a thread's exception would otherwise only be printed
            errors.append(repr(error))

    try:
        assert other.stdout.readline() == "ready\n"
        threads = [threading.Thread(target=write, args=(f"thread{i}",)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        other.stdin.write("go\n")
        other.stdin.flush()
        start.wait()
        for thread in threads:
            thread.join(timeout=300)
        _, err = other.communicate(timeout=300)
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    assert errors == [] and other.returncode == 0, errors or err[-3000:]

    rows = read_rows(data_dir)
    writers = THREADS + 1
    assert len(rows["votes"]) == len({v["comparison_id"] for v in rows["votes"]}) == writers * ROUNDS
    assert len(rows["runs"]) == writers * ROUNDS
    assert len(rows["jobs"]) == writers * ROUNDS
    assert all(j["status"] == "succeeded" and j["step"] == 1 and len(j["history"]) == 1 for j in rows["jobs"])
    # They really wrote at once: in commit order, the writers take turns, and the other process's rows
    # are not one block before or after the threads' rows.
    order = [job["config"]["writer"] for job in sorted(rows["jobs"], key=lambda job: job["id"])]
    assert sum(a != b for a, b in zip(order, order[1:], strict=False)) >= 2 * writers
    first, last = order.index("process"), len(order) - 1 - order[::-1].index("process")
    assert any(writer != "process" for writer in order[first:last])


def test_a_restart_finds_every_row_as_it_was(tmp_path):
    data_dir = tmp_path / "data"
    write_rows(data_dir, "before", 3)
    rename_run(data_dir, list_runs(data_dir, DB_SCENARIO.name)[0].id, "renamed before the restart")
    settings = settings_for(data_dir)
    cancelled = jobs.record_queued_job(settings, "train", DB_SCENARIO, {"max_steps": 5})
    jobs.request_cancel(settings, cancelled)
    jobs.finish(settings, cancelled, "cancelled", "Cancelled before it started.")
    before = json.loads(json.dumps(read_rows(data_dir)))

    result = subprocess.run(
        [sys.executable, "-m", "tests.support.db_worker", str(data_dir), "read"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    after = json.loads(result.stdout)
    assert after == before
    assert (len(after["votes"]), len(after["runs"]), len(after["jobs"])) == (3, 3, 4)
    assert after["runs"][0]["label"] == "renamed before the restart" and after["jobs"][0]["status"] == "cancelled"
