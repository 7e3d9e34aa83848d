"""Base-model weight memory at bf16, 8-bit and 4-bit, from the module tree alone (no torch).

What ``from_pretrained(..., quantization_config=BitsAndBytesConfig(...))`` leaves on the GPU:
transformers replaces every ``nn.Linear`` (and GPT-2's ``Conv1D``) with a bitsandbytes layer except
the modules it keeps (the output embedding, tied weights, the module of the last parameter);
everything else (embeddings, norms, biases, 3-D expert tensors) stays in the load dtype. This
module is the one place that restates those rules; each function names what it mirrors, and
``tests/test_memory.py`` checks the totals against the layers bitsandbytes really builds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from .tree import ModuleTree

#: the keys of ``weight_memory``: the load dtype, LLM.int8, NF4, NF4 with double quantization
WEIGHT_FORMATS = ("bf16", "8bit", "4bit", "4bit_double_quant")
#: bitsandbytes' defaults as transformers passes them: 64 values per NF4 block, 256 absmax per nested block
NF4_BLOCK = 64
NESTED_BLOCK = 256
#: transformers' class test in ``replace_with_bnb_linear``: ``type(module) is nn.Linear`` or a ``Conv1D``
_QUANTIZED_CLASSES = ("Linear", "Conv1D")


def weight_memory(tree: ModuleTree) -> dict[str, int]:
    """Bytes of the model's weights in bf16, 8-bit (LLM.int8) and 4-bit NF4, with and without double quantization.

    Per quantized weight of ``n`` values and ``rows`` output features: 8-bit stores ``n`` int8 and
    one fp32 scale per row (``Int8Params.SCB``); NF4 packs two values a byte with one fp32 absmax
    per 64 values and the 16-entry fp32 code (``QuantState``); double quantization stores the
    absmax as uint8 with one fp32 scale per 256 blocks, the 256-entry fp32 code of that nested
    state and the fp32 offset. Every other parameter stays bf16 (2 bytes). Tied parameters count
    once; tensors count unrounded (the CUDA allocator adds under 512 bytes to each).
    """
    quantized = set(quantized_modules(tree))
    out = dict.fromkeys(WEIGHT_FORMATS, 0)
    for name, shape in tree.parameters():
        owner, _, pname = name.rpartition(".")
        n = math.prod(shape)
        out["bf16"] += 2 * n
        if owner not in quantized or pname != "weight":
            for key in WEIGHT_FORMATS[1:]:
                out[key] += 2 * n
            continue
        node = tree.node(owner)
        rows = shape[1] if node is not None and node.cls == "Conv1D" else shape[0]  # Conv1D stores [in, out]
        out["8bit"] += n + 4 * rows
        packed = (n + 1) // 2
        blocks = math.ceil(n / NF4_BLOCK)
        out["4bit"] += packed + 4 * blocks + 4 * 16
        nested = math.ceil(blocks / NESTED_BLOCK)
        out["4bit_double_quant"] += packed + blocks + 4 * nested + 4 * 256 + 4 * 16 + 4
    return out


def quantized_modules(tree: ModuleTree) -> list[str]:
    """The modules transformers' ``replace_with_bnb_linear`` turns into bitsandbytes layers, in model order.

    ``nn.Linear`` (exactly that class) and ``Conv1D`` modules, except those matching
    ``get_keys_to_not_convert``: every tied parameter and its source, the module of the last
    parameter, and the output embedding. Matched as ``should_convert_module`` matches. A class's
    ``_keep_in_fp32_modules`` (T5's ``wo``, a few others) are not known from the tree and not applied.
    """
    keep = not_converted(tree)
    return [
        node.name
        for node in tree.nodes
        if node.name and node.cls in _QUANTIZED_CLASSES and should_convert(node.name, keep)
    ]


def not_converted(tree: ModuleTree) -> list[str]:
    """transformers' ``get_keys_to_not_convert``, from the tree: tied keys, the last parameter's module, the output embedding."""
    keys = {*tree.weight_ties.keys(), *tree.weight_ties.values()}
    parameters = tree.parameters()
    if parameters:
        keys.add(parameters[-1][0])
    if tree.output_embedding:
        keys.add(tree.output_embedding)
    return sorted({key.removesuffix(".weight") for key in keys})


def should_convert(name: str, patterns: Sequence[str] | Iterable[str] | None) -> bool:
    """transformers' ``should_convert_module``: a pattern matching from the start up to a module boundary
    (as a regex), or as a plain suffix, keeps the module out of the conversion."""
    if patterns is None:
        return True
    boundary = r"(?:(?<=\.)|(?=\.|$))"
    return not any(re.match(rf"(?:{key}){boundary}", name) or name.endswith(key) for key in patterns)
