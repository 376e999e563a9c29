"""Int8 weights against full precision, in the engine and per layer: the figures behind
docs/benchmarks.md "Int8 weights".

    python -m bench.int8_speed MODEL     (smollm2-135m or qwen2.5-coder-0.5b)

Engine: batch 1, 64 tokens forced, decode rate and a ~700-token prompt's time, medians of 3, then each
setting's first 200 characters. Layers: one core, the model shapes' products for 2 rows in float32,
PyTorch's weight-only int8 kernel (bfloat16 input) and fbgemm's dynamic int8 product, medians of 20.
"""

# ruff: noqa: B023  (each closure runs at once, inside its own loop turn)
import statistics
import sys
import time

import torch

from core.common.settings import get_settings
from core.common.vocabulary import Decoding
from core.engine.engine import Engine, Row, TextEvent
from core.engine.model_store import load_model

NEW_TOKENS = 64
SHAPES = {
    "SmolLM2 up 1536x576": (1536, 576),
    "SmolLM2 output 49152x576": (49152, 576),
    "Qwen up 4864x896": (4864, 896),
    "Qwen output 151936x896": (151936, 896),
}


def engine_figures(model: str) -> None:
    settings = get_settings().model_copy(update={"model": model})
    fixed = Decoding(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
    question = [{"role": "user", "content": "Tell me about bicycles and how to keep one in good repair."}]
    passages = "The Lumen Bikes warranty covers the frame for five years and parts for two years. " * 30
    prompt = [
        {"role": "system", "content": "Answer from the passages. " + passages},
        {"role": "user", "content": "How long is the warranty?"},
    ]
    texts = {}
    for quantization in ("none", "int8"):
        engine = Engine(load_model(settings), None, quantization)

        def decode() -> tuple[float, str]:
            stamps, pieces = [], []
            for event in engine.stream_rows([Row(question)], fixed):
                if isinstance(event, TextEvent):
                    stamps.append(time.perf_counter())
                    pieces.append(event.text)
            return (NEW_TOKENS - 1) / (stamps[-1] - stamps[0]), "".join(pieces)

        def prefill() -> float:
            started = time.perf_counter()
            stream = engine.stream_rows([Row(prompt)], Decoding(max_new_tokens=2))
            next(event for event in stream if isinstance(event, TextEvent))
            stream.close()
            engine.prefixes.clear()
            return time.perf_counter() - started

        decode()
        rate = statistics.median(decode()[0] for _ in range(3))
        prompt_s = statistics.median(prefill() for _ in range(3))
        texts[quantization] = decode()[1]
        print(f"{model} {quantization}: decode {rate:.1f} tok/s, prompt {prompt_s:.2f} s", flush=True)
        engine.close()
    for quantization, text in texts.items():
        print(f"  {quantization}: {text[:200]!r}")


def layer_figures() -> None:
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def median_ms(run) -> float:
        for _ in range(3):
            run()
        times = []
        for _ in range(20):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1e3

    for name, (rows_out, rows_in) in SHAPES.items():
        weight = torch.randn(rows_out, rows_in) * 0.02
        scale = weight.abs().amax(1) / 127
        int8 = torch.round(weight / scale[:, None]).to(torch.int8)
        packed = torch.ops.quantized.linear_prepack(
            torch._make_per_channel_quantized_tensor(int8, scale.double(), torch.zeros(rows_out, dtype=torch.long), 0),
            None,
        )
        x = torch.randn(2, rows_in)
        figures = {
            "float32": median_ms(lambda: torch.nn.functional.linear(x, weight)),
            "weight-only int8": median_ms(lambda: torch._weight_int8pack_mm(x.bfloat16(), int8, scale.bfloat16())),
            "fbgemm dynamic int8": median_ms(lambda: torch.ops.quantized.linear_dynamic(x, packed, True)),
        }
        print(f"{name:26s} " + "  ".join(f"{kind} {ms:.3f} ms" for kind, ms in figures.items()))
    torch.set_num_threads(threads)


if __name__ == "__main__":
    engine_figures(sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m")
    layer_figures()
