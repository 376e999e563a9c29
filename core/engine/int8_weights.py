"""Int8 weights for the engine's linear layers on CPU: decoding reads a quarter of float32's bytes a token.

Decoding one token reads every weight once, so on a CPU its speed is set by bytes per token, not by
arithmetic (fp32 SmolLM2 reads 538 MB a token). Each nn.Linear here keeps its weight as int8 with one
scale per output row (symmetric, round to nearest: w ≈ int8 × scale), in two forms:

- a decode step (one token per row) runs each row through fbgemm's dynamic int8 product
  (`quantized::linear_dynamic`, what `torch.ao.quantization.quantize_dynamic` calls): the row is
  quantized to 8 bits with its own range, multiplied in int8 with int32 sums, and scaled back. The
  sums are exact integers and every row is quantized on its own, so a row's result is the same alone
  and in any batch by construction. Measured against the alternatives on one core (per-layer, SmolLM2
  and Qwen shapes): 3-9× faster than float32 products, 2-3× faster than PyTorch's weight-only int8
  kernel (`_weight_int8pack_mm`, which torchao's int8 weight-only layout calls on CPU).
- a prompt (prefill) quantizes each token's activations the same way, to int8 with its own range,
  and multiplies in int8 with int32 sums (`torch._int_mm`): exact integer sums again, so the result
  depends neither on the thread count nor on the other tokens. (A float product of the dequantized
  weight would not be: float32 GEMMs of 5 to 11 rows sum in a different order with 1 and 2 threads,
  measured, and 8-bit rounding of the next layer's input turns a last-bit change into a different
  token now and then.) It is also faster than a float32 product (measured 1.3-2.5× per layer).

Every mode uses the same quantized base, so "base is base" holds within this setting; LoRA runs on
top in the model's dtype (core.engine.lora_runtime) and the trainer loads its own full-precision copy.
CPU only: on a GPU bandwidth is not the limit.
"""

import warnings

import torch


def quantize_linear_layers(model: torch.nn.Module) -> int:
    """Replaces the float weight of every nn.Linear in `model` by int8 weights and per-row scales, in
    place, and returns the number of layers changed. A tied output layer (SmolLM2's) gets its own int8
    copy; the embedding it was tied to keeps its float rows for look-ups."""
    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.weight is not None:
            weight = module.weight.detach().float()
            scale = weight.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127
            int8 = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
            module.register_buffer("int8_weight_t", int8.t().contiguous())  # the layout torch._int_mm takes
            module.register_buffer("int8_scale", scale.to(weight.dtype))
            with warnings.catch_warnings():  # qint8 tensors are deprecated; only the prepack step makes one
                warnings.simplefilter("ignore", UserWarning)
                zero = torch.zeros_like(scale, dtype=torch.long)
                quantized = torch._make_per_channel_quantized_tensor(int8, scale.double(), zero, 0)
            bias = None if module.bias is None else module.bias.detach().float()
            module.packed_int8 = torch.ops.quantized.linear_prepack(quantized, bias)
            del module.weight  # drops the float copy (a tied embedding keeps its own reference)
            module.weight = None
            module.forward = _int8_forward(module)
            changed += 1
    return changed


def int8_row_product(layer: torch.nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """A decode step's rows (2-D) through the layer, one row at a time, in the rows' dtype."""
    floats = rows.float()
    out = [torch.ops.quantized.linear_dynamic(floats[i : i + 1], layer.packed_int8, True) for i in range(len(rows))]
    return torch.cat(out).to(rows.dtype)


def int8_prompt_product(layer: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """A prompt's tokens (2-D) through the layer: each token quantized to int8 with its own range."""
    floats = tokens.float()
    token_scale = floats.abs().amax(dim=1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny) / 127
    token_int8 = torch.round(floats / token_scale).to(torch.int8)
    out = torch._int_mm(token_int8, layer.int8_weight_t).float() * token_scale * layer.int8_scale
    out = out if layer.bias is None else out + layer.bias.float()
    return out.to(tokens.dtype)


def _int8_forward(layer: torch.nn.Module):
    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3 and x.shape[1] == 1:  # a decode step: one new token per row
            flat = x.reshape(x.shape[0], x.shape[-1])
            return int8_row_product(layer, flat).reshape(x.shape[0], 1, -1)
        flat = x.reshape(-1, x.shape[-1])
        return int8_prompt_product(layer, flat).reshape(*x.shape[:-1], -1)

    return forward
