"""The sweep: every model type in transformers' causal-LM, seq2seq-LM and image-text-to-text mappings.

Marked ``sweep``: skipped by a bare ``pytest`` (the quick local loop), run by ``pytest --sweep``,
which is the README's test command and what ``.ci/run`` runs.
"""

from __future__ import annotations

import pytest

from lora_registry import coverage

# Model types whose default config transformers 5.23 itself cannot build on this machine (its own
# classes reject its own defaults, or need PIL/timm), with a fragment of its error.
# A model type that starts building again fails its test, so this list cannot go stale silently.
BUILD_FAILURES = {
    "aya_vision": "embed_dim must be divisible by num_heads (got `embed_dim`: 1",
    "chameleon": "'NoneType' object has no attribute 'get'",
    "cohere_compass": "'full_attention'",
    "cohere_compass_text": "'full_attention'",
    "dbrx": "'DbrxAttentionConfig' object has no attribute 'rope_theta'",
    "deepseek_ocr2": "'NoneType' object is not subscriptable",
    "diffusion_gemma": "empty(): argument 'size' (position 1) must be tuple of ints,",
    "dots1": "empty() takes 1 positional argument but 3 were given",
    "evolla": "transformers has no model class for this model_type",
    "fast_vlm": "TimmWrapperModel requires the PIL library but it was not fou",
    "gemma3n": "TimmWrapperModel requires the PIL library but it was not fou",
    "gemma4_assistant": "Class validation error for validator 'validate_architecture'",
    "gemma4_unified_assistant": "The set of layer types producing a cache is different than t",
    "granite4_vision": "object of type 'NoneType' has no len()",
    "hunyuan_v1_dense": "unsupported operand type(s) for ** or pow(): 'NoneType' and",
    "hunyuan_v1_moe": "unsupported operand type(s) for ** or pow(): 'NoneType' and",
    "hunyuan_vl": "unsupported operand type(s) for ** or pow(): 'NoneType' and",
    "lfm2_moe": "'NoneType' object is not subscriptable",
    "ministral": "unsupported operand type(s) for ** or pow(): 'NoneType' and",
    "musicgen": "'MusicgenConfig' object has no attribute 'dropout'",
    "musicgen_melody": "'MusicgenMelodyConfig' object has no attribute 'dropout'",
    "nemotron": "unsupported operand type(s) for //: 'int' and 'NoneType'",
    "perception_lm": "TimmWrapperModel requires the PIL library but it was not fou",
    "qwen4_exp": "unsupported operand type(s) for //: 'NoneType' and 'NoneType",
    "qwen4_exp_text": "unsupported operand type(s) for //: 'NoneType' and 'NoneType",
}


# Model types where PEFT's get_peft_model itself fails, whatever the config.
PEFT_FAILURES = {
    "pp_formulanet": "get_input_embeddings",  # PEFT asks for the input embeddings; PPFormulaNetModel raises
}

# Model types whose token mixers no role can reach, with the reason (every other mixer must be adapted by `all`).
UNREACHABLE_MIXERS = {
    # q/k/v/o/r are 3-D [d_model, heads, head_dim] tensors used through einsum; PEFT's target_parameters
    # reads a 3-D tensor as [experts, out, in], so a LoRA there would not be a LoRA of the projection
    "xlnet": "rel_attn",
}


@pytest.fixture(scope="module")
def sweep_pm():
    from lora_registry import get_plugin_manager

    return get_plugin_manager(entry_points=False)


@pytest.mark.sweep
@pytest.mark.parametrize("model_type", coverage.corpus())
def test_model_type(model_type, sweep_pm):
    row = coverage.check(model_type, plugin_manager=sweep_pm)
    if model_type in BUILD_FAILURES:
        assert not row.built, f"{model_type} builds now: remove it from BUILD_FAILURES"
        assert BUILD_FAILURES[model_type] in row.error
        return
    # inspect succeeded
    assert row.built, row.error
    assert row.leaves > 0
    # every language-model leaf has a role or an explicit null with its reason
    assert not row.unexplained, (
        f"{len(row.unexplained)} leaves with neither a role nor a reason, e.g. {row.unexplained[0]}"
    )
    assert row.with_role + sum(row.nulls.values()) == row.leaves
    # every token mixer (softmax attention or another mixer) has a leaf that `all` adapts
    if model_type in UNREACHABLE_MIXERS:
        assert row.unreached and all(UNREACHABLE_MIXERS[model_type] in block for block in row.unreached)
    else:
        assert not row.unreached, f"{len(row.unreached)} token mixers `all` does not reach, e.g. {row.unreached[0]}"
    # PEFT adapts exactly the `all` resolution, with the predicted trainable-parameter count
    if model_type in PEFT_FAILURES:
        assert row.peft_exact is False and PEFT_FAILURES[model_type] in row.peft_note, row.peft_note
    else:
        assert row.peft_exact, row.peft_note


def test_corpus_is_the_three_mappings():
    types = coverage.corpus()
    assert len(types) > 250
    for model_type in ("llama", "t5", "bart", "llava", "gpt2", "jamba", "deepseek_v3"):
        assert model_type in types
    assert "vit" not in types and "clip" not in types  # no text generation
