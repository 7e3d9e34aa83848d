"""Predicted peaks next to published measured ones: PEFT's method comparison (MetaMathQA, Llama-3.2-3B).

    .venv/bin/python benchmarks/published_peaks.py

Source: ``huggingface/peft``, ``method_comparison/MetaMathQA/results/lora--llama-3.2-3B-*.json`` (an
NVIDIA L40S): bf16 weights, no AMP, PEFT's default ``autocast_adapter_dtype=True``, batch 4,
``max_seq_length`` 768 (batches padded, with an attention mask), torch AdamW, no gradient
checkpointing, SDPA attention. Their ``accelerator_memory_max`` is ``max_memory_reserved()`` over the
run minus before loading, so it is set against the reserved estimate. Llama-3.2-3B's public
``config.json`` is written out below (no download).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

LLAMA_32_3B = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 3072,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 24,
    "num_hidden_layers": 28,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}
#: (results file, roles, rank, alpha, options, measured accelerator_memory_max in bytes)
CASES = [
    ("lora--llama-3.2-3B-rank32.json", "q,v", 32, 64, {}, 22_292_725_760),
    ("lora--llama-3.2-3B-rank64.json", "q,v", 64, 128, {}, 22_552_772_608),
    ("lora--llama-3.2-3B-rank64-rslora.json", "q,v", 64, 128, {"use_rslora": True}, 22_561_161_216),
    ("lora--llama-3.2-3B-rank32-dora.json", "q,v", 32, 64, {"use_dora": True}, 24_532_484_096),
    ("lora--llama-3.2-3B-rank10-target-mlp.json", "ffn", 10, 20, {}, 24_698_159_104),
]


def main() -> int:
    """Print the markdown table."""
    import lora_registry as lr

    settings = lr.MemorySettings(seq_len=768, batch=4)  # padded rows, recipe peft
    print("| results file | LoRA | measured reserved peak | predicted reserved | error | predicted allocated |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "config.json").write_text(json.dumps(LLAMA_32_3B))
        model_map = lr.inspect(folder, fast=True)
        for name, roles, rank, alpha, options, measured in CASES:
            adapter = lr.resolve(model_map, roles=roles).plan(lr.LoraSettings(r=rank, lora_alpha=alpha, **options))
            plan = adapter.memory(settings)
            error = (plan.reserved - measured) / measured * 100
            extra = ", ".join(k for k in options) or "plain"
            print(
                f"| {name} | r{rank} {roles} ({extra}) | {measured:,} B ({measured / 2**30:.2f} GiB) | "
                f"{plan.reserved:,} B ({plan.reserved / 2**30:.2f} GiB) | {error:+.1f}% | "
                f"{plan.allocated / 2**30:.2f} GiB |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
