"""The freshness test: change one fact in a document, re-index it, and see which modes now state it.

RAG learns the change in the seconds a re-index takes; an adapter learned its facts in training and
keeps them until it is trained again. The edit is recorded (SQLite `kb_edits`), so Undo restores the
document's earlier text even after a reload.
"""

import re
import time
from dataclasses import dataclass

from core.common import db
from core.knowledge.knowledge_base import KnowledgeBase
from core.knowledge.loaders import ParsedText
from core.text.facts import extract_facts
from core.text.sentences import split_sentences

_WORD = re.compile(r"[A-Za-z][\w'-]{3,}")


@dataclass(frozen=True)
class FreshnessEdit:
    id: int
    scenario: str
    name: str
    original_sha: str
    edited_sha: str
    old_sentence: str
    new_sentence: str
    reindex_s: float
    created_at: float
    undone_at: float | None


def sentences(text: str) -> list[str]:
    """The document's sentences worth editing: those stating a checkable fact first."""
    found = [s.strip(" #*-") for s in split_sentences(text)]
    found = [s for s in dict.fromkeys(found) if 20 <= len(s) <= 400]
    return sorted(found, key=lambda s: not extract_facts(s))  # stable: document order within each group


def new_fact_terms(old_sentence: str, new_sentence: str) -> list[str]:
    """What an answer must contain to have picked up the edit: the facts the new sentence adds (folded,
    as fact keys), or, when it adds none, its words that the old sentence lacked."""
    old_keys = {f.key for f in extract_facts(old_sentence)}
    added = [f.key for f in extract_facts(new_sentence) if f.key not in old_keys]
    if added:
        return added
    old_words = {w.lower() for w in _WORD.findall(old_sentence)}
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(new_sentence) if w.lower() not in old_words))


def states_fact(answer: str, terms: list[str]) -> bool:
    if not terms:
        return False
    keys = {f.key for f in extract_facts(answer)}
    lowered = answer.lower()
    return all(term in keys if ":" in term else re.search(rf"\b{re.escape(term)}\b", lowered) for term in terms)


def describe_terms(terms: list[str], new_sentence: str) -> str:
    """The terms as the new sentence writes them ("$39", not the folded key "money:39")."""
    written = {f.key: f.text for f in extract_facts(new_sentence)}
    return ", ".join(written.get(term, term) for term in terms)


def apply_edit(knowledge_base: KnowledgeBase, name: str, old_sentence: str, new_sentence: str) -> FreshnessEdit:
    """Replaces old_sentence (or, when it is empty, appends new_sentence) and re-indexes the document."""
    new_sentence = new_sentence.strip()
    if not new_sentence:
        raise ValueError("Type the new sentence first.")
    text = knowledge_base.document_text(name)
    if old_sentence and old_sentence not in text:
        raise ValueError(f"That sentence is no longer in {name}; pick it again.")
    if old_sentence == new_sentence:
        raise ValueError("The new sentence is the same as the old one.")
    edited = text.replace(old_sentence, new_sentence, 1) if old_sentence else f"{text}\n\n{new_sentence}"
    original_sha = knowledge_base.manifest.document(name).text_sha
    started = time.perf_counter()
    knowledge_base.add_text(name, ParsedText(edited))
    reindex_s = round(time.perf_counter() - started, 3)
    edited_sha = knowledge_base.manifest.document(name).text_sha
    with db.connect(knowledge_base.manifest.data_dir) as connection:
        cursor = connection.execute(
            """INSERT INTO kb_edits (scenario, name, original_sha, edited_sha, old_sentence, new_sentence, reindex_s, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                knowledge_base.scenario,
                name,
                original_sha,
                edited_sha,
                old_sentence,
                new_sentence,
                reindex_s,
                time.time(),
            ),
        )
        edit_id = cursor.lastrowid
    return _edit(knowledge_base, edit_id)


def open_edits(knowledge_base: KnowledgeBase) -> list[FreshnessEdit]:
    """Edits not yet undone, newest first."""
    with db.connect(knowledge_base.manifest.data_dir) as connection:
        rows = connection.execute(
            "SELECT * FROM kb_edits WHERE scenario = ? AND undone_at IS NULL ORDER BY id DESC",
            (knowledge_base.scenario,),
        ).fetchall()
    return [FreshnessEdit(**dict(row)) for row in rows]


def undo_edit(knowledge_base: KnowledgeBase, edit_id: int) -> FreshnessEdit:
    """Restores the document as it was before the edit (and before any later edit of it)."""
    edit = _edit(knowledge_base, edit_id)
    later = [e for e in open_edits(knowledge_base) if e.name == edit.name and e.id > edit.id]
    knowledge_base.restore_text(edit.name, edit.original_sha)
    with db.connect(knowledge_base.manifest.data_dir) as connection:
        connection.executemany(
            "UPDATE kb_edits SET undone_at = ? WHERE id = ?", [(time.time(), e.id) for e in [edit, *later]]
        )
    return edit


def _edit(knowledge_base: KnowledgeBase, edit_id: int) -> FreshnessEdit:
    with db.connect(knowledge_base.manifest.data_dir) as connection:
        row = connection.execute(
            "SELECT * FROM kb_edits WHERE id = ? AND scenario = ?", (edit_id, knowledge_base.scenario)
        ).fetchone()
    if row is None:
        raise KeyError(f"no edit {edit_id} in {knowledge_base.scenario}")
    return FreshnessEdit(**dict(row))
