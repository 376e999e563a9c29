"""Int8 weights against full precision, in the engine and per layer: the figures behind
docs/benchmarks.md "Int8 weights".

    python -m bench.int8_speed MODEL     (smollm2-135m or qwen2.5-coder-0.5b)

Engine: batch 1, 64 tokens forced, decode rate and a ~700-token prompt's time, medians of 3, then each
setting's first 200 characters. Layers: every core, the model shapes' products for 1 and 4 rows in
float32, the Lab's int8 product, fbgemm's dynamic int8 product one row per call, PyTorch's weight-only
int8 kernel (bfloat16 input) and torch._int_mm with per-row int8 rows, medians of 20.
"""

# ruff: noqa: B023  (each closure runs at once, inside its own loop turn)
import statistics
import sys
import time

import torch

from core.common.settings import get_settings
from core.common.vocabulary import Decoding
from core.engine.engine import Engine, Row, TextEvent
from core.engine.int8_weights import int8_product, quantize_linear_layers
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
    """Per layer, 1 and 4 rows, every core: float32, the Lab's int8 product (core.engine.int8_weights),
    fbgemm's plain product one row per call, PyTorch's weight-only int8 kernel and torch._int_mm."""
    torch.manual_seed(0)

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
        float_layer = torch.nn.Linear(rows_in, rows_out, bias=False)
        torch.nn.init.normal_(float_layer.weight, std=0.02)
        weight = float_layer.weight.detach().clone()
        scale = weight.abs().amax(1) / 127
        int8 = torch.round(weight / scale[:, None]).to(torch.int8)
        packed = torch.ops.quantized.linear_prepack(
            torch._make_per_channel_quantized_tensor(int8, scale.double(), torch.zeros(rows_out, dtype=torch.long), 0),
            None,
        )
        int8_t = int8.t()
        lab_layer = torch.nn.Linear(rows_in, rows_out, bias=False)
        lab_layer.load_state_dict(float_layer.state_dict())
        quantize_linear_layers(torch.nn.Sequential(lab_layer))
        for count in (1, 4):
            x = torch.randn(count, rows_in)

            def per_row_int_mm():
                row_scale = x.abs().amax(1, keepdim=True) / 127
                return torch._int_mm(torch.round(x / row_scale).to(torch.int8), int8_t).float() * row_scale * scale

            figures = {
                "float32": median_ms(lambda: torch.nn.functional.linear(x, weight)),
                "Lab int8": median_ms(lambda: int8_product(lab_layer.shared_product, x)),
                "fbgemm per row": median_ms(
                    lambda: [torch.ops.quantized.linear_dynamic(x[i : i + 1], packed, True) for i in range(count)]
                ),
                "weight-only": median_ms(lambda: torch._weight_int8pack_mm(x.bfloat16(), int8, scale.bfloat16())),
                "_int_mm": median_ms(per_row_int_mm),
            }
            print(f"{name:26s} {count} row(s) " + "  ".join(f"{kind} {ms:.3f}" for kind, ms in figures.items()) + " ms")


if __name__ == "__main__":
    engine_figures(sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m")
    layer_figures()
