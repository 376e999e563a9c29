"""Does retrieval find the chunk that names an exact identifier? Embeddings alone against hybrid.

For every error code documented in the Relay Cloud scenario (RC-4031, E1207, ...), the question "I keep
getting CODE, what does it mean and how do I fix it?" is searched with the default settings (k=3),
once with embeddings only and once with BM25 fused in (core/knowledge/lexical_index.py). Reported per code: the
place of the first retrieved chunk that contains the code (None: not in the top k).
`python -m bench.identifier_retrieval` (~30 s). Prints a table and writes the "identifier_retrieval"
section of bench/results.json.
"""

import json
import re
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.run_info import run_info
from core.common.settings import Settings
from core.engine.embeddings import BundledEmbeddings
from core.knowledge.knowledge_base import KnowledgeBase
from core.knowledge.manifest import RetrievalSettings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "scenarios" / "relay_cloud" / "docs"
CODE = re.compile(r"\b(?:RC-\d{4}|E\d{4})\b")


def first_place(hits, code: str) -> int | None:
    return next((place for place, hit in enumerate(hits, 1) if code in hit.text), None)


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-ids-"))
    settings = Settings(data_dir=data_dir)
    knowledge_base = KnowledgeBase(data_dir, "relay", BundledEmbeddings(settings), RetrievalSettings())
    knowledge_base.sync_folder(DOCS)
    codes = sorted(set(CODE.findall(" ".join(p.read_text() for p in DOCS.iterdir()))))
    hybrid = knowledge_base.settings
    dense = replace(hybrid, lexical=False)
    rows = []
    for code in codes:
        question = f"I keep getting {code}, what does it mean and how do I fix it?"
        rows.append(
            {
                "code": code,
                "embeddings_only": first_place(knowledge_base.search(question, dense), code),
                "hybrid": first_place(knowledge_base.search(question, hybrid), code),
            }
        )
    print(f"{'code':<9}{'embeddings only':>17}{'hybrid':>8}")
    for row in rows:
        print(f"{row['code']:<9}{row['embeddings_only'] or '-':>17}{row['hybrid'] or '-':>8}")
    first = {kind: sum(row[kind] == 1 for row in rows) for kind in ("embeddings_only", "hybrid")}
    print(f"first place: embeddings only {first['embeddings_only']}/{len(rows)}, hybrid {first['hybrid']}/{len(rows)}")
    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    section = {**run_info(), "k": hybrid.k, "rows": rows, "first_place": first}
    out.write_text(json.dumps({**existing, "identifier_retrieval": section}, indent=2) + "\n")


if __name__ == "__main__":
    main()
