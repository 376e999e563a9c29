"""Training's bfloat16 products: the vocabulary projection's float32 sums of bfloat16-rounded inputs, scoped."""

import pytest
import torch

from core.engine.row_products import packs_for_onednn
from core.training.mixed_precision import FLOAT32, TrainingPrecision

BFLOAT16 = TrainingPrecision("cpu", torch.bfloat16)


@pytest.mark.skipif(not packs_for_onednn(torch.bfloat16), reason="this CPU has no native bfloat16 products")
def test_vocabulary_products_sum_bfloat16_rounded_inputs_in_float32_and_only_within():
    generator = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(64, 896, generator=generator), torch.randn(4096, 896, generator=generator)
    exact = torch.nn.functional.linear(hidden, weight)
    with BFLOAT16.vocabulary():
        mixed = torch.nn.functional.linear(hidden, weight)
    rounded = torch.nn.functional.linear(hidden.bfloat16().float(), weight.bfloat16().float())

    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, rounded, rtol=1e-5, atol=1e-4)  # float32 sums, not a bfloat16 output
    assert (mixed - exact).abs().max() > 1e-3  # the inputs were rounded
    assert torch.equal(torch.nn.functional.linear(hidden, weight), exact)  # and nothing is once outside


def test_float32_training_changes_no_product():
    hidden, weight = torch.randn(8, 64), torch.randn(32, 64)
    with FLOAT32.decoder(), FLOAT32.vocabulary():
        inside = torch.nn.functional.linear(hidden, weight)
    assert inside.dtype == torch.float32 and torch.equal(inside, torch.nn.functional.linear(hidden, weight))
