"""Times the knowledge base: ingest throughput, search latency at 1k and 20k chunks, re-indexing the sample.

Synthetic support-policy documents (seeded sentences from word lists, 100 chunks of ~440 characters
each) go into one throw-away store, grown from 1k to 20k chunks. At each size, ~200 varied queries are
searched by similarity and by MMR (k=3, fetch_k=20, min_score 0), query embedding included, and
embedded alone; the searches and the embeddings interleave, so machine noise hits them alike. A
per-step breakdown of one search (query embedding, manifest reads, Chroma query) says where time goes.
Then the sample scenario is re-indexed to 400/60 and back to 500/80, three times. Prints a table and
adds a "knowledge_base" section to bench/results.json. `--quick` stops at 1k and 3k chunks.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.run_info import run_info
from core.common.scenario import load_scenario
from core.common.settings import Settings
from core.knowledge.knowledge_base import KnowledgeBase
from core.knowledge.loaders import ParsedText
from core.knowledge.manifest import RetrievalSettings
from core.lab import Lab

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "lumen_support"
QUERIES = 200
REINDEX_RUNS = 3
TARGET_P95_MS = 50.0  # similarity search at the largest size
TARGET_REINDEX_S = 10.0
SIMILARITY = RetrievalSettings(k=3, min_score=0.0)
MMR = RetrievalSettings(search_type="mmr", k=3, min_score=0.0)

PRODUCTS = ["Lumen Aero", "Lumen Trail", "Lumen City", "Lumen Cargo", "Lumen Fold", "Lumen Kids", "Lumen Gravel"]
PARTS = ["battery", "motor", "display", "charger", "brake pads", "chain", "rear rack", "frame", "tyres", "lights"]
REGIONS = ["Germany", "France", "the Netherlands", "Spain", "Italy", "Austria", "Belgium", "Poland", "Denmark"]
PLANS = ["Lumen Shield Basic", "Lumen Shield Plus", "Lumen Shield Pro", "the standard warranty", "a business lease"]
ACTIONS = ["return", "exchange", "repair", "replace", "refund", "service", "cancel", "upgrade"]
CONDITIONS = [
    "the original receipt is included",
    "the seal on the packaging is unbroken",
    "the odometer shows fewer than {n} km",
    "the damage was not caused by a crash",
    "the order number starts with LM-{n}",
    "the bike was registered within {n} days",
    "a service partner has confirmed the fault",
    "the customer paid by card or bank transfer",
]
TEMPLATES = [
    "Customers in {region} who bought the {product} can {action} it within {n} days if {condition}.",
    "The {part} of the {product} is covered by {plan} for {n} months from the delivery date.",
    "Under {plan}, a {part} fault on the {product} is fixed free of charge once per {n} months.",
    "Shipping a {part} for the {product} to {region} costs {price} euros and takes {n} working days.",
    "If the {part} fails after {n} charge cycles, support will {action} it when {condition}.",
    "A {product} ordered from {region} can be collected at a partner shop after {n} days.",
    "Refunds for the {product} reach the original payment method within {n} days; fees of {price} euros apply.",
    "Service partners in {region} {action} the {part} of any {product} in about {n} hours.",
    "Orders above {price} euros ship free to {region}, except the {product}, which ships for {n} euros.",
    "{plan} does not cover a {part} damaged by water unless {condition}.",
]
QUESTIONS = [
    "How many days do I have to {action} my {product} in {region}?",
    "Is the {part} of the {product} covered by {plan}?",
    "How much does shipping a {part} to {region} cost?",
    "What happens if my {part} fails after {n} charge cycles?",
    "Can I {action} a {product} that I bought {n} days ago?",
    "When does my refund for the {product} arrive?",
    "Where can I get the {part} of my {product} serviced in {region}?",
    "Does {plan} cover water damage to the {part}?",
    "Is shipping free to {region} for orders above {price} euros?",
    "How long does a {part} repair take?",
]


def fill(template: str, rng: random.Random) -> str:
    n = rng.randint(2, 900)
    condition = rng.choice(CONDITIONS).format(n=n)
    return template.format(
        region=rng.choice(REGIONS),
        product=rng.choice(PRODUCTS),
        part=rng.choice(PARTS),
        plan=rng.choice(PLANS),
        action=rng.choice(ACTIONS),
        condition=condition,
        n=n,
        price=f"{rng.randint(5, 400)}.{rng.randint(0, 99):02d}",
    )


def synthetic_document(rng: random.Random, paragraphs: int = 100) -> str:
    """A policy document: titled paragraphs of 4 sentences (~440 characters, one chunk each)."""
    out = []
    for index in range(paragraphs):
        title = f"## {rng.choice(PRODUCTS)} {rng.choice(PARTS)}, section {index + 1}"
        out.append(title + "\n" + " ".join(fill(rng.choice(TEMPLATES), rng) for _ in range(4)))
    return "\n\n".join(out)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def grow(kb: KnowledgeBase, target: int, rng: random.Random, state: dict) -> dict:
    """Adds synthetic documents until the store holds `target` chunks; the throughput of this step."""
    added, wall = 0, 0.0
    while state["chunks"] < target:
        text = synthetic_document(rng)
        started = time.perf_counter()
        chunks = kb.add_text(f"policy_{state['documents']:05d}.md", ParsedText(text))
        wall += time.perf_counter() - started
        state["chunks"] += chunks
        state["documents"] += 1
        added += chunks
    return {"chunks_added": added, "wall_s": round(wall, 1), "chunks_per_s": round(added / wall, 1)}


def latency(kb: KnowledgeBase, queries: list[str]) -> dict:
    """p50/p95 in ms of search (similarity, MMR), query embedding alone, and the steps of one search."""
    embeddings = kb.embeddings
    for query in queries[:5]:  # warm-up
        kb.search(query, SIMILARITY)
        kb.search(query, MMR)
    times = {
        "similarity": [],
        "mmr": [],
        "embed_query": [],
        "open_collection": [],
        "current_texts": [],
        "chroma_query": [],
    }
    for query in queries:
        times["similarity"].append(timed(lambda q=query: kb.search(q, SIMILARITY)))
        times["mmr"].append(timed(lambda q=query: kb.search(q, MMR)))
        started = time.perf_counter()
        vector = embeddings.embed_query(query)
        times["embed_query"].append(time.perf_counter() - started)
        # The rest of KnowledgeBase.search, step by step: the live collection (a manifest read of
        # the generation, then Chroma's get_or_create), the current texts (a manifest read of every
        # document row), then Chroma's count and nearest-neighbour query.
        started = time.perf_counter()
        collection = kb._collection()
        times["open_collection"].append(time.perf_counter() - started)
        started = time.perf_counter()
        kb._current_shas()
        times["current_texts"].append(time.perf_counter() - started)
        started = time.perf_counter()
        collection.query(
            query_embeddings=[vector],
            n_results=min(collection.count(), SIMILARITY.k + 8),
            include=["documents", "metadatas", "distances"],
        )
        times["chroma_query"].append(time.perf_counter() - started)
    return {
        name: {"p50_ms": round(percentile(v, 50) * 1000, 1), "p95_ms": round(percentile(v, 95) * 1000, 1)}
        for name, v in times.items()
    }


def embed_only_rate(kb: KnowledgeBase, rng: random.Random) -> float:
    """Chunks/s of embed_documents alone, in ingest-sized batches of one document's chunks."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=SIMILARITY.chunk_size, chunk_overlap=SIMILARITY.chunk_overlap)
    chunks = splitter.split_text(synthetic_document(rng))
    wall = timed(lambda: [kb.embeddings.embed_documents(chunks[i : i + 64]) for i in range(0, len(chunks), 64)])
    return round(len(chunks) / wall, 1)


def reindex_sample(lab: Lab) -> dict:
    scenario = load_scenario(SCENARIO)
    kb = lab.knowledge_base(scenario)
    lab.ensure_ingested(scenario)
    runs = {"400/60": [], "500/80": []}
    for _ in range(REINDEX_RUNS):
        smaller = kb.reindex(400, 60)
        runs["400/60"].append(smaller.seconds)
        back = kb.reindex(500, 80)
        runs["500/80"].append(back.seconds)
    return {
        "documents": len(kb.documents()),
        "chunks": {"400/60": smaller.chunks_after, "500/80": back.chunks_after},
        "runs": REINDEX_RUNS,
        "median_s": {size: round(statistics.median(s), 2) for size, s in runs.items()},
        "all_s": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 3k chunks instead of 1k and 20k")
    args = parser.parse_args()
    sizes = (1000, 3000) if args.quick else (1000, 20000)

    data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    if (ROOT / ".lab" / "models").is_dir():
        (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    settings = Settings(data_dir=data_dir)
    lab = Lab(settings)
    load_before = os.getloadavg()[0]
    kb = KnowledgeBase(data_dir, "bench_kb", lab.embeddings, RetrievalSettings())
    rng = random.Random(0)
    queries = [fill(rng.choice(QUESTIONS), rng) for _ in range(QUERIES)]

    state = {"chunks": 0, "documents": 0}
    levels = {}
    for size in sizes:
        ingest = grow(kb, size, rng, state)
        levels[str(size)] = {
            "chunks": state["chunks"],
            "documents": state["documents"],
            "ingest": ingest,
            "latency": latency(kb, queries),
        }
    embed_rate = embed_only_rate(kb, rng)
    total_chunks = sum(level["ingest"]["chunks_added"] for level in levels.values())
    total_wall = sum(level["ingest"]["wall_s"] for level in levels.values())
    reindex = reindex_sample(lab)

    largest = levels[str(sizes[-1])]
    p95 = largest["latency"]["similarity"]["p95_ms"]
    reindex_s = max(reindex["median_s"].values())
    results = {
        **run_info(),
        "load_average_1m": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),  # PASSIVE: no stalls when cores are busy
        "quick": args.quick,
        "queries": QUERIES,
        "ingest_chunks_per_s_overall": round(total_chunks / total_wall, 1),
        "embed_documents_only_chunks_per_s": embed_rate,
        "levels": levels,
        "sample_reindex": reindex,
        "targets": {
            f"similarity p95 at {sizes[-1]} chunks <= {TARGET_P95_MS:g} ms": p95 <= TARGET_P95_MS,
            f"sample re-index <= {TARGET_REINDEX_S:g} s": reindex_s <= TARGET_REINDEX_S,
        },
    }
    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**existing, "knowledge_base": results}, indent=2) + "\n")
    shutil.rmtree(data_dir, ignore_errors=True)  # ~120 MB at 20k chunks

    print(f"Knowledge base, {QUERIES} queries per size, k=3 (MMR: fetch_k=20), times include the query embedding")
    header = [f"{level['chunks']} chunks, {level['documents']} docs" for level in levels.values()]
    print(f"{'':<28}" + "".join(f"{h:>26}" for h in header))
    print(
        f"{'ingest, chunks/s':<28}" + "".join(f"{level['ingest']['chunks_per_s']:>26.1f}" for level in levels.values())
    )
    for step in largest["latency"]:
        cells = "".join(
            "{p50_ms:>17.1f} / {p95_ms:>6.1f}".format(**level["latency"][step]) for level in levels.values()
        )
        print(f"{step + ', p50 / p95 ms':<28}{cells}")
    print(
        f"ingest overall {results['ingest_chunks_per_s_overall']} chunks/s; embed_documents alone {embed_rate} chunks/s"
    )
    print(
        f"sample re-index ({reindex['documents']} documents), median of {REINDEX_RUNS}: "
        + ", ".join(f"{size} {s} s ({reindex['chunks'][size]} chunks)" for size, s in reindex["median_s"].items())
    )
    for target, passed in results["targets"].items():
        print(f"{'PASS' if passed else 'FAIL'}: {target}")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
