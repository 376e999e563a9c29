"""Runs LoRA adapters at inference, per row, with forward hooks on the base model's linear layers.

peft's inference wrappers cost every LoRA layer its Python dispatch on every step, and per-row
`adapter_names` add an index-and-scatter even for rows without an adapter (measured here: a base row
took 89 ms a step through peft against 66 ms for the plain model; an adapter row 125 ms). Here the
base model stays plain; a hook on each adapted linear layer adds `lora_B(lora_A(x)) * scaling` to the
rows that use the adapter, computed as peft's single-adapter forward computes it, so answers are the
same. A step with no adapter rows touches no LoRA weight.
"""

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

BASE_ADAPTER = "__base__"  # the per-row name for "no adapter"
# An adapter on some layers only (layers_to_transform) runs as any other: the hooks follow its saved tensors.
_UNSUPPORTED = ("use_dora", "lora_bias", "modules_to_save", "rank_pattern", "alpha_pattern")


@dataclass
class LoraWeights:
    """One adapter: for each adapted linear layer (by its name in the base model), lora_A, lora_B, scaling."""

    layers: dict[str, tuple[torch.Tensor, torch.Tensor, float]]


def load_lora(path: str | Path, dtype: torch.dtype, device: str) -> LoraWeights:
    """Reads a peft LoRA adapter folder (adapter_config.json + adapter_model.safetensors)."""
    folder = Path(path)
    config = json.loads((folder / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA":
        raise ValueError(f"{folder.name} is not a LoRA adapter.")
    used = [key for key in _UNSUPPORTED if config.get(key)]
    if used:
        raise ValueError(f"{folder.name} uses LoRA options the Lab's engine does not run: {', '.join(used)}.")
    rank, alpha = config["r"], config["lora_alpha"]
    scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    # peft keeps adapter weights of a bf16/fp16 model in fp32 (autocast_adapter_dtype) and casts the input up
    weight_dtype = torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype
    tensors = load_file(str(folder / "adapter_model.safetensors"), device=device)
    layers = {}
    for key, lora_a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        name = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        lora_b = tensors[key.replace(".lora_A.", ".lora_B.")]
        layers[name] = _folded(lora_a.to(weight_dtype), lora_b.to(weight_dtype), scaling)
    if not layers:
        raise ValueError(f"{folder.name} holds no LoRA weights.")
    return LoraWeights(layers)


def _folded(lora_a: torch.Tensor, lora_b: torch.Tensor, scaling: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """A power-of-two scaling (alpha 32 / r 16 = 2) folded into lora_B: multiplying by a power of two is
    exact, so the result is bit-identical and each adapted layer saves one multiplication a step."""
    if math.frexp(scaling)[0] == 0.5:
        return lora_a, lora_b * scaling, 1.0
    return lora_a, lora_b, scaling


class LoraRuntime:
    """The adapters loaded into one base model, and which rows of the next forward use which."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.adapters: dict[str, LoraWeights] = {}
        self._plan: list[tuple[str, list[int] | None]] = []  # (adapter, its rows, or None for all rows)
        self._hooked: dict[str, torch.utils.hooks.RemovableHandle] = {}
        self._converted: tuple[torch.Tensor, torch.Tensor] | None = None  # the last input, in the adapter's dtype

    def add(self, name: str, path: str | Path) -> None:
        weights = load_lora(path, self.model.dtype, str(self.model.device))
        modules = dict(self.model.named_modules())
        missing = [layer for layer in weights.layers if layer not in modules]
        if missing:
            raise ValueError(f"The adapter {name!r} targets layers this model lacks: {missing[:3]}")
        self.adapters[name] = weights
        for layer in weights.layers:
            if layer not in self._hooked:
                self._hooked[layer] = modules[layer].register_forward_hook(self._hook(layer))

    def remove(self, name: str) -> None:
        self.adapters.pop(name, None)
        needed = {layer for weights in self.adapters.values() for layer in weights.layers}
        for layer in [layer for layer in self._hooked if layer not in needed]:
            self._hooked.pop(layer).remove()

    def untouched_below(self) -> int:
        """How many of the decoder's first layers no loaded adapter changes (core.engine.lower_layers);
        0 with no adapter loaded, or one that changes a layer outside the numbered decoder layers."""
        indices = [_decoder_layer(name) for weights in self.adapters.values() for name in weights.layers]
        if not indices or None in indices:
            return 0
        return min(indices)

    def route(self, row_adapters: list[str]) -> None:
        """Sets which adapter each row of the next forward uses (BASE_ADAPTER: none)."""
        distinct = list(dict.fromkeys(name for name in row_adapters if name != BASE_ADAPTER))
        unknown = [name for name in distinct if name not in self.adapters]
        if unknown:
            raise ValueError(f"The adapter {unknown[0]!r} is not loaded.")
        self._converted = None  # a new forward: the last one's input is not needed again
        if len(distinct) == 1 and BASE_ADAPTER not in row_adapters:
            self._plan = [(distinct[0], None)]
            return
        self._plan = [(name, [i for i, row in enumerate(row_adapters) if row == name]) for name in distinct]

    def _hook(self, layer: str):
        def add_lora(module, inputs, output):
            """peft's single-adapter forward for every row: the base output plus the adapter's delta (in the
            adapter's dtype), rounded once to the output's dtype. In a decode step each row's delta is its
            own product, the one it gets alone, so a row's answer does not depend on its batch."""
            if not self._plan:
                return None
            x = inputs[0]
            decode_step = x.dim() == 3 and x.shape[1] == 1
            for name, rows in self._plan:
                weights = self.adapters[name].layers.get(layer)
                if weights is None:
                    continue
                x = self._in_dtype(x, weights[0].dtype)
                # add_ sums in the delta's dtype and rounds once to the output's, as peft's
                # `(result + delta).to(dtype)` does, but in place: no new prompt-sized tensor (a prompt's gate
                # or up projection: 4-9 MB)
                if rows is None and not decode_step:  # a prompt's prefill: one row
                    output.add_(_delta(x, weights))
                    continue
                for row in range(x.shape[0]) if rows is None else rows:
                    output[row : row + 1].add_(_delta(x[row : row + 1], weights))
            return output

        return add_lora

    def _in_dtype(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """`x` in the adapter's dtype, converted once for the sibling layers that read it (q, k and v; gate
        and up): the same values each time, so the same deltas."""
        if x.dtype == dtype:
            return x
        if self._converted is None or self._converted[0] is not x or self._converted[1].dtype != dtype:
            self._converted = (x, x.to(dtype))  # holding x: its id cannot pass to another tensor meanwhile
        return self._converted[1]


def _decoder_layer(name: str) -> int | None:
    """The decoder layer a module belongs to ("model.layers.12.mlp.up_proj" -> 12), or None."""
    found = re.search(r"\.layers\.(\d+)\.", f".{name}")
    return int(found.group(1)) if found else None


def _delta(x: torch.Tensor, weights: tuple[torch.Tensor, torch.Tensor, float]) -> torch.Tensor:
    """lora_B(lora_A(x)) * scaling, for `x` in the adapter's dtype (`LoraRuntime._in_dtype`)."""
    lora_a, lora_b, scaling = weights
    delta = torch.nn.functional.linear(torch.nn.functional.linear(x, lora_a), lora_b)
    return delta if scaling == 1.0 else delta * scaling
