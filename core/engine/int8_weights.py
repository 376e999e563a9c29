"""Int8 weights for the engine's linear layers on CPU: decoding reads a quarter of float32's bytes a token.

Decoding one token reads every weight once, so on a CPU its speed is set by bytes per token, not by
arithmetic (fp32 SmolLM2 reads 538 MB a token). Each nn.Linear here keeps its weight as int8 with one
scale per output row (symmetric, round to nearest: w ≈ int8 × scale), packed once for fbgemm's
dynamic int8 product (`quantized::linear_dynamic`, what `torch.ao.quantization.quantize_dynamic`
calls), and every input (a decode step's rows, a prompt's tokens) goes through ONE such product.

That product quantizes its whole input with one range, so on its own a row's result would depend on
the other rows. Here each row is scaled so that its largest magnitude is LEVELS and rounded to
integers, and two columns holding -(LEVELS + 1) and LEVELS (with zero weights) are appended: every
input spans the same range, which is fbgemm's own number of levels, so its quantization has scale 1 and
takes the integers as they are. The sums are exact int32 (a test checks them against float64), and the
output is scaled back by the row's own factor: a row's result is the same alone and in any batch, and
with any thread count, by construction (tests check both, per layer and through the engine).

LEVELS is 127 (8-bit inputs) on a CPU with AVX-512-VNNI, whose kernels sum int8 products straight into
int32. Other x86 kernels add pairs of products in 16 bits and could saturate, so there inputs keep 7 bits
(fbgemm's `reduce_range`, LEVELS 63), as every CPU did before: on Qwen2.5-0.5B the 8-bit inputs cut the
divergence from float32 (KL per token on 15 generic prompts) from 0.025 to 0.008, at the same speed.
Most of int8's divergence is the inputs' rounding, not the weights': int8 weights with float inputs
diverge 0.001, as little as bfloat16 (docs/benchmarks.md, "Where int8's answers differ").
Measured per layer on 2 cores (`python -m bench.int8_speed`, table in docs/benchmarks.md "Int8
weights"): four rows cost at most 1.5× one row, where one call per row cost 4× (and float32 products
2×); one row costs fbgemm's plain call plus 0.01-0.04 ms for the scaling. PyTorch's weight-only int8
kernel (`_weight_int8pack_mm`, torchao's CPU path) decoded one row 53% slower in the engine and took
2-4× as long on the vocabulary projection, the layer that weighs most in a step; `torch._int_mm` took
11.8 against 9.1 ms there for one Qwen row, 21.0 against 13.6 for four.

Layers that read the same input (q, k and v; gate and up) share one packed matrix and one product
(Int8Product, core.engine.shared_products): the same columns, exactly, for fewer calls (a Qwen step
40 -> 37.5 ms). The int8 rows are kept in a file after the first quantization
(`quantize_linear_layers(model, cache)`): later starts read them and never page in the float weights
(Qwen: peak memory 3.9 -> 1.7 GB, engine build 7.1 -> 3.4 s).

Every mode uses the same quantized base, so "base is base" holds within this setting; LoRA runs on
top in the model's dtype (core.engine.lora_runtime) and the trainer loads its own full-precision copy.
CPU only: on a GPU bandwidth is not the limit.
"""

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from core.engine.cpu_budget import cpu_has_int8_dot_products
from core.engine.shared_products import SharedProduct, joined_bias, product_sets

_EIGHT_BIT_INPUTS = cpu_has_int8_dot_products()  # else fbgemm's reduce_range: 7-bit inputs, no saturation
LEVELS = 127 if _EIGHT_BIT_INPUTS else 63  # a row's largest magnitude, after scaling and rounding
# appended to every row of integers: its range is always 2 * LEVELS + 1, fbgemm's top level (scale 1)
_RANGE_ENDS = torch.tensor([[-(LEVELS + 1.0), float(LEVELS)]])
CACHE_FORMAT = "int8-rows-v1"  # the cache file's layout (core.engine.model_store names the file): change it to make every cache stale


class Int8Matrix:
    """int8 rows [out, in + 2] and their per-row scales, packed once for fbgemm's product."""

    def __init__(self, int8: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None):
        with warnings.catch_warnings():  # qint8 tensors are deprecated; only the prepack step makes one
            warnings.simplefilter("ignore", UserWarning)
            zero = torch.zeros_like(scale, dtype=torch.long)
            quantized = torch._make_per_channel_quantized_tensor(int8, scale.double(), zero, 0)
        self.packed_int8 = torch.ops.quantized.linear_prepack(quantized, None)
        self.bias = bias

    def product_of_rounded(self, row_scale: torch.Tensor, integers: torch.Tensor) -> torch.Tensor:
        """Rows already rounded (`rounded_rows`) through the product: float32 [rows, out], no bias."""
        return torch.ops.quantized.linear_dynamic(integers, self.packed_int8, not _EIGHT_BIT_INPUTS) * row_scale


class Int8Product(SharedProduct, Int8Matrix):
    """The int8 weights of one linear layer, or of sibling layers that read the same input, packed as
    one matrix (core.engine.shared_products): every output column is its own exact int32 sum times its
    own scale, so a layer's result is the same as with its weights packed alone; the set saves the
    products and input scaling of the others (two of three for q, k and v)."""

    def __init__(self, layers: list[torch.nn.Linear], int8: torch.Tensor, scale: torch.Tensor):
        SharedProduct.__init__(self, layers)
        Int8Matrix.__init__(self, int8, scale, joined_bias(layers))

    def product(self, x: torch.Tensor) -> torch.Tensor:
        return int8_product(self, x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


def quantize_linear_layers(model: torch.nn.Module, cache: Path | None = None) -> int:
    """Replaces the float weight of every nn.Linear in `model` by int8 weights and per-row scales, in
    place, and returns the number of layers changed. Siblings that read the same input share one
    packed matrix (Int8Product). A tied output layer (SmolLM2's) gets its own int8 copy; the
    embedding it was tied to keeps its float rows for look-ups.

    With `cache` (a file), the int8 rows are read from it when it holds them, and written to it when
    not. A cached load never reads the float weights: a model loaded from safetensors maps them from
    disk and pages them in only when read, so they stay out of memory (Qwen2.5-0.5B: 2 GB), and the
    conversion's seconds are spent once."""
    names = {id(module): name for name, module in model.named_modules()}
    sets = {names[id(layers[0])]: layers for layers in product_sets(model)}
    computed = {}

    def packed(key: str) -> Int8Product:
        layers = sets[key]
        if stored is not None:  # a set at a time: only the sets being packed are in memory at once
            int8, scale = stored.get_tensor(f"{key}.int8"), stored.get_tensor(f"{key}.scale")
        else:
            int8, scale = int8_rows(torch.cat([layer.weight.detach() for layer in layers]))
            if cache is not None:
                computed[key] = (int8, scale)
        return Int8Product(layers, int8, scale)

    # Packing runs single-threaded inside torch and releases the interpreter: one set per core at once.
    with _opened_cache(cache, sets) as stored, ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        for key, product in zip(sets, pool.map(packed, sets), strict=True):
            product.serve(sets[key])
    if computed:
        _write_cache(cache, computed)
    return sum(len(layers) for layers in sets.values())


@contextmanager
def _opened_cache(cache: Path | None, sets: dict[str, list]):
    """The cache file, open (and closed afterwards), when it holds int8 rows of the right shape for every
    product set; else None (missing, unreadable, or from another model: the caller quantizes afresh)."""
    if cache is None or not cache.exists():
        yield None
        return
    try:
        file = safe_open(str(cache), framework="pt")
        fits = all(_fits(file, key, layers) for key, layers in sets.items())
    except Exception:  # any unreadable file means: quantize afresh
        yield None
        return
    with file:
        yield file if fits else None


def _fits(file, key: str, layers: list) -> bool:
    rows, columns = sum(layer.out_features for layer in layers), layers[0].in_features
    return file.get_slice(f"{key}.int8").get_shape() == [rows, columns + _RANGE_ENDS.shape[1]] and (
        file.get_slice(f"{key}.scale").get_shape() == [rows]
    )


def _write_cache(cache: Path, computed: dict) -> None:
    """Writes the int8 rows whole or not at all; a disk that refuses leaves the engine quantizing each start."""
    tensors = {}
    for key, (int8, scale) in computed.items():
        tensors[f"{key}.int8"], tensors[f"{key}.scale"] = int8, scale
    write_whole(cache, tensors)


def write_whole(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Writes a safetensors file whole or not at all (a reader never sees half a file); a disk that refuses
    leaves no file, and the caller computes its contents again at the next start."""
    partial = path.with_suffix(f".{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(partial))
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)


def int8_rows(weight: torch.Tensor, rows_at_once: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight as int8 [out, in + 2] (the range columns zero) and its per-row scales, a block of rows
    at a time: float temporaries of the whole vocabulary projection would raise the peak memory."""
    scale = torch.empty(len(weight))
    int8 = torch.zeros(len(weight), weight.shape[1] + _RANGE_ENDS.shape[1], dtype=torch.int8)
    for start in range(0, len(weight), rows_at_once):
        block = weight[start : start + rows_at_once].float()
        block_scale = block.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127
        int8[start : start + rows_at_once, : weight.shape[1]] = torch.round(block / block_scale[:, None]).clamp(
            -127, 127
        )
        scale[start : start + rows_at_once] = block_scale
    return int8, scale


def int8_weights(layer: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """A quantized layer's int8 weights [out, in] and their per-row scales (what the tests check)."""
    quantized, _ = torch.ops.quantized.linear_unpack(layer.shared_product.packed_int8)
    rows = layer.product_columns
    return quantized.int_repr()[rows, : layer.in_features], quantized.q_per_channel_scales()[rows].float()


def int8_product(product: Int8Matrix, rows: torch.Tensor) -> torch.Tensor:
    """Rows (2-D: a decode step's rows or a prompt's tokens) through the packed weights in one int8
    product, each row rounded to integers on its own range (LEVELS at its largest); in the rows' dtype."""
    out = product.product_of_rounded(*rounded_rows(rows.float()))
    out = out if product.bias is None else out + product.bias.float()
    return out.to(rows.dtype)


def rounded_rows(floats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each float32 row's scale [rows, 1] (its largest magnitude over LEVELS) and its integers, with the two
    range columns appended: the row is about integers[:, :-2] * scale."""
    row_scale = (floats.abs().amax(dim=1, keepdim=True) / LEVELS).clamp(min=torch.finfo(torch.float32).tiny)
    return row_scale, torch.cat([torch.round(floats / row_scale), _RANGE_ENDS.expand(len(floats), -1)], dim=1)
