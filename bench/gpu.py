"""The GPU targets of the speed issue, timed on a lent device: the Lab's engine and trainer on random
weights of each bundled model's shape, with its real tokenizer.

Random weights serve speed: the shapes, tokenizer and arithmetic are the model's, only the words
are not. Two steps:
- here, `python -m bench.gpu --pack` gathers what the device lacks into .gpu/ (git ignores it). That is
  each bundled model's config and tokenizer, without weights, and the wheels of the packages the
  device's Python does not hold (core's needs, pinned to this environment's versions, for Python 3.12);
- there, from a copy of the tree, with .gpu carried, run:
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl &&
    PYTHONPATH=/tmp/site:. python3 -m bench.gpu
  It prints a table per model and writes gpu.json to $OUT (or .gpu/).

What it measures (bfloat16 on CUDA; 128 tokens, the Lab's decoding with the length forced):
- the engine's greedy answers against transformers' `generate()`, for a plain prompt and a RAG one;
- decode at batch 1, fine-tuned ÷ base, compare (four modes in one batch) ÷ one mode, RAG's first
  token, and eight users at once ÷ one;
- the sample adapter trained by the Lab's trainer.
`--smoke` runs all of it on this CPU in float32 with a few tokens and two training steps, to check the
script before device time is spent on it.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / ".gpu"
SCENARIO = ROOT / "scenarios" / "lumen_support"
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
)
# What core imports that the device image lacks or holds in another version (the device tool's KINDS.md);
# their own needs are followed, except those the image holds (DEVICE_HAS)
CARRIED = (
    "transformers",
    "peft",
    "tokenizers",
    "huggingface-hub",
    "langchain-core",
    "pydantic-settings",
    "python-dotenv",
)
DEVICE_HAS = {
    "torch", "numpy", "triton", "safetensors", "filelock", "fsspec", "jinja2", "markupsafe", "packaging",
    "pyyaml", "regex", "requests", "tqdm", "psutil", "sympy", "mpmath", "networkx", "setuptools", "certifi",
    "idna", "urllib3", "charset-normalizer", "anyio", "h11", "httpx", "httpcore", "click", "accelerate",
    "hf-xet", "shellingham", "typer", "rich", "pygments", "markdown-it-py", "mdurl",
}  # fmt: skip
DEVICE_PYTHON = {  # the device's interpreter, for the wheels' markers and tags
    "python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_system": "Linux",
    "platform_machine": "x86_64", "platform_python_implementation": "CPython", "implementation_name": "cpython",
    "os_name": "posix", "extra": "",
}  # fmt: skip
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
TARGETS = {"decode_tok_s": (">=", 150.0), "compare_four_over_one": ("<=", 1.2), "eight_users_over_one": ("<=", 2.0)}
SYSTEM = "You are the support assistant of a fictional e-bike maker. Answer from the sources."
QUESTION = "How long is the return window?"


def pack() -> None:
    """Fills .gpu/ with the bundled models' configs and tokenizers and the wheels to carry."""
    from core.common.model_catalog import BUNDLED_MODELS
    from core.common.settings import Settings
    from core.engine.model_store import prepare_bundled_model

    settings = Settings()
    for key, bundled in BUNDLED_MODELS.items():
        folder = prepare_bundled_model(settings, bundled)
        target = PACK / "models" / key
        target.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES:
            if (folder / name).exists():
                shutil.copy2(folder / name, target / name)
    wheels = PACK / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    pins = sorted(pinned_closure(CARRIED))
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
         "3.12", "--implementation", "cp", *platforms, "-d", str(wheels), *pins],
        check=True,
    )  # fmt: skip
    size = sum(f.stat().st_size for f in PACK.rglob("*") if f.is_file()) / 1e6
    print(f"{PACK}: {len(pins)} wheels ({', '.join(pins)}), {len(BUNDLED_MODELS)} model folders, {size:.0f} MB")


def pinned_closure(names: tuple[str, ...]) -> set[str]:
    """`names` and everything they need on the device's Python, as `name==version` of this environment."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    waiting = list(names)
    while waiting:
        name = canonicalize_name(waiting.pop())
        if name in pins or name in DEVICE_HAS:
            continue
        found = distribution(name)
        pins[name] = f"{name}=={found.version}"
        for text in found.requires or []:
            needed = Requirement(text)
            if needed.marker is None or needed.marker.evaluate(DEVICE_PYTHON):
                waiting.append(needed.name)
    return set(pins.values())


def measure(model_folder: Path, device: str, tokens: int, smoke: bool) -> dict:
    """Every figure for one model. If training fails, the reason is reported and the engine is still measured."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from core.common.scenario import load_scenario
    from core.common.settings import Settings
    from core.engine.engine import Engine
    from core.engine.model_store import LoadedModel
    from core.training.finetune import train_adapter
    from core.training.train_config import TrainConfig

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    work = Path(tempfile.mkdtemp(prefix="lab-gpu-"))
    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_folder)).save_pretrained(work / "model")
    tokenizer.save_pretrained(work / "model")
    results: dict = {"model": model_folder.name, "device": device, "dtype": str(dtype).removeprefix("torch.")}

    adapter = None
    try:  # the Lab's trainer on the sample's set, its default adapter layout (random base: speed only)
        settings = Settings(model=str(work / "model"), data_dir=work / "data", device=device)
        config = TrainConfig(check_forgetting=False, context_aware=False, max_steps=2 if smoke else None)
        started = time.perf_counter()
        adapter = train_adapter(settings, load_scenario(SCENARIO), config)
        results["train_sample_adapter_s"] = round(time.perf_counter() - started, 1)
        results["train_tokens_per_s"] = adapter.metadata.get("tokens_per_s")
    except Exception as failed:  # noqa: BLE001 - reported, and the engine is still measured
        results["train_error"] = f"{type(failed).__name__}: {failed}"

    model = AutoModelForCausalLM.from_pretrained(work / "model", dtype=dtype).to(device).eval()
    engine = Engine(LoadedModel(model=model, tokenizer=tokenizer, name=model_folder.name, device=device, dtype=dtype))
    if adapter is not None:
        engine.ensure_adapter("ft", str(adapter.path))
    timer = EngineTimer(engine, device)
    results.update(timer.measure(tokens, with_adapter=adapter is not None))
    engine.close()
    shutil.rmtree(work, ignore_errors=True)
    return results


class EngineTimer:
    """Times the engine's rows as the pages ask for them."""

    def __init__(self, engine, device: str):
        import torch

        self.engine = engine
        self.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        sources = " ".join(
            f"[{i}] Clause {i} of the policy says that returns within {i + 20} days are accepted with a receipt."
            for i in range(18)
        )
        self.short = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
        self.rag = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Sources: {sources}\n{QUESTION}"},
        ]

    def run(self, rows, tokens: int, penalty: float = 1.1) -> tuple[float, float, float, list[str]]:
        """(wall, time to the first text, time of the last text, texts) of one batch."""
        from core.common.vocabulary import Decoding
        from core.engine.engine import TextEvent

        decoding = Decoding(max_new_tokens=tokens, min_new_tokens=tokens, repetition_penalty=penalty)
        texts = [""] * len(rows)
        started = time.perf_counter()
        first = last = None
        for event in self.engine.stream_rows(rows, decoding):
            if isinstance(event, TextEvent):
                last = time.perf_counter() - started
                first = first if first is not None else last
                texts[event.row] += event.text
        self.sync()
        return time.perf_counter() - started, first or 0.0, last or 0.0, texts

    def decode_rate(self, row, tokens: int) -> float:
        _, first, last, _ = self.run([row], tokens)
        return (tokens - 1) / max(1e-9, last - first)

    def measure(self, tokens: int, with_adapter: bool) -> dict:
        from core.engine.engine import Row

        out: dict = {"rag_prompt_tokens": len(self.engine.encode(self.rag, tokens)[0])}
        self.run([Row(self.short)], 4)  # warm-up
        for name, messages in (("plain", self.short), ("rag", self.rag)):
            *_, (text,) = self.run([Row(messages)], 48, penalty=1.0)
            out[f"equal_to_generate_{name}"] = text == self._generated(messages, 48)

        base = [self.decode_rate(Row(self.short), tokens) for _ in range(3)]
        out["decode_tok_s"] = round(statistics.median(base), 1)
        if with_adapter:
            pairs = [  # in turn, so drift in the machine's speed hits both alike
                (self.decode_rate(Row(self.short), tokens), self.decode_rate(Row(self.short, "ft"), tokens))
                for _ in range(3)
            ]
            out["finetuned_over_base"] = round(statistics.median(t / b for b, t in pairs), 2)
            four = [Row(self.short), Row(self.rag), Row(self.short, "ft"), Row(self.rag, "ft")]
        else:
            four = [Row(self.short), Row(self.rag), Row(self.short), Row(self.rag)]
        walls = [(self.run([Row(self.short)], tokens)[0], self.run(four, tokens)[0]) for _ in range(3)]
        out["compare_four_over_one"] = round(statistics.median(f / o for o, f in walls), 2)
        out["rag_first_token_s"] = round(statistics.median(self.run([Row(self.rag)], 8)[1] for _ in range(3)), 3)
        walls = [(self.run([Row(self.short)], tokens)[0], self._eight_users(tokens)) for _ in range(3)]
        out["eight_users_over_one"] = round(statistics.median(e / o for o, e in walls), 2)
        return out

    def _eight_users(self, tokens: int) -> float:
        """Eight callers at once, each on its own thread with one row, as eight browser sessions are."""
        from core.engine.engine import Row

        rows = [Row(self.short if i % 2 else self.rag) for i in range(8)]
        threads = [threading.Thread(target=self.run, args=([row], tokens)) for row in rows]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started

    def _generated(self, messages: list[dict], tokens: int) -> str:
        import torch

        engine = self.engine
        ids = torch.tensor([engine.encode(messages, tokens)[0]], device=engine.model.device)
        output = engine.model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        return engine.tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)


def table(results: dict) -> str:
    lines = [f"**{results['model']}** ({results['device']}, {results['dtype']})", "", "| measure | value | target |"]
    lines.append("|---|---|---|")
    for name, value in results.items():
        if name in ("model", "device", "dtype"):
            continue
        sign, limit = TARGETS.get(name, (None, None))
        verdict = ""
        if sign and isinstance(value, int | float):
            met = value >= limit if sign == ">=" else value <= limit
            verdict = f"{sign} {limit}: {'met' if met else '**missed**'}"
        lines.append(f"| {name} | {value} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", action="store_true", help="gather .gpu/ here, to carry to the device")
    parser.add_argument("--smoke", action="store_true", help="run every part on this CPU, a few tokens")
    parser.add_argument("--models", default="", help="comma-separated bundled model keys (default: all packed)")
    args = parser.parse_args()
    if args.pack:
        pack()
        return
    import torch

    from bench.run_info import run_info

    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("No CUDA device here: run it on the device machine, or with --smoke to check it on the CPU.")
    folders = sorted((PACK / "models").iterdir()) if (PACK / "models").exists() else []
    if args.models:
        folders = [f for f in folders if f.name in args.models.split(",")]
    if not folders:
        raise SystemExit(f"Nothing packed in {PACK / 'models'}: run `python -m bench.gpu --pack` first.")
    try:
        report = {"run": run_info(), "torch": torch.__version__}
    except OSError:  # no git in the device's image
        report = {"torch": torch.__version__}
    if device == "cuda":
        report["gpu"] = torch.cuda.get_device_name(0)
    report["models"] = []
    written = Path(os.environ.get("OUT") or PACK) / "gpu.json"
    for folder in folders:  # written after each model: a run stopped at its time limit keeps what it measured
        results = measure(folder, device, 8 if args.smoke else 128, args.smoke)
        report["models"].append(results)
        print(table(results), "\n", flush=True)
        written.write_text(json.dumps(report, indent=1))
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
