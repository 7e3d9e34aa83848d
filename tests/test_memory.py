"""plan: the meta simulation equals real tensors to the byte, extrapolation equals a full run, the GPU verdicts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import ROOT


def tiny_config(layers=2, **extra):
    """A small Llama config (transformers' own class, no hub)."""
    from transformers import AutoConfig

    fields = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=256)
    fields.update(extra)
    return AutoConfig.for_model("llama", **fields)


def lora(targets=("q_proj", "v_proj", "down_proj"), r=8):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets))


@pytest.mark.parametrize("settings", [
    dict(),
    dict(gradient_checkpointing=True),
    dict(batch=2),  # a padded batch: the boolean mask becomes SDPA's float mask
    dict(quant="4bit"),
    dict(quant="4bit", gradient_checkpointing=True, recipe="trl"),
    dict(recipe="trl"),
], ids=["lora", "lora-checkpointing", "padded", "qlora", "qlora-trl-checkpointing", "trl"])
def test_meta_simulation_equals_real_tensors_to_the_byte(settings):
    from lora_registry.memory import MemorySettings, simulate_step

    s = MemorySettings(seq_len=32, **settings)
    real = simulate_step(tiny_config(), lora(), s, device="cpu", target="cpu")
    meta = simulate_step(tiny_config(), lora(), s, device="meta", target="cpu")
    assert meta.phases == real.phases
    assert (meta.tracked, meta.reserved, meta.phase) == (real.tracked, real.reserved, real.phase)


def test_extrapolation_equals_the_full_simulation():
    from lora_registry.memory import MemorySettings, plan_memory, simulate_step

    config = tiny_config(layers=7, vocab_size=1024)
    s = MemorySettings(seq_len=64, batch=2, gradient_checkpointing=True)
    plan = plan_memory(config, lora(), s, model_label="tiny")
    full = simulate_step(config, lora(), s, depth=7)
    assert plan.simulated_layers != (7,), plan.assumptions
    assert plan.breakdown == full.breakdown
    assert plan.phase == full.phase
    assert plan.allocated == full.allocated
    assert abs(plan.reserved - full.reserved) <= 0.02 * full.reserved


def test_peft_keeps_the_adapter_fp32_on_a_bf16_model():
    from transformers import AutoModelForCausalLM
    from peft import get_peft_model

    from lora_registry.memory import adapter_dtype_bytes

    import torch

    model = AutoModelForCausalLM.from_config(tiny_config(), dtype=torch.bfloat16)
    peft_model = get_peft_model(model, lora())
    dtypes = {p.dtype for n, p in peft_model.named_parameters() if p.requires_grad}
    assert dtypes == {torch.float32}
    assert adapter_dtype_bytes() == 4


def test_trl_recipe_upcasts_what_is_not_quantized():
    from lora_registry.memory import MemorySettings, plan_memory

    config = tiny_config(layers=2, vocab_size=4096)
    peft = plan_memory(config, lora(), MemorySettings(seq_len=64, quant="4bit"), model_label="tiny")
    trl = plan_memory(config, lora(), MemorySettings(seq_len=64, quant="4bit", recipe="trl"), model_label="tiny")
    # prepare_model_for_kbit_training: embeddings, lm_head and norms go to fp32 (twice the bytes)
    assert trl.breakdown["base_weights"] > 1.5 * peft.breakdown["base_weights"]
    # the fixed cuBLAS workspaces ("other") would hide the difference on a model this small
    assert trl.allocated - trl.breakdown["other"] > 1.2 * (peft.allocated - peft.breakdown["other"])
    assert any("prepare_model_for_kbit_training" in a for a in trl.assumptions)


def test_gpu_verdicts_and_the_largest_length_and_batch():
    from dataclasses import replace

    from lora_registry.memory import SEQ_STEP, MemorySettings, plan_memory

    config = tiny_config(layers=4, hidden_size=512, intermediate_size=1024, num_attention_heads=8,
                         num_key_value_heads=8, vocab_size=32000)
    base = MemorySettings(seq_len=1024, batch=1, gpu="2GB")
    plan = plan_memory(config, lora(), base, model_label="small")
    assert plan.gpu_name == "2GB" and plan.gpu_total == 2 << 30
    assert plan.fits in ("fits", "tight")
    n, b = plan.max_seq_len, plan.max_batch
    assert n is not None and n % SEQ_STEP == 0 and n >= 1024 and b >= 1

    def verdict(**change):
        return plan_memory(config, lora(), replace(base, **change), model_label="small", search=False).fits

    assert verdict(seq_len=n) != "does-not-fit"
    assert verdict(seq_len=n + SEQ_STEP) == "does-not-fit"
    assert verdict(batch=b) != "does-not-fit"
    assert verdict(batch=b + 1) == "does-not-fit"
    peaks = [plan_memory(config, lora(), MemorySettings(seq_len=L), model_label="small").allocated
             for L in (256, 512, 1024)]
    assert peaks == sorted(peaks) and len(set(peaks)) == 3
    assert plan_memory(config, lora(), replace(base, gpu="H100"), model_label="small").fits == "fits"
    assert plan_memory(config, lora(), replace(base, gpu="1GB"), model_label="small", search=False).fits \
        == "does-not-fit"


def test_json_has_the_documented_keys():
    from lora_registry.memory import CATEGORIES, MemorySettings, plan_memory

    plan = plan_memory(tiny_config(), lora(), MemorySettings(seq_len=100_000), model_label="tiny")
    data = plan.to_dict()
    for key in ("model", "model_type", "settings", "peak_bytes", "breakdown_bytes", "context_bytes", "gpu", "fits",
                "max_seq_len", "max_batch", "assumptions"):
        assert key in data
    assert set(data["breakdown_bytes"]) == set(CATEGORIES)
    assert set(data["peak_bytes"]) == {"allocated", "reserved"}
    assert data["peak_bytes"]["reserved"] >= data["peak_bytes"]["allocated"] > 0
    assert data["gpu"] is None and data["fits"] is None
    assert any("max_position_embeddings" in a for a in data["assumptions"])  # planned, with a note


@pytest.mark.parametrize("kwargs, message", [
    (dict(seq_len=0), "--seq-len must be a positive whole number"),
    (dict(seq_len=-5), "--seq-len must be a positive whole number"),
    (dict(seq_len=8, batch=0), "--batch must be a positive whole number"),
    (dict(seq_len=8, quant="3bit"), "--quant must be one of"),
    (dict(seq_len=8, dtype="fp8"), "--dtype must be one of"),
    (dict(seq_len=8, recipe="axolotl"), "--recipe must be one of"),
    (dict(seq_len=8, gpu="RTX9999"), "unknown GPU 'RTX9999'"),
    (dict(seq_len=8, gpu="0GB"), "--gpu size must be above 0 GB"),
])
def test_bad_settings_are_one_line_config_errors(kwargs, message):
    from lora_registry import ConfigError
    from lora_registry.memory import MemorySettings

    with pytest.raises(ConfigError) as err:
        MemorySettings(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_bitsandbytes_names_the_extra(monkeypatch):
    from lora_registry import ConfigError
    from lora_registry.memory import MemorySettings, plan_memory

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # an import that fails, as without the package
    with pytest.raises(ConfigError, match=r"lora-registry\[qlora\]"):
        plan_memory(tiny_config(), lora(), MemorySettings(seq_len=8, quant="4bit"), model_label="tiny")


def test_a_forward_that_cannot_run_on_meta_names_the_op():
    import torch

    from lora_registry import ModelLoadError
    from lora_registry.memory import MemorySettings, plan_memory

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = torch.nn.Linear(8, 8)

        def forward(self, input_ids, labels=None, **kwargs):
            picked = torch.nonzero(input_ids)  # its size depends on the data: meta cannot say
            out = self.q_proj(picked.float().expand(-1, 8))
            return type("Out", (), {"loss": out.sum(), "logits": None})()

    with pytest.raises(ModelLoadError, match=r"at op nonzero") as err:
        plan_memory(tiny_config(), lora(("q_proj",)), MemorySettings(seq_len=8), model_label="odd",
                    build_model=lambda config: Odd())
    assert "\n" not in str(err.value)


def test_weight_memory_matches_bitsandbytes_layouts():
    import torch
    import bitsandbytes as bnb

    from lora_registry.memory import weight_memory

    out = weight_memory([("q", (128, 64), True), ("norm", (64,), False)])
    assert out["bf16"] == 2 * (128 * 64 + 64)
    q = bnb.nn.Params4bit(torch.randn(128, 64), requires_grad=False, quant_type="nf4",
                          compress_statistics=False)._quantize("cpu")
    state = q.quant_state
    nf4 = q.numel() * q.element_size() + state.absmax.numel() * 4 + state.code.numel() * 4
    assert out["4bit"] == nf4 + 2 * 64
    q2 = bnb.nn.Params4bit(torch.randn(128, 64), requires_grad=False, quant_type="nf4",
                           compress_statistics=True)._quantize("cpu")
    s2 = q2.quant_state
    nested = (q2.numel() + s2.absmax.numel() + s2.state2.absmax.numel() * 4 + s2.state2.code.numel() * 4
              + s2.code.numel() * 4 + 4)
    assert out["4bit_double_quant"] == nested + 2 * 64
    assert out["8bit"] == 128 * 64 + 4 * 128 + 2 * 64


def test_gpu_table_is_data_in_the_registry():
    from lora_registry.memory import gpu_bytes
    from lora_registry.registry import load_registry

    gpus = load_registry().gpus
    assert gpus["rtx4090"] == 24 and gpus["a100-80gb"] == 80 and gpus["h100"] == 80
    assert gpu_bytes("rtx4090") == ("rtx4090", 24 << 30)
    assert gpu_bytes("24GB")[1] == 24 << 30
    assert gpu_bytes("A100")[1] == 80 << 30  # an alias


def test_gpu_benchmark_script_runs_on_cpu():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "memory_gpu.py"), "--device", "cpu",
                           "--dry-run", "--limit", "1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    row = [line for line in done.stdout.splitlines() if line.startswith("| tiny-llama")]
    assert row and "+0.0%" in row[0], done.stdout
