"""Training's products in bfloat16 where that is faster on this CPU; weights, gradients, norms and loss float32.

Where the Lab answers in bfloat16 on a CPU that multiplies it natively, and a bfloat16 product measures
faster than a float32 one here, training runs:
- the decoder under `torch.autocast(bfloat16)`, its frozen linear weights cast to bfloat16 once per run
  rather than at every forward (autocast keeps a cast only for weights that take gradients, and the base
  weights under LoRA do not: ~20% of first launch on an AMX CPU). The products are the same: autocast
  rounds a float32 weight to the same bfloat16 values and leaves a bfloat16 one as it is;
- the vocabulary projection and its gradient as float32 products of bfloat16-rounded inputs (oneDNN's
  `fp32_precision = "bf16"`): float32 logits, without the rounding of a bfloat16 output.
The measure matters: oneDNN held to AVX-512-BF16 without AMX ran training's products at 0.6x float32's
speed, with AMX at 1.8-3.6x, and AMD's Zen 4 ran a whole micro-batch 1.7x faster (docs/benchmarks.md,
"Frozen weights cast once"). Elsewhere, and with `LAB_DTYPE=float32`, training is float32 throughout.
"""

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import cache

import torch

from core.common.settings import Settings
from core.engine.model_store import resolve_dtype
from core.engine.row_products import packs_for_onednn

SPEEDUP_NEEDED = 1.25  # far from every ratio measured: 5.6-6.0 with AMX, 0.60-0.63 held to AVX-512-BF16


@dataclass(frozen=True)
class TrainingPrecision:
    """Where training's products run in `products` (bfloat16) rather than in the weights' float32."""

    device: str = "cpu"
    products: torch.dtype | None = None

    def decoder(self):
        """What the decoder's forward runs within: autocast to `products`, or nothing."""
        return torch.autocast(self.device, dtype=self.products) if self.products else nullcontext()

    def vocabulary(self):
        """What the vocabulary projection, forward and backward, runs within: its float32 product from
        bfloat16-rounded inputs, or nothing."""
        return _float32_sums_of_bfloat16_inputs() if self.products else nullcontext()

    def cast_frozen_weights(self, layers: torch.nn.ModuleList) -> Callable[[], None]:
        """Replaces the frozen weights and biases of `layers`' linear layers by `products` copies and returns
        what puts the float32 ones back (for the forgetting check). The adapter's own layers stay float32."""
        swapped: list[tuple[torch.nn.Module, str, torch.nn.Parameter]] = []
        for module in layers.modules() if self.products else []:
            if not isinstance(module, torch.nn.Linear) or module.weight.requires_grad:
                continue
            for name in ("weight", "bias"):
                original = getattr(module, name)
                if original is not None and original.dtype != self.products:
                    swapped.append((module, name, original))
                    setattr(module, name, torch.nn.Parameter(original.detach().to(self.products), requires_grad=False))

        def restore() -> None:
            for module, name, original in swapped:
                setattr(module, name, original)
            swapped.clear()

        return restore


FLOAT32 = TrainingPrecision()  # every product in the weights' float32


def training_precision(settings: Settings, device: str) -> TrainingPrecision:
    """bfloat16 products where the Lab answers in bfloat16 on a CPU that multiplies it natively and they
    measure faster here (`bfloat16_product_speedup`); float32 everywhere else."""
    if device != "cpu" or resolve_dtype(settings, device) != torch.bfloat16 or not packs_for_onednn(torch.bfloat16):
        return TrainingPrecision(device)
    return TrainingPrecision(device, torch.bfloat16 if bfloat16_product_speedup() >= SPEEDUP_NEEDED else None)


@cache
def bfloat16_product_speedup() -> float:
    """How much faster a training-shaped bfloat16 product runs than a float32 one on this CPU (medians of
    five, the two measured in turn; ~0.1 s once per process)."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(512, 1024, generator=generator)
    weight = torch.randn(2048, 1024, generator=generator)
    low_inputs, low_weight = inputs.to(torch.bfloat16), weight.to(torch.bfloat16)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(6):
        for low in (False, True):
            started = time.perf_counter()
            torch.nn.functional.linear(low_inputs, low_weight) if low else torch.nn.functional.linear(inputs, weight)
            times[low].append(time.perf_counter() - started)
    return statistics.median(times[False][1:]) / statistics.median(times[True][1:])  # the first warms up


@contextmanager
def _float32_sums_of_bfloat16_inputs() -> Iterator[None]:
    """Within: float32 matrix products on oneDNN round their inputs to bfloat16 and sum into float32."""
    before = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        yield
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = before
