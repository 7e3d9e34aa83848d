"""The sweep: every model type in transformers' causal-LM, seq2seq-LM and image-text-to-text mappings.

Marked ``sweep``: skipped by a bare ``pytest`` (the quick local loop), run by ``pytest --sweep``,
which is the README's test command and what ``.ci/run`` runs.
"""

from __future__ import annotations

import pytest

from lora_registry import coverage

# Model types whose default config transformers itself cannot build on this machine, and why.
# A model type that starts building again fails its test, so this list cannot go stale silently.
BUILD_FAILURES = {
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
    assert not row.unexplained, f"{len(row.unexplained)} leaves with neither a role nor a reason, e.g. {row.unexplained[0]}"
    assert row.with_role + sum(row.nulls.values()) == row.leaves
    # PEFT adapts exactly the `all` resolution, with the predicted trainable-parameter count
    if row.peft_exact is None:
        assert not set(row.roles) & {"attention-q", "attention-qkv", "attention-q-a", "ffn-up", "ffn-gate-up",
                                     "experts-up", "experts-gate-up"}
    else:
        assert row.peft_exact, row.peft_note


def test_corpus_is_the_three_mappings():
    types = coverage.corpus()
    assert len(types) > 250
    for model_type in ("llama", "t5", "bart", "llava", "gpt2", "jamba", "deepseek_v3"):
        assert model_type in types
    assert "vit" not in types and "clip" not in types  # no text generation
