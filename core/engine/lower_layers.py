"""Two prefills of one prompt share the decoder layers no adapter changes: the second starts above them.

A compare, and each question of an evaluation, prefills one prompt twice with different adapters: RAG
and hybrid read the same sources and question, base and fine-tuned the same question. The Lab's
adapters change the upper half of the layers by default (core.training.train_config), and below the
lowest adapted layer every row computes the same numbers. So a prefill keeps the input of that layer
and the lower layers' keys and values; the next prefill of the same tokens (same cached beginning)
runs only the layers above, from that input, and takes the lower layers' keys and values as they are.
Same inputs through the same kernels: its cache and first token are bit for bit what a full prefill
gives (tests/test_engine_worker.py compares every mode's answer with generate()'s). With an adapter on
every layer nothing is kept. Training skips its frozen lower layers with the same two context managers
(`seeing_input`, `starting_at`; core.training.frozen_layers).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


class PassThrough(torch.nn.Module):
    """Stands in for a lower decoder layer whose output is already known: returns its input as is."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


@contextmanager
def seeing_input(layers: torch.nn.ModuleList, first: int, see: Callable[[torch.Tensor], None]) -> Iterator[None]:
    """Within: `see` is given the input of layer `first` each time that layer runs."""
    hook = layers[first].register_forward_pre_hook(
        lambda _module, args, kwargs: see(_hidden(args, kwargs)), with_kwargs=True
    )
    try:
        yield
    finally:
        hook.remove()


@contextmanager
def starting_at(
    layers: torch.nn.ModuleList, first: int, replace: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Within: the layers below `first` pass their input through unchanged, and layer `first` takes
    replace(its input) instead of it. The layers are back in place afterwards."""

    def feed(_module, args, kwargs):
        hidden = replace(_hidden(args, kwargs))
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    below = list(layers[:first])
    hook = layers[first].register_forward_pre_hook(feed, with_kwargs=True)
    for index in range(first):
        layers[index] = PassThrough()
    try:
        yield
    finally:
        hook.remove()
        for index, layer in enumerate(below):
            layers[index] = layer


class LowerLayerReuse:
    """The last prefill's input to the lowest adapted layer and the keys and values below it."""

    def __init__(self, layers: torch.nn.ModuleList):
        self.layers = layers
        self._kept: tuple | None = None  # (key, input of layer `first`, [(keys, values) of each lower layer])

    def prefill(self, key: tuple, first: int, forward: Callable):
        """forward() prefills the prompt identified by `key` (its tokens and how many came cached) and
        returns its cache; `first` is the lowest layer an adapter changes. Runs it from layer `first`
        when the last prefill was of the same prompt, else runs it whole and keeps what the next may reuse."""
        if first <= 0:
            self._kept = None
            return forward()
        if self._kept is not None and self._kept[0] == (key, first):
            _, hidden, lower = self._kept
            with starting_at(self.layers, first, lambda _computed: hidden):
                cache = forward()
            for layer, (keys, values) in zip(cache.layers, lower, strict=False):  # the lower layers: as before
                if not layer.is_initialized:
                    layer.lazy_initialization(keys, values)
                layer.keys, layer.values = keys, values
            return cache
        seen: list[torch.Tensor] = []
        with seeing_input(self.layers, first, seen.append):
            cache = forward()
        lower = [(cache.layers[index].keys, cache.layers[index].values) for index in range(first)]
        self._kept = ((key, first), seen[0], lower)
        return cache


def _hidden(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]
