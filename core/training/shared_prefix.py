"""Examples of an optimiser step that begin alike (the system prompt) compute that beginning once.

Every example of a scenario starts with the same system prompt: 24 of a plain example's ~65 tokens in the
sample, and 79 of a grounded one's ~435 with the hybrid prompt's sources header. Within one optimiser step the adapter does
not change, so those tokens' keys and values are the same in every example of the step. Here a group of
examples that share a beginning runs it once, as one row. Each micro-batch then runs only the rest of
its examples, attending to the beginning's keys and values (expanded to its rows), and their gradients
add up across the micro-batches. After the group's last micro-batch, the summed gradients go back through
the beginning's forward. The sums are the same as computing every example whole; only the rounding of a
product may differ with the shapes (tests/test_shared_prefix.py compares loss and gradients).
"""

from itertools import takewhile

import torch
from transformers import DynamicCache

from core.training.frozen_layers import FrozenLayerOutputs

MIN_SHARED_TOKENS = 8  # a shorter common beginning saves less than the extra forward costs


def prefix_groups(batch: list) -> list[tuple[int, list]]:
    """The batch's examples ((ids, labels)) in groups that begin with the same tokens, each with how many
    tokens its examples share (0: none), grouped to save the most tokens. An example shares no token whose
    label counts, nor the one just before it (it predicts the first labelled token)."""
    order = sorted(batch, key=lambda e: e[0])  # by tokens: a run of neighbours shares what each pair shares
    limits = [_unlabelled(example) for example in order]
    common = [
        min(_common_length(first[0], second[0]), limits[index], limits[index + 1])
        for index, (first, second) in enumerate(zip(order, order[1:], strict=False))
    ]
    return _best_groups(order, common)


def _best_groups(order: list, common: list[int]) -> list[tuple[int, list]]:
    """Consecutive groups of `order` (common[i]: what examples i and i+1 share) saving the most tokens: a group
    of n sharing s saves (n - 1) * s. A plain example and a grounded one share the system prompt's first
    sentence; split there, the plain ones share their whole system prompt and the grounded ones theirs
    and the sources' header."""
    if not common:
        return [(0, order)]
    shared = min(common)
    whole = (len(order) - 1) * shared if shared >= MIN_SHARED_TOKENS else 0
    split = common.index(shared) + 1
    parts = _best_groups(order[:split], common[: split - 1]) + _best_groups(order[split:], common[split:])
    if whole and whole >= sum((len(members) - 1) * length for length, members in parts):
        return [(shared, order)]
    if any(length for length, _ in parts):
        return parts
    return [(0, order)]


def _common_length(first: list[int], second: list[int]) -> int:
    return sum(1 for _ in takewhile(lambda pair: pair[0] == pair[1], zip(first, second, strict=False)))


def _unlabelled(example) -> int:
    """How many leading tokens an example may share: up to the token before its first labelled one (labels
    are token ids where the loss counts, negative where it does not: core.training.finetune.IGNORE)."""
    ids, labels = example
    first = next((index for index, label in enumerate(labels) if label >= 0), len(ids))
    return max(0, first - 1)


class SharedPrefix:
    """A group's shared beginning, run once as one row: its keys and values, for the group's micro-batches,
    and the gradients they send back."""

    def __init__(self, decoder, group: list, length: int, frozen: FrozenLayerOutputs):
        self.length = length
        self._config = decoder.config
        cache = DynamicCache(config=decoder.config)
        ids = torch.tensor([group[0][0][:length]], device=decoder.device)
        with frozen.running_prefix(group, length):
            decoder(input_ids=ids, past_key_values=cache, use_cache=True)
        self._computed: list[torch.Tensor] = []  # keys and values with a graph back to the adapter
        self._leaves: list[torch.Tensor] = []  # the same, detached: the micro-batches' gradients gather here
        self._layers: list[tuple[torch.Tensor, torch.Tensor] | None] = []  # None: a skipped frozen layer
        for layer in cache.layers:
            self._layers.append(tuple(map(self._leaf, (layer.keys, layer.values))) if layer.is_initialized else None)
        self._shape = next(pair[0].shape for pair in self._layers if pair is not None)
        self._zero = torch.zeros((), dtype=decoder.dtype, device=decoder.device)

    def _leaf(self, states: torch.Tensor) -> torch.Tensor:
        if not states.requires_grad:  # below the adapted layers: nothing to send back
            return states
        leaf = states.detach().requires_grad_(True)
        self._computed.append(states)
        self._leaves.append(leaf)
        return leaf

    def cache_for(self, rows: int) -> DynamicCache:
        """A cache holding the beginning for `rows` rows (views, not copies). A frozen layer skipped with kept
        inputs holds zeros of the right shape: it never reads them, but the cache's length counts."""
        cache = DynamicCache(config=self._config)
        for layer, pair in zip(cache.layers, self._layers, strict=True):
            keys, values = pair if pair is not None else (self._zero.expand(self._shape),) * 2
            layer.lazy_initialization(keys, values)
            layer.keys = keys.expand(rows, -1, -1, -1)
            layer.values = values.expand(rows, -1, -1, -1)
        return cache

    def backward(self) -> None:
        """Sends the gradients the micro-batches gathered on the beginning's keys and values through its forward."""
        pairs = [
            (computed, leaf.grad)
            for computed, leaf in zip(self._computed, self._leaves, strict=True)
            if leaf.grad is not None
        ]
        if pairs:
            torch.autograd.backward([computed for computed, _ in pairs], [grad for _, grad in pairs])
