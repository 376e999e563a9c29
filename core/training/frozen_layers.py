"""Frozen lower layers run once per example in training: their output is kept and reused by later passes.

With adapters on the upper layers only, the layers below the lowest adapted one never change while
training runs, so their output for an example is the same in every epoch and validation pass. The
first pass over an example keeps the input of the lowest adapted layer (without padding); a later
micro-batch whose examples are all kept skips the lower layers and starts there. The sums are the
same; only the rounding of a lower layer's products may differ with another padded width.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from core.engine.lower_layers import seeing_input, starting_at

KEEP_BYTES = 1 << 30  # kept outputs at most (the sample: ~100 MB for Qwen2.5-0.5B); the rest is recomputed


class FrozenLayerOutputs:
    """Keeps, per example, the input of decoder layer `first_adapted` and feeds it back in later
    passes (first_adapted 0: keeps nothing, every pass runs every layer)."""

    def __init__(self, layers: torch.nn.ModuleList, first_adapted: int, max_bytes: int = KEEP_BYTES):
        self.layers = layers
        self.first_adapted = first_adapted
        self.bytes_left = max_bytes
        self.kept: dict[tuple[int, ...], torch.Tensor] = {}  # token ids -> (tokens, hidden) input of first_adapted
        self._prefix: torch.Tensor | None = None  # the shared beginning's input, while its group runs

    def all_kept(self, examples: list) -> bool:
        return all(tuple(ids) in self.kept for ids, _ in examples)

    @contextmanager
    def running_prefix(self, group: list, length: int) -> Iterator[None]:
        """Within: the decoder computes the first `length` tokens the group's examples share, as one row
        (core.training.shared_prefix), from the lowest adapted layer if the whole group is kept."""
        self._prefix = None
        if not self.first_adapted:
            yield
        elif self.all_kept(group):
            kept = self.kept[tuple(group[0][0])][:length][None]
            with starting_at(self.layers, self.first_adapted, lambda _hidden: kept):
                yield
        else:
            with seeing_input(self.layers, self.first_adapted, lambda hidden: setattr(self, "_prefix", hidden[0])):
                yield

    @contextmanager
    def running(self, part: list, skip: int = 0) -> Iterator[None]:
        """Within: the decoder computes `part` (examples as (ids, labels), right-padded to the longest; without
        their first `skip` tokens when a shared beginning ran before them, `running_prefix`) starting at the
        lowest adapted layer if every example's input there is kept, else from the embeddings, keeping what
        it computes while the budget lasts. An example is kept whole: the beginning's input and its own."""
        if not self.first_adapted:
            yield
            return
        keys = [tuple(ids) for ids, _ in part]
        if self.all_kept(part):
            with starting_at(self.layers, self.first_adapted, lambda hidden: self._kept_inputs(keys, hidden, skip)):
                yield
        else:
            with seeing_input(self.layers, self.first_adapted, lambda hidden: self._keep(keys, hidden, skip)):
                yield

    def _keep(self, keys: list[tuple], hidden: torch.Tensor, skip: int) -> None:
        for row, key in enumerate(keys):
            size = len(key) * hidden.shape[-1] * hidden.element_size()
            if key not in self.kept and size <= self.bytes_left:
                own = hidden[row, : len(key) - skip].detach()
                self.kept[key] = torch.cat([self._prefix.detach(), own]) if skip else own.clone()
                self.bytes_left -= size

    def _kept_inputs(self, keys: list[tuple], hidden: torch.Tensor, skip: int) -> torch.Tensor:
        kept = torch.zeros_like(hidden)  # padded positions: nothing real attends to them
        for row, key in enumerate(keys):
            kept[row, : len(key) - skip] = self.kept[key][skip:]
        return kept


def frozen_layer_outputs(decoder, adapted_layers: list[int] | None) -> FrozenLayerOutputs:
    """The keeper for a decoder with adapters on `adapted_layers` (None: all). It keeps nothing where
    every layer is adapted or the lower layers are not deterministic (dropout)."""
    first = adapted_layers[0] if adapted_layers else 0
    random_lower = getattr(decoder.config, "attention_dropout", 0.0) or any(
        isinstance(module, torch.nn.Dropout) and module.p > 0
        for layer in decoder.layers[:first]
        for module in layer.modules()
    )
    return FrozenLayerOutputs(decoder.layers, 0 if random_lower else first)
