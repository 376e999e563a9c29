"""Linear layers whose float weight is replaced by a packed product, and siblings that share one.

The engine packs weights in two formats: int8 rows (core.engine.int8_weights) and oneDNN's float32
layout (core.engine.row_products). A layer served by a product calls it instead of its own forward.
Int8 packs sibling layers that read the same input (q, k and v; gate and up) as one matrix, their rows
one after another: one product serves them all, each layer taking its own columns of the output. Every
output column is its own sum over the same input, so a layer's result is what its weights packed alone
give (tests/test_int8_weights.py); the set saves the calls of the others.
"""

import torch

# Sibling layers a decoder block feeds the same tensor (Llama, Qwen2, Mistral names): one product for each set.
SHARED_INPUT_LAYERS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class SharedProduct:
    """A product that serves a set of linear layers; subclasses define `product`. `serve(layers)` makes the
    layers call it, dropping their float weights."""

    def __init__(self, layers: list[torch.nn.Linear]):
        self.members = {id(layer) for layer in layers}
        # the last input and its output, until every layer of the set has taken its columns
        self._input: torch.Tensor | None = None
        self._output: torch.Tensor | None = None
        self._waiting: set[int] = set()

    def product(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., in] -> [..., the set's summed out_features]."""
        raise NotImplementedError

    def output_for(self, layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """`layer`'s output for `x`: the set's product, computed when a layer of the set first asks for
        this input (the same tensor object), then sliced."""
        if len(self.members) == 1:
            return self.product(x)
        if x is not self._input or id(layer) not in self._waiting:
            self._input, self._output = x, self.product(x)
            self._waiting = set(self.members)
        self._waiting.discard(id(layer))
        columns = self._output[..., layer.product_columns].contiguous()
        if not self._waiting:
            self._input = self._output = None
        return columns

    def serve(self, layers: list[torch.nn.Linear]) -> None:
        start = 0
        for layer in layers:
            layer.shared_product = self
            layer.product_columns = slice(start, start + layer.out_features)
            start += layer.out_features
            del layer.weight  # drops the float copy (a tied embedding keeps its own reference)
            layer.weight = None
            layer.forward = _served_forward(layer)


def _served_forward(layer: torch.nn.Module):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return layer.shared_product.output_for(layer, x)

    return forward


def product_sets(model: torch.nn.Module) -> list[list[torch.nn.Linear]]:
    """The float linear layers, in sets that share one product: SHARED_INPUT_LAYERS siblings with the
    same input size (and biases on all or none), every other layer alone."""
    sets, placed = [], set()
    for parent in model.modules():
        # under peft a layer is a wrapper around its base layer (tests compare the engine with peft's model)
        children = {name: getattr(child, "base_layer", child) for name, child in parent.named_children()}
        for names in SHARED_INPUT_LAYERS:
            members = [children[name] for name in names if float_linear(children.get(name))]
            if (
                len(members) > 1
                and len({layer.in_features for layer in members}) == 1
                and len({layer.bias is None for layer in members}) == 1
            ):
                sets.append(members)
                placed.update(id(layer) for layer in members)
    sets += [[module] for module in model.modules() if float_linear(module) and id(module) not in placed]
    return sets


def float_linear(module) -> bool:
    return isinstance(module, torch.nn.Linear) and module.weight is not None


def joined_bias(layers: list[torch.nn.Linear]) -> torch.Tensor | None:
    return None if layers[0].bias is None else torch.cat([layer.bias.detach() for layer in layers])
