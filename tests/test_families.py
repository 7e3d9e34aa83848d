"""The standard requests on every family people fine-tune: dense, MoE, latent attention, hybrid, state-space,
speech and vision-language models, each a 1-4 layer config of the real transformers class.

For each family `q,v,ffn`, the `qv8-ffn4` preset and `all` exit 0 through the CLI, and PEFT adapts exactly
the resolved set with the predicted count; on state-space-only models `all` does, and `q,v` is an error
naming the mixer roles. `compare` shows a figure for every standard row where the model has the thing.
"""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig

import lora_registry as lr
from helpers import FIXTURES, assert_one_line_error, cli
from lora_registry.coverage import peft_check

_L = dict(
    num_hidden_layers=2,
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=128,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
_LATENT = dict(qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, n_group=1, topk_group=1, num_experts_per_tok=2)
_MAMBA2 = dict(mamba_n_heads=4, mamba_d_head=32, mamba_d_state=8, mamba_n_groups=1)

#: family -> (kind, config overrides of the model type's default)
FAMILIES = {
    "llama": ("dense", _L),
    "gemma2": ("dense", dict(_L, head_dim=16)),
    "phi3": ("dense, fused", _L),
    "gpt2": ("dense, fused", dict(n_layer=2, n_embd=64, n_head=4, vocab_size=128)),
    "mixtral": ("MoE, routed only", dict(_L, num_local_experts=4)),
    "qwen3_moe": ("MoE, routed only", dict(_L, num_experts=4, moe_intermediate_size=32)),
    "gpt_oss": ("MoE, routed only", dict(_L, num_local_experts=4, head_dim=16)),
    "qwen2_moe": (
        "MoE, shared expert",
        dict(_L, num_experts=4, moe_intermediate_size=32, shared_expert_intermediate_size=64),
    ),
    "llama4_text": ("MoE, shared expert", dict(_L, num_local_experts=4, intermediate_size_mlp=128, head_dim=16)),
    "deepseek_v3": (
        "latent attention, dense then MoE",
        dict(_L, first_k_dense_replace=1, n_routed_experts=4, moe_intermediate_size=32, q_lora_rank=32, **_LATENT),
    ),
    "deepseek_v2": (
        "latent attention, no query compression",
        dict(_L, first_k_dense_replace=1, n_routed_experts=4, moe_intermediate_size=32, q_lora_rank=None, **_LATENT),
    ),
    "jamba": (
        "hybrid Mamba",
        dict(
            _L,
            num_experts=4,
            attn_layer_period=2,
            attn_layer_offset=1,
            expert_layer_period=2,
            expert_layer_offset=1,
            mamba_d_state=4,
            mamba_dt_rank=8,
        ),
    ),
    "bamba": ("hybrid Mamba-2", dict(_L, attn_layer_indices=[1], **_MAMBA2)),
    "falcon_h1": (
        "hybrid, parallel Mamba-2",
        dict(_L, mamba_d_ssm=64, mamba_n_heads=4, mamba_d_head=16, mamba_d_state=8, mamba_n_groups=1, head_dim=16),
    ),
    "granitemoehybrid": (
        "hybrid Mamba-2, MoE",
        dict(_L, num_local_experts=4, shared_intermediate_size=64, layer_types=["mamba", "attention"], **_MAMBA2),
    ),
    "nemotron_h": (
        "hybrid Mamba-2, MoE",
        dict(
            num_hidden_layers=4,
            layers_block_type=["mamba", "moe", "attention", "mlp"],
            hidden_size=64,
            intermediate_size=96,
            n_routed_experts=4,
            moe_intermediate_size=32,
            moe_shared_expert_intermediate_size=32,
            num_attention_heads=4,
            num_key_value_heads=2,
            mamba_num_heads=4,
            mamba_head_dim=16,
            n_groups=1,
            ssm_state_size=8,
            vocab_size=128,
        ),
    ),
    "qwen3_next": (
        "hybrid Gated DeltaNet, MoE",
        dict(
            _L,
            num_experts=4,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=32,
            layer_types=["linear_attention", "full_attention"],
            head_dim=16,
            linear_num_value_heads=4,
            linear_num_key_heads=2,
            linear_key_head_dim=16,
            linear_value_head_dim=16,
        ),
    ),
    "qwen3_5": (
        "hybrid Gated DeltaNet, VLM",
        dict(
            text_config=dict(
                _L,
                layer_types=["linear_attention", "full_attention"],
                head_dim=16,
                linear_num_key_heads=2,
                linear_num_value_heads=4,
                linear_key_head_dim=16,
                linear_value_head_dim=16,
            ),
            vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64),
        ),
    ),
    "kimi_linear": (
        "hybrid Kimi Delta Attention and latent attention, MoE",
        dict(
            _L,
            num_experts=4,
            moe_intermediate_size=32,
            layer_types=["linear_attention", "full_attention"],
            mlp_layer_types=["dense", "sparse"],
            linear_head_dim=16,
            linear_num_heads=4,
            kv_lora_rank=16,
            qk_rope_head_dim=8,
            qk_nope_head_dim=8,
            v_head_dim=16,
        ),
    ),
    "lfm2": ("hybrid short convolution", dict(_L, layer_types=["conv", "full_attention"])),
    "recurrent_gemma": (
        "hybrid RG-LRU",
        dict(_L, num_hidden_layers=3, lru_width=64, head_dim=16, num_key_value_heads=1),
    ),
    "whisper": (
        "speech encoder-decoder",
        dict(
            encoder_layers=2,
            decoder_layers=2,
            d_model=64,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=128,
            decoder_ffn_dim=128,
            vocab_size=128,
            num_mel_bins=16,
            max_source_positions=32,
            max_target_positions=32,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
        ),
    ),
    "llava": (
        "VLM",
        dict(
            text_config=dict(model_type="llama", **_L),
            vision_config=dict(
                num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2, image_size=32
            ),
        ),
    ),
    # state-space and recurrent models only: no attention, no q or v
    "mamba": ("state-space", dict(num_hidden_layers=2, hidden_size=64, state_size=8, vocab_size=128)),
    "mamba2": (
        "state-space",
        dict(num_hidden_layers=2, hidden_size=64, state_size=8, num_heads=4, head_dim=32, n_groups=1, vocab_size=128),
    ),
    "falcon_mamba": ("state-space", dict(num_hidden_layers=2, hidden_size=64, state_size=8, vocab_size=128)),
    "rwkv": (
        "recurrent",
        dict(num_hidden_layers=2, hidden_size=64, attention_hidden_size=64, intermediate_size=128, vocab_size=128),
    ),
    "xlstm": ("recurrent", dict(num_blocks=2, hidden_size=64, embedding_dim=64, num_heads=4, vocab_size=128)),
}
NO_ATTENTION = {"mamba", "mamba2", "falcon_mamba", "rwkv", "xlstm"}
#: the families issue 13 names for compare (Kimi-K2 is its published config, below)
COMPARED = {
    "mixtral",
    "qwen3_moe",
    "gpt_oss",
    "deepseek_v3",
    "llama4_text",
    "qwen3_5",
    "qwen3_next",
    "nemotron_h",
    "jamba",
}
#: the request as the CLI takes it, and as (roles, r, per-role ranks, per-role alphas) for the PEFT check
REQUESTS = {
    "q,v,ffn": (["--roles", "q,v,ffn"], ("q,v,ffn", 8, None, None)),
    "qv8-ffn4": (["--preset", "qv8-ffn4"], ("q,v,ffn", 8, {"ffn": 4}, {"ffn": 8})),
    "all": (["--roles", "all"], ("all", 8, None, None)),
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    out = {}
    for family, (_, overrides) in FAMILIES.items():
        AutoConfig.for_model(family, **overrides).save_pretrained(root / family)
        # transformers 5.23 writes its default time_step_limit (0.0, inf) as a list and then refuses to read it
        path = root / family / "config.json"
        data = json.loads(path.read_text())
        data.pop("time_step_limit", None)
        path.write_text(json.dumps(data))
        out[family] = root / family
    return out


def test_the_matrix_is_broad():
    kinds = {kind.split(",")[0] for kind, _ in FAMILIES.values()}
    assert len(FAMILIES) >= 20 + len(NO_ATTENTION)
    assert {"dense", "MoE", "latent attention", "hybrid Mamba", "speech encoder-decoder", "VLM", "state-space"} <= kinds


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_standard_requests(family, folders, pm):
    folder = str(folders[family])
    for label in ["all"] if family in NO_ATTENTION else list(REQUESTS):
        args, (roles, r, ranks, alphas) = REQUESTS[label]
        out = cli("resolve", folder, *args, "-f", "json")
        assert out.code == 0, (label, out)
        doc = json.loads(out.stdout)
        # the map comes from the cache the CLI filled, with a fresh meta module for PEFT to wrap
        resolution = lr.resolve(folder, roles=roles, plugin_manager=pm, cache=True)
        assert doc["roles"] == resolution.names_by_role()
        result = peft_check(resolution, r=r, ranks=ranks, alphas=alphas)
        assert result.exact, (label, result.difference())
        assert doc["trainable_parameters"] == result.trainable, label
    if family in NO_ATTENTION:
        error = assert_one_line_error(cli("resolve", folder, "--roles", "q,v"), "matches nothing", "ask for mixer")
        assert "mixer-in" in error
    if family in COMPARED:
        rows = json.loads(cli("compare", folder, "-f", "json").stdout)["choices"]
        assert all(row.get("trainable_parameters", 0) > 0 for row in rows), [r.get("error") for r in rows]


def test_compare_on_kimi_k2_shows_every_standard_row():
    rows = json.loads(cli("compare", str(FIXTURES / "kimi-k2"), "-f", "json").stdout)["choices"]
    assert all(row.get("trainable_parameters", 0) > 0 for row in rows), [r.get("error") for r in rows]
