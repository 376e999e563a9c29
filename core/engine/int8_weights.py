"""Int8 weights for the engine's linear layers on CPU: decoding reads a quarter of float32's bytes a token.

Decoding one token reads every weight once, so on a CPU its speed is set by bytes per token, not by
arithmetic (fp32 SmolLM2 reads 538 MB a token). Each nn.Linear here keeps its weight as int8 with one
scale per output row (symmetric, round to nearest: w ≈ int8 × scale), packed once for fbgemm's
dynamic int8 product (`quantized::linear_dynamic`, what `torch.ao.quantization.quantize_dynamic`
calls), and every input (a decode step's rows, a prompt's tokens) goes through ONE such product.

That product quantizes its whole input to 8 bits with one range, so on its own a row's result would
depend on the other rows. Here each row is first divided by its own largest magnitude, and two
columns holding +1 and -1 (with zero weights) are appended: every input then spans exactly [-1, 1],
the range is the same constant for every row, and each row is quantized as it would be alone. The
sums are exact int32, the output is scaled back by the row's own factor: a row's result is the same
alone and in any batch, and with any thread count, by construction (tests check both, per layer and
through the engine). Measured per layer on 2 cores (`python -m bench.int8_speed`, table in
docs/benchmarks.md "Int8 weights"): four rows cost at most 1.5× one row, where one call per row
cost 4× (and float32 products 2×); one row costs fbgemm's plain call plus 0.01-0.04 ms for the
scaling. PyTorch's weight-only int8 kernel (`_weight_int8pack_mm`, torchao's CPU path) decoded one
row 53% slower in the engine and took 2-4× as long on the vocabulary projection, the layer that
weighs most in a step; `torch._int_mm` took 11.8 against 9.1 ms there for one Qwen row, 21.0
against 13.6 for four.

Every mode uses the same quantized base, so "base is base" holds within this setting; LoRA runs on
top in the model's dtype (core.engine.lora_runtime) and the trainer loads its own full-precision copy.
CPU only: on a GPU bandwidth is not the limit.
"""

import warnings

import torch

_RANGE_ENDS = torch.tensor([[1.0, -1.0]])  # appended to every normalised row: its range is always [-1, 1]


def quantize_linear_layers(model: torch.nn.Module) -> int:
    """Replaces the float weight of every nn.Linear in `model` by int8 weights and per-row scales, in
    place, and returns the number of layers changed. A tied output layer (SmolLM2's) gets its own int8
    copy; the embedding it was tied to keeps its float rows for look-ups."""
    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.weight is not None:
            int8, scale = _int8_rows(module.weight.detach())
            with warnings.catch_warnings():  # qint8 tensors are deprecated; only the prepack step makes one
                warnings.simplefilter("ignore", UserWarning)
                zero = torch.zeros_like(scale, dtype=torch.long)
                quantized = torch._make_per_channel_quantized_tensor(int8, scale.double(), zero, 0)
            module.packed_int8 = torch.ops.quantized.linear_prepack(quantized, None)
            del module.weight  # drops the float copy (a tied embedding keeps its own reference)
            module.weight = None
            module.forward = _int8_forward(module)
            changed += 1
    return changed


def _int8_rows(weight: torch.Tensor, rows_at_once: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
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
    quantized, _ = torch.ops.quantized.linear_unpack(layer.packed_int8)
    return quantized.int_repr()[:, : layer.in_features], quantized.q_per_channel_scales().float()


def int8_product(layer: torch.nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """Rows (2-D: a decode step's rows or a prompt's tokens) through the layer in one int8 product,
    each row quantized with its own range; in the rows' dtype."""
    floats = rows.float()
    row_scale = floats.abs().amax(dim=1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny)
    spanning = torch.cat([floats / row_scale, _RANGE_ENDS.expand(len(floats), -1)], dim=1)
    out = torch.ops.quantized.linear_dynamic(spanning, layer.packed_int8, True) * row_scale
    out = out if layer.bias is None else out + layer.bias.float()
    return out.to(rows.dtype)


def _int8_forward(layer: torch.nn.Module):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return int8_product(layer, x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)

    return forward
