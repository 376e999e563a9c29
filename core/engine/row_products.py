"""Makes a decode step's linear layers give every row the result it gets alone, whatever the batch, on CPU.

A CPU BLAS picks its kernel by shape: one row takes a matrix-vector kernel, several rows a matrix-
matrix one, and the two sum in different orders. Measured on the bundled model's layers (float32 and
bfloat16, AVX-512 and AVX2 kernels): one row's result differs in the last bits from the same row
among others, and kernels for 3 to 10 rows disagree with each other in places. Greedy decoding turns
such a difference into a different answer now and then, often in bfloat16, so a compare column
could differ from its mode page for no reason of its own.

float32, and bfloat16 on a CPU that multiplies it natively (AVX-512-BF16, AMX): each layer's weight (q, k
and v as one matrix, gate and up as one: `OneDnnProduct`) is packed once for oneDNN's inner product (`torch.ops.mkldnn._reorder_linear_weight`, what PyTorch's CPU
compiler uses), and a decode step's rows
go through in blocks of at most four. oneDNN reads the weights once for up to four rows, so four rows
cost about what one costs (Qwen's MLP, 40 layers' weights cycled out of cache: one row 25.9 ms, four
29.8, where BLAS took 26.2 for a pair and 55.9 for four). It is also the one library whose speed does not
depend on the CPU's maker: PyTorch's BLAS (MKL) took a pair of rows 3.5x as long as oneDNN on an AMD
CPU, and every layer shape was slower there. For most layer shapes oneDNN gives a row the same sums in
any block of one to four rows; where it does not (an MLP's down projection: one row takes another path),
every block is padded to exactly four rows. Which shapes agree is checked when the model is packed
(`_blocks_agree`), on this CPU, at the engine's thread count: kernels differ by instruction set. The
packed copy replaces the float weight, whose pages of the model file are given back (`_give_back`), so
memory does not double. A prompt's tokens go through the same packed weights in one product. In
bfloat16 oneDNN reads half the bytes and multiplies twice as fast: Qwen's 24 layers took 33 ms for a
row against 69 in float32, and 0.83 s for a 500-token prompt against 1.71 (AMD Zen 4, 2 cores).

Other dtypes (float16, bfloat16 without native bf16), and float32 without oneDNN, keep the layer's own
product in blocks of exactly two rows, padding an odd row with zeros: one shape, one kernel (checked
per layer in those setups). Two rows cost about what one costs, four rows twice. Int8 layers
(core.engine.int8_weights) take each row on its own already. On CUDA nothing changes: cuBLAS makes no
such promise either way (README, "Same answer").
"""

import ctypes
import mmap
from concurrent.futures import ThreadPoolExecutor

import torch

from core.engine.cpu_budget import available_cores, cpu_has_native_bf16
from core.engine.shared_products import SharedProduct, float_linear, joined_bias, product_sets

ROWS_PER_PRODUCT = 2  # the layer's own product: blocks of exactly two rows
BLOCK_ROWS = 4  # oneDNN: blocks of at most four rows
_LIBC = ctypes.CDLL(None)  # the C library this process runs on: madvise


def use_row_products(model: torch.nn.Module, threads: int | None = None) -> None:
    """Gives every float nn.Linear of a CPU `model` a decode-step product whose result for a row does not
    depend on the other rows: oneDNN-packed in float32, else pairs of rows. `threads`: the engine's
    thread count (default: every core)."""
    if model.device.type != "cpu":
        return
    if packs_for_onednn(model.dtype):
        _pack_for_onednn(model, threads or available_cores())
    for module in _base_layers(model):
        if not hasattr(module, "_full_forward"):
            module._full_forward = module.forward
            module.forward = _pairwise_forward(module)


def rows_beside_one(model: torch.nn.Module) -> int:
    """How many rows a one-row decode step could carry beside its own for about nothing more in its products:
    a packed product (oneDNN, int8) reads its weights once for a block of four rows, the pairwise product
    for two."""
    head = getattr(model, "lm_head", None)
    # a screened output layer (core.engine.screened_head) reads int8 rows: four rows cost about what one does
    packed = getattr(head, "shared_product", None) is not None or getattr(head, "greedy_screen", None) is not None
    return BLOCK_ROWS - 1 if packed else ROWS_PER_PRODUCT - 1


def packs_for_onednn(dtype: torch.dtype) -> bool:
    """Whether layers of `dtype` run on oneDNN's packed product on this CPU: float32 always, bfloat16 only
    where the CPU multiplies it natively (without, oneDNN refuses it on AVX2 and emulates it on AVX-512,
    and `ONEDNN_MAX_CPU_ISA` can forbid it)."""
    if not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.bfloat16:
        return cpu_has_native_bf16() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return dtype == torch.float32


def _base_layers(model: torch.nn.Module) -> list[torch.nn.Linear]:
    """The float linear layers, but a peft adapter's own (lora_A, lora_B): under peft (tests compare the
    engine with it) the adapter keeps peft's arithmetic, the base layers take the engine's."""
    return [module for name, module in model.named_modules() if float_linear(module) and ".lora_" not in name]


class OneDnnProduct(SharedProduct):
    """A layer's weight packed for oneDNN's inner product, or the weights of sibling layers that read the
    same input (q, k and v; gate and up) packed as one matrix (core.engine.shared_products). Every output
    column is its own sum over the same input: on the CPUs measured, each layer's columns of the set's
    product equal its weight packed alone, bit for bit, at one to four rows and for a prompt. One call
    instead of three for q, k and v: oneDNN takes ~18 us a call whatever the layer's size."""

    def __init__(self, layers: list[torch.nn.Linear]):
        super().__init__(layers)
        weight = (
            torch.cat([layer.weight.detach() for layer in layers]) if len(layers) > 1 else layers[0].weight.detach()
        )
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, BLOCK_ROWS)
        self.bias = joined_bias(layers)
        self.shape = (weight.shape[0], weight.shape[1], self.bias is not None)
        self.dtype = weight.dtype
        self.pad_blocks = True  # until `_blocks_agree` says a block of any size gives a row the same sums

    def rows_through(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(rows, self.weight, self.bias, "none", [], "")

    def product(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if x.dim() != 3 or x.shape[1] != 1:  # a prompt's tokens: one product
            return self.rows_through(flat).reshape(*x.shape[:-1], -1)
        return self.decode_rows(flat).reshape(len(flat), 1, -1)

    def decode_rows(self, flat: torch.Tensor) -> torch.Tensor:
        """A decode step's rows [rows, in] -> [rows, out], in blocks of four (padded, unless every block
        size gives a row the same sums)."""
        rows = len(flat)
        if self.pad_blocks and rows % BLOCK_ROWS:
            flat = torch.cat([flat, flat.new_zeros(BLOCK_ROWS - rows % BLOCK_ROWS, flat.shape[1])])
        if len(flat) <= BLOCK_ROWS:
            return self.rows_through(flat)[:rows]
        blocks = [self.rows_through(flat[start : start + BLOCK_ROWS]) for start in range(0, len(flat), BLOCK_ROWS)]
        return torch.cat(blocks)[:rows]


def _pack_for_onednn(model: torch.nn.Module, threads: int) -> None:
    # A screened output layer (core.engine.screened_head) is packed only when a full product is first asked for
    # (sampling): greedy steps read its int8 rows, and its packed copy would cost memory for nothing (Qwen: 544 MB).
    screened = [layer for layer in _base_layers(model) if hasattr(layer, "greedy_screen")]
    for layer in screened:
        layer._full_forward = layer.forward  # not the pairwise product either
        layer.forward = _packed_on_first_use(layer, threads)
    base = {id(layer) for layer in _base_layers(model) if layer not in screened}
    chosen = [layers for layers in product_sets(model) if all(id(layer) in base for layer in layers)]
    # the largest first: its float weights and its packed copy are both in memory while little else is
    chosen.sort(key=lambda layers: -sum(layer.weight.numel() for layer in layers))
    mapped = _model_file_ranges()

    def packed(layers: list[torch.nn.Linear]) -> OneDnnProduct:
        product = OneDnnProduct(layers)
        # read once, never again (a tied output layer's weight is also the embedding, which reads a row a
        # token: those pages come back from the file as they are read)
        for layer in layers:
            _give_back(layer.weight, mapped)
        return product

    # Packing runs inside torch and releases the interpreter: one set per core at once. The pool's
    # threads end with it, and the OpenMP threads they used with them (core.engine.cpu_budget).
    with ThreadPoolExecutor(available_cores()) as pool:
        products = list(pool.map(packed, chosen))
        first_of_shape = {product.shape: product for product in reversed(products)}  # kernels are chosen by shape
        agree = dict(
            zip(
                first_of_shape,
                pool.map(lambda p: _blocks_agree(p, threads), first_of_shape.values()),
                strict=True,
            )
        )
    for layers, product in zip(chosen, products, strict=True):
        product.pad_blocks = not agree[product.shape]
        product.serve(layers)


def _packed_on_first_use(layer: torch.nn.Linear, threads: int):
    """A forward that packs `layer` for oneDNN, as `_pack_for_onednn` packs the others, then runs it packed."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        # `_blocks_agree` sets its thread's count: a thread that ends afterwards
        with ThreadPoolExecutor(1) as pool:
            product = pool.submit(OneDnnProduct, [layer]).result()
            product.pad_blocks = not pool.submit(_blocks_agree, product, threads).result()
        _give_back(layer.weight, _model_file_ranges())
        product.serve([layer])
        return layer.forward(x)  # the packed product, inside this call: its hooks run once

    return forward


def _blocks_agree(product: OneDnnProduct, threads: int) -> bool:
    """Whether each of four rows gets the same sums alone as in blocks of two to four rows, at the engine's
    thread count (which it keeps, core.engine.cpu_budget). Sets the calling thread's count: call it from
    a thread that ends afterwards (the packing pool's). Never for bfloat16: its results are float32 sums
    rounded to 8 bits, which hid a one-row path on random rows but not on the model's own (SmolLM2's
    down projection), so every bfloat16 block is padded to four rows."""
    if product.dtype != torch.float32:
        return False
    rows = torch.randn(BLOCK_ROWS, product.shape[1], generator=torch.Generator().manual_seed(0))
    torch.set_num_threads(threads)
    with torch.inference_mode():
        alone = [product.rows_through(rows[i : i + 1]) for i in range(BLOCK_ROWS)]
        blocks = [product.rows_through(rows[:size]) for size in range(2, BLOCK_ROWS + 1)]
    return all(torch.equal(block[i : i + 1], alone[i]) for block in blocks for i in range(len(block)))


def _model_file_ranges() -> list[tuple[int, int]]:
    """Address ranges where model weight files (safetensors) are mapped into this process."""
    ranges = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and fields[5].endswith(".safetensors"):
                    start, end = (int(value, 16) for value in fields[0].split("-"))
                    ranges.append((start, end))
    except OSError:
        pass
    return ranges


def mapped_from_file(weight: torch.Tensor) -> bool:
    """Whether a weight lies in a model file mapped into this process: its pages come back from the file
    when read after `_give_back`."""
    start, size = weight.data_ptr(), weight.numel() * weight.element_size()
    return any(low <= start and start + size <= high for low, high in _model_file_ranges())


def _give_back(weight: torch.Tensor, mapped: list[tuple[int, int]]) -> None:
    """Drops the resident pages of a weight read from a mapped model file and no longer used: the packed
    copy replaced it. Without this, the file's pages stay resident, and the model's memory doubles.
    Only whole pages inside the weight, and only within a mapped file."""
    start, size = weight.data_ptr(), weight.numel() * weight.element_size()
    if not any(low <= start and start + size <= high for low, high in mapped):
        return
    first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
    end = (start + size) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > first:
        _LIBC.madvise(ctypes.c_void_p(first), ctypes.c_size_t(end - first), mmap.MADV_DONTNEED)


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
