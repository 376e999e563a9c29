"""Makes a decode step's linear layers give every row the result it gets alone, whatever the batch.

A CPU BLAS picks its kernel by shape: one row takes a matrix-vector kernel, several rows a matrix-
matrix one, and the two sum in different orders. Measured on the bundled model's layers (float32 and
bfloat16, AVX-512 and AVX2 kernels): one row's result differs in the last bits from the same row
among others, and kernels for 3 to 10 rows disagree with each other in places. Greedy decoding turns
such a difference into a different answer now and then, often in bfloat16, so a compare column
could differ from its mode page for no reason of its own.

Here a decode step (one new token per row) multiplies its rows in blocks of exactly two, padding an
odd row with zeros: one shape, one kernel, and a row's result depends neither on its partner nor on
its position (checked per layer in all four of those setups). Two rows cost about what one costs
(a step's products: 14.0 against 12.4 ms alone in float32), and four rows as two pairs 28 ms against
34 as one product of four. Prefill (one prompt's tokens) keeps the layer's own forward. On CUDA
nothing changes: cuBLAS makes no such promise either way (README, "Same answer").
"""

import torch

ROWS_PER_PRODUCT = 2


def use_row_pair_products(model: torch.nn.Module) -> None:
    """Swaps the forward of every nn.Linear in `model` for one that takes decode steps in pairs of rows.
    Int8 layers (core.engine.int8_weights) already take each row on its own and are left as they are."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not hasattr(module, "_full_forward") and module.weight is not None:
            module._full_forward = module.forward
            module.forward = _pairwise_forward(module)


def _pairwise_forward(layer: torch.nn.Linear):
    linear = torch.nn.functional.linear

    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 3 or x.shape[1] != 1:  # not a CPU decode step
            return layer._full_forward(x)
        rows = x.shape[0]
        flat = x.reshape(rows, x.shape[-1])
        if rows % ROWS_PER_PRODUCT:
            flat = torch.cat([flat, flat.new_zeros(ROWS_PER_PRODUCT - rows % ROWS_PER_PRODUCT, flat.shape[1])])
        blocks = [
            linear(flat[start : start + ROWS_PER_PRODUCT], layer.weight, layer.bias)
            for start in range(0, len(flat), ROWS_PER_PRODUCT)
        ]
        return torch.cat(blocks)[:rows].reshape(rows, 1, layer.out_features)

    return forward
