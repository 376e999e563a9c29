"""The vocabulary projection of a greedy float32 step on CPU: an int8 screen with a proven error bound, then
exact logits for the few tokens that could still win.

A greedy step needs only the highest score, yet the vocabulary projection reads the whole output matrix:
Qwen2.5-0.5B's 151,936 rows are 544 MB a token in float32, a fifth of the step. Here the step first runs
the int8 product of core.engine.int8_weights (a quarter of the bytes, exact int32 sums) and bounds how far
each of its scores can be from the true logit. Each row goes in with the remainder of its rounding as a
second row of the same product (the weights are read once for both), so the input is rounded to ~15 bits.
With x̂ the row as the product sees it and ŵ a weight row's int8 values times its scale,
`x·w - x̂·ŵ = x̂·(w - ŵ) + (x - x̂)·w`, so by Cauchy-Schwarz the error is at most
`|x̂| |w - ŵ| + |x - x̂| |w|`. The weight rows' two norms are computed once, the input's every step, and a
margin covers the float rounding of the full product's own sums.

Every token whose upper bound reaches the highest lower bound stays a candidate, with the repetition
penalty and the end-of-answer ban applied to both bounds (both are monotone): on generic prompts a median
of 1 of 151,936 for Qwen (at most 18) and 4 of 49,152 for SmolLM2 (at most 83). The candidates' logits
are then computed exactly (float64 sums of the weight's rows, rounded to float32) and scored as usual.
The full product's highest score is always among the candidates, so the chosen token is the full
product's, unless two logits are so close that the full product's own rounding decides between them
(tests/test_screened_head.py checks the bounds and the choice on the model's own states, and the answers
with and without the screen). A row's token still depends on that row alone.

Measured (Qwen float32, AMD Zen 4, 2 cores): the projection 22.9 -> 7.2 ms for one row, 19.6 -> 8.4 for
four; a decode step 89.5 -> 74.8 ms. Only for float32 output layers whose float rows cost no memory of
their own (tied to the embedding, as SmolLM2's is, or mapped from the model file, as Qwen's is), and for
greedy decoding: sampling needs every logit, the int8 setting's output layer is int8 already, and a
bfloat16 one reads half float32's bytes, so there the screen saves little or loses (four rows 8.2 -> 10.2
ms). The screen's int8 rows and norms are kept in a file beside the int8 cache: only the first start pays
their ~1.5 s.
"""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from safetensors.torch import load_file

from core.engine.cpu_budget import available_cores
from core.engine.int8_weights import Int8Matrix, int8_rows, rounded_rows, write_whole
from core.engine.row_products import mapped_from_file

CACHE_FORMAT = "screen-v1"  # the cache file's layout: change it to make every cache stale
# output rows converted and packed at a time (float temporaries of the whole matrix would raise peak memory)
ROWS_AT_ONCE = 8192


class ScreenedHead:
    """The output layer's int8 screen and the norms its error bound needs; `weight` is the float matrix whose
    rows give the candidates' exact logits."""

    def __init__(self, weight: torch.Tensor, int8: torch.Tensor, scale: torch.Tensor, norms: torch.Tensor):
        self.weight = weight
        # packed in blocks of rows, one per core at once: fbgemm packed Qwen's whole matrix in 3.1 s, its 16
        # blocks in 0.6 s on one core; the products' columns are the same, bit for bit, in the same time
        starts = range(0, len(int8), ROWS_AT_ONCE)
        with ThreadPoolExecutor(available_cores()) as pool:
            self.blocks = list(
                pool.map(lambda at: Int8Matrix(int8[at : at + ROWS_AT_ONCE], scale[at : at + ROWS_AT_ONCE]), starts)
            )
        self.residual_norm, self.weight_norm = norms  # per row: |w - ŵ| and |w| (rounded up)
        # the full product's own rounding: its float32 sums (at most K ulps of the sum of |x_i w_i|), then its
        # output dtype
        self.sum_error = weight.shape[1] * torch.finfo(torch.float32).eps
        self.output_error = torch.finfo(weight.dtype).eps

    @classmethod
    def of(cls, weight: torch.Tensor, cache: Path | None = None) -> "ScreenedHead":
        """The screen of `weight` [vocabulary, hidden], read from `cache` when it holds it, else computed
        (and written there)."""
        stored = _read(cache, weight)
        if stored is None:
            stored = _screen_rows(weight)
            _write(cache, stored)
        return cls(weight, *stored)

    def bounds(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper bounds [rows, vocabulary] (float32) of each logit of `states` [rows, hidden]."""
        floats = states.float()
        # each row and what its rounding left, as two rows of one product: the weights are read once, and
        # the inputs' rounding error, most of the bound with one row, nearly vanishes
        first_scale, first = rounded_rows(floats)
        columns = floats.shape[1]
        rounded = first[:, :columns] * first_scale
        rest_scale, rest = rounded_rows(floats - rounded)
        row_scale, integers = torch.cat([first_scale, rest_scale]), torch.cat([first, rest])
        both = torch.cat([block.product_of_rounded(row_scale, integers) for block in self.blocks], dim=1)
        screened = both[: len(floats)] + both[len(floats) :]
        rounded += rest[:, :columns] * rest_scale
        # (1 + 1e-4) for the bound's own float arithmetic; the output dtype's rounding of |x·w| <= |ŷ| + error
        grow = 1 + 1e-4 + self.output_error
        error = torch.outer(rounded.norm(dim=1) * grow, self.residual_norm)
        input_part = (floats - rounded).norm(dim=1) * grow + self.sum_error * floats.norm(dim=1)
        error.addcmul_(input_part[:, None], self.weight_norm[None, :])
        error.add_(screened.abs(), alpha=self.output_error)
        return screened - error, screened + error

    def exact(self, states: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Scores [rows, vocabulary] (float32): the candidates' logits (`candidates`, a boolean mask), computed
        exactly and rounded to the weight's dtype as the model's logits are; -inf for every other token."""
        scores = torch.full(candidates.shape, -float("inf"))
        for row, state in enumerate(states):
            tokens = candidates[row].nonzero().squeeze(1)
            logits = self.weight.index_select(0, tokens).double() @ state.double()
            scores[row, tokens] = logits.to(self.weight.dtype).float()
        return scores


def use_screened_head(model: torch.nn.Module, cache: Path | None) -> None:
    """Gives a CPU model's float output layer a greedy screen (`model.lm_head.greedy_screen`), read from or
    written to `cache`. Call it before the layer's weight is packed (core.engine.row_products): the screen
    keeps the float weight for the candidates' rows. Only where those rows cost no memory of their own: a
    weight tied to the embedding (SmolLM2's), or one mapped from the model file (Qwen's), whose pages are
    read back as candidates need them."""
    head = getattr(model, "lm_head", None)
    weight = getattr(head, "weight", None)
    # float32 only: a bfloat16 output layer reads half float32's bytes, and there the screen's two int8 rows per
    # row cost about what they save (Qwen, one row: 7.7 -> 6.2 ms; four rows: 8.2 -> 10.2 ms)
    if model.device.type != "cpu" or weight is None or weight.dtype != torch.float32 or head.bias is not None:
        return
    embedding = getattr(model.get_input_embeddings(), "weight", None)
    tied = embedding is not None and weight.data_ptr() == embedding.data_ptr()
    if tied or mapped_from_file(weight):
        head.greedy_screen = ScreenedHead.of(weight.detach(), cache)


def screen_cache_path(int8_cache: Path | None) -> Path | None:
    """The screen's file beside the model's int8 cache (core.engine.model_store.int8_cache_path: named after
    the model's weight files and dtype)."""
    return None if int8_cache is None else int8_cache.with_name(f"{int8_cache.stem}-{CACHE_FORMAT}.safetensors")


def greedy_screen(model: torch.nn.Module) -> ScreenedHead | None:
    """The model's greedy screen, when its output layer is as it was screened: no adapter's hook on it."""
    head = getattr(model, "lm_head", None)
    screen = getattr(head, "greedy_screen", None)
    if screen is None or head._forward_hooks or head._forward_pre_hooks:
        return None
    return screen


def _screen_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """int8 rows, their scales, and the norms [2, rows] (|w - ŵ|, |w|; float64, rounded up to float32)."""
    int8, scale = int8_rows(weight, ROWS_AT_ONCE)
    columns = weight.shape[1]
    norms = torch.empty(2, len(weight))
    for start in range(0, len(weight), ROWS_AT_ONCE):
        block = weight[start : start + ROWS_AT_ONCE].double()
        rounded = int8[start : start + ROWS_AT_ONCE, :columns].double() * scale[start : start + ROWS_AT_ONCE, None]
        both = torch.stack([(block - rounded).norm(dim=1), block.norm(dim=1)])
        norms[:, start : start + ROWS_AT_ONCE] = torch.nextafter(both.float(), torch.tensor(float("inf")))
    return int8, scale, norms


def _read(cache: Path | None, weight: torch.Tensor):
    if cache is None or not cache.exists():
        return None
    try:
        stored = load_file(str(cache))
        int8, scale, norms = stored["int8"], stored["scale"], stored["norms"]
    except Exception:  # an unreadable file means: compute afresh
        return None
    if int8.shape != (len(weight), weight.shape[1] + 2) or norms.shape != (2, len(weight)):
        return None
    return int8, scale, norms


def _write(cache: Path | None, stored) -> None:
    if cache is not None:
        write_whole(cache, dict(zip(("int8", "scale", "norms"), stored, strict=True)))
