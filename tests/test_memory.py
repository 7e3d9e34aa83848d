"""plan: the meta simulation equals real tensors to the byte, extrapolation equals a full run, the adapter
plan's memory, the command line, the GPU verdicts, bad input, and the base weights as bitsandbytes stores them."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
from typer.testing import CliRunner

import lora_registry as lr
from helpers import PROBE, ROOT, probe_cli, write_config
from lora_registry.cli import app
from lora_registry.memory import CATEGORIES, SEQ_STEP, MemorySettings, plan_memory

runner = CliRunner()
TINY = dict(
    model_type="llama",
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=256,
)


def tiny_config(layers=2, **extra):
    """A small Llama config (transformers' own class, no hub)."""
    from transformers import AutoConfig

    fields = {**TINY, "num_hidden_layers": layers, **extra}  # model_type too may be changed
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def lora(targets=("q_proj", "v_proj", "down_proj"), r=8):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets))


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A 6-layer tiny Llama as a config.json folder (the fast path maps it without building it)."""
    return write_config(tmp_path_factory.mktemp("plan"), {**TINY, "num_hidden_layers": 6}, "tiny-llama")


# ----------------------------------------------------------------------------- the simulation is the real step
@pytest.mark.parametrize(
    "settings",
    [
        dict(),
        dict(gradient_checkpointing=True),
        dict(batch=2),  # a padded batch: the boolean mask becomes SDPA's float mask
        dict(quant="4bit"),
        dict(quant="4bit", gradient_checkpointing=True, recipe="trl"),
        dict(recipe="trl"),
        dict(quant="8bit"),
    ],
    ids=["lora", "lora-checkpointing", "padded", "qlora", "qlora-trl-checkpointing", "trl", "8bit"],
)
def test_meta_simulation_equals_real_tensors_to_the_byte(settings):
    from lora_registry.simulation import simulate_step

    s = MemorySettings(seq_len=32, **settings)
    real = simulate_step(tiny_config(), lora(), s, device="cpu", target="cpu")
    meta = simulate_step(tiny_config(), lora(), s, device="meta", target="cpu")
    assert meta.phases == real.phases
    assert (meta.tracked, meta.reserved, meta.phase) == (real.tracked, real.reserved, real.phase)


def test_lora_on_3d_experts_on_meta_equals_real_tensors():
    # PEFT's ParamWrapper (target_parameters) folds its delta under torch.autocast(device_type="meta")
    from lora_registry.simulation import simulate_step

    config = tiny_config(model_type="qwen3_moe", num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32)
    experts = lora(("q_proj",))
    experts.target_parameters = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
    s = MemorySettings(seq_len=32, gradient_checkpointing=True)
    real = simulate_step(config, experts, s, device="cpu", target="cpu")
    meta = simulate_step(config, experts, s, device="meta", target="cpu")
    assert meta.phases == real.phases and meta.trainable == real.trainable > 0


def test_extrapolation_equals_the_full_simulation():
    from lora_registry.simulation import simulate_step

    config = tiny_config(layers=7, vocab_size=1024)
    s = MemorySettings(seq_len=64, batch=2, gradient_checkpointing=True)
    plan = plan_memory(config, lora(), s, model_label="tiny")
    full = simulate_step(config, lora(), s, depth=7)
    assert plan.simulated_layers != (7,), plan.assumptions
    assert plan.breakdown == full.breakdown
    assert plan.phase == full.phase
    assert plan.allocated == full.allocated
    assert abs(plan.reserved - full.reserved) <= 0.02 * full.reserved


def test_trl_recipe_upcasts_what_is_not_quantized():
    config = tiny_config(layers=2, vocab_size=4096)
    peft = plan_memory(config, lora(), MemorySettings(seq_len=64, quant="4bit"), model_label="tiny")
    trl = plan_memory(config, lora(), MemorySettings(seq_len=64, quant="4bit", recipe="trl"), model_label="tiny")
    # prepare_model_for_kbit_training: embeddings, lm_head and norms go to fp32 (twice the bytes)
    assert trl.breakdown["base_weights"] > 1.5 * peft.breakdown["base_weights"]
    # the fixed cuBLAS workspaces ("other") would hide the difference on a model this small
    assert trl.allocated - trl.breakdown["other"] > 1.2 * (peft.allocated - peft.breakdown["other"])
    assert any("prepare_model_for_kbit_training" in a for a in trl.assumptions)


# ----------------------------------------------------------------------------- the adapter plan's memory
def test_adapter_plan_memory_plans_its_own_lora_config(tiny_folder):
    resolution = lr.resolve(lr.inspect(tiny_folder, fast=True), roles="q,v,down")  # the config-only map
    adapter = resolution.plan(lr.LoraSettings(r=4, use_dora=True))
    settings = MemorySettings(seq_len=96, batch=2, gradient_checkpointing=True)
    memory = adapter.memory(settings)
    assert not resolution.model_map.handle.built  # the recipe is the config: the full model is never built
    direct = plan_memory(tiny_config(layers=6), adapter.lora_config(), settings, model_label=tiny_folder)
    assert memory.to_dict() == direct.to_dict()
    assert memory.trainable_parameters == adapter.cost.total  # extrapolated, and equal to the cost
    assert memory.simulated_layers == (1, 2, 3) and memory.layers == 6
    # a config object and a built module plan the same model
    for source in (tiny_config(layers=6), resolution.model_map.module):
        again = lr.resolve(source, roles="q,v,down").plan(lr.LoraSettings(r=4, use_dora=True)).memory(settings)
        assert again.to_dict()["peak_bytes"] == memory.to_dict()["peak_bytes"]


def test_a_layer_selection_simulates_every_layer(tiny_folder):
    adapter = lr.resolve(tiny_folder, roles="q,v", last_layers=2).plan()
    memory = adapter.memory(MemorySettings(seq_len=32))
    assert memory.simulated_layers == (6,)
    assert memory.trainable_parameters == adapter.cost.total
    assert any("only some layers" in a for a in memory.assumptions)


# ----------------------------------------------------------------------------- GPUs
def test_gpu_verdicts_and_the_largest_length_and_batch():
    config = tiny_config(
        layers=4,
        hidden_size=512,
        intermediate_size=1024,
        num_attention_heads=8,
        num_key_value_heads=8,
        vocab_size=32000,
    )
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
    peaks = [
        plan_memory(config, lora(), MemorySettings(seq_len=L), model_label="small").allocated for L in (256, 512, 1024)
    ]
    assert peaks == sorted(peaks) and len(set(peaks)) == 3
    assert plan_memory(config, lora(), replace(base, gpu="H100"), model_label="small").fits == "fits"
    assert plan_memory(config, lora(), replace(base, gpu="1GB"), model_label="small", search=False).fits == (
        "does-not-fit"
    )


def test_gpu_table_is_data_in_the_registry():
    from lora_registry.memory import gpu_bytes
    from lora_registry.registry import load_registry

    gpus = load_registry().gpus
    assert gpus["rtx4090"] == 24 and gpus["a100-80gb"] == 80 and gpus["h100"] == 80
    assert gpu_bytes("rtx4090") == ("rtx4090", 24 << 30)
    assert gpu_bytes("24GB")[1] == 24 << 30
    assert gpu_bytes("A100")[1] == 80 << 30  # an alias


# ----------------------------------------------------------------------------- the command line
def test_plan_json_has_the_documented_keys(tiny_folder):
    result = runner.invoke(app, ["plan", tiny_folder, "--roles", "q,v", "--seq-len", "100000", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    for key in (
        "model",
        "model_type",
        "settings",
        "peak_bytes",
        "breakdown_bytes",
        "context_bytes",
        "gpu",
        "fits",
        "max_seq_len",
        "max_batch",
        "assumptions",
    ):
        assert key in doc
    assert set(doc["breakdown_bytes"]) == set(CATEGORIES)
    assert set(doc["peak_bytes"]) == {"allocated", "reserved"}
    assert doc["peak_bytes"]["reserved"] >= doc["peak_bytes"]["allocated"] > sum(doc["breakdown_bytes"].values()) // 2
    assert doc["gpu"] is None and doc["fits"] is None and doc["max_seq_len"] is None
    assert any("max_position_embeddings" in a for a in doc["assumptions"])  # planned, with a note
    assert doc["settings"]["seq_len"] == 100000 and doc["model_type"] == "llama"


def test_plan_table_with_a_gpu_and_resolve_options(tiny_folder, tmp_path):
    out = tmp_path / "plan.txt"
    args = ["plan", tiny_folder, "--preset", "qv8-ffn4", "--rank-for", "ffn=2", "--seq-len", "128", "--batch", "2"]
    # 1 GiB is the CUDA context allowance alone: nothing fits, and the searches say so at once
    result = runner.invoke(app, [*args, "--gpu", "1GB", "--packed", "--gradient-checkpointing", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "peak allocated" in text and "1GB (1.00 GiB): does-not-fit" in text and "assumptions:" in text
    assert "largest seq_len at batch 2: none; largest batch at seq_len 128: none" in text
    assert "packed rows" in text and "gradient checkpointing: every layer" in text
    # the same options, as resolve takes them, give the adapter whose memory is planned
    doc = json.loads(runner.invoke(app, [*args, "--packed", "--format", "json"]).stdout)
    adapter = lr.resolve(tiny_folder, roles="q,v,ffn").plan(
        lr.LoraSettings.from_preset(lr.get_plugin_host().registry.presets["qv8-ffn4"], ranks={"ffn": 2})
    )
    assert doc["trainable_parameters"] == adapter.cost.total


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seq-len", "0"], "--seq-len must be a positive whole number"),
        (["--seq-len", "-5"], "--seq-len must be a positive whole number"),
        (["--seq-len", "8", "--batch", "0"], "--batch must be a positive whole number"),
        (["--seq-len", "8", "--gpu", "RTX9999"], "unknown GPU 'RTX9999'"),
        (["--seq-len", "8", "--gpu", "0GB"], "--gpu size must be above 0 GB"),
        (["--seq-len", "8", "--quant", "3bit"], "--quant must be one of"),
        (["--seq-len", "8", "--dtype", "fp8"], "--dtype must be one of"),
        (["--seq-len", "8", "--recipe", "axolotl"], "--recipe must be one of"),
        (["--seq-len", "8", "--format", "yaml"], "unknown format 'yaml'"),
        (["--seq-len", "8", "--roles", "nope"], "nope"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_folder, args, message):
    result = runner.invoke(app, ["plan", tiny_folder, *(["--roles", "q"] if "--roles" not in args else []), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


def test_no_seq_len_is_one_line():
    done = probe_cli("plan", "llama", "--roles", "q")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and "Missing option '--seq-len'" in lines[0], done.stderr  # then the probe's LOADED= line
    assert lines[1] == "LOADED="  # refused before torch, transformers or PEFT were imported


def test_quant_without_bitsandbytes_names_the_extra(tiny_folder):
    # a fresh interpreter where importing bitsandbytes fails, as without the package
    blocked = "import sys; sys.modules['bitsandbytes'] = None\n" + PROBE
    done = subprocess.run(
        [sys.executable, "-c", blocked, "plan", tiny_folder, "--roles", "q", "--seq-len", "8", "--quant", "4bit"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()[0]
    assert "pip install 'lora-registry[qlora]'" in error and "--quant 4bit" in error
    assert "torch" not in done.stderr.strip().splitlines()[-1]  # refused before any model was read


def test_a_forward_that_cannot_run_on_meta_names_the_op():
    import torch

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = torch.nn.Linear(8, 8)

        def forward(self, input_ids, labels=None, **kwargs):
            picked = torch.nonzero(input_ids)  # its size depends on the data: meta cannot say
            out = self.q_proj(picked.float().expand(-1, 8))
            return type("Out", (), {"loss": out.sum(), "logits": None})()

    with pytest.raises(lr.ModelLoadError, match=r"at op .*nonzero") as err:
        plan_memory(
            tiny_config(), lora(("q_proj",)), MemorySettings(seq_len=8), model_label="odd", build_model=lambda c: Odd()
        )
    assert "\n" not in str(err.value)


def test_a_map_without_a_model_cannot_plan(tiny_folder):
    from lora_registry.inspection import ModelMap

    model_map = lr.inspect(tiny_folder)
    bare = ModelMap.from_json(model_map.to_json(), model="bare", registry=model_map.vocabulary)
    with pytest.raises(lr.ConfigError, match="no model to simulate"):
        lr.resolve(bare, roles="q").plan().memory(MemorySettings(seq_len=8))


# ----------------------------------------------------------------------------- base weights as bitsandbytes stores them
@pytest.mark.parametrize(
    "fields",
    [
        TINY,
        {**TINY, "tie_word_embeddings": True},
        dict(model_type="gpt2", n_embd=64, n_layer=2, n_head=4, vocab_size=256, n_positions=64),
        {
            **TINY,
            "model_type": "qwen3_moe",
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
        },
    ],
    ids=["llama", "llama-tied", "gpt2-conv1d", "qwen3-moe-3d-experts"],
)
def test_weight_memory_is_what_bitsandbytes_builds(fields):
    from transformers import AutoConfig

    from lora_registry.loading import build_model
    from lora_registry.quantization import weight_memory
    from lora_registry.simulation import _build, _quant_tensors
    from lora_registry.tree import ModuleTree

    data = dict(fields)
    config = AutoConfig.for_model(data.pop("model_type"), **data)
    expected = weight_memory(ModuleTree.from_module(build_model(config)))
    for quant, key in (("none", "bf16"), ("8bit", "8bit"), ("4bit", "4bit_double_quant")):
        model = _build(config, MemorySettings(seq_len=8, quant=quant), None, None, "meta")
        seen, total = set(), 0
        for p in model.parameters():
            for t in (p, *_quant_tensors(p)):
                if id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
        assert total == expected[key], (quant, total, expected)


def test_nf4_without_double_quantization_matches_bitsandbytes():
    import bitsandbytes as bnb
    import torch

    from lora_registry.quantization import weight_memory
    from lora_registry.tree import ModuleTree

    tree = ModuleTree.from_module(torch.nn.Sequential(torch.nn.Linear(64, 128, bias=False), torch.nn.LayerNorm(64)))
    q = bnb.nn.Params4bit(torch.randn(128, 64), requires_grad=False, quant_type="nf4", compress_statistics=False)
    state = q._quantize("cpu").quant_state
    nf4 = 128 * 64 // 2 + state.absmax.numel() * 4 + state.code.numel() * 4
    # the last parameter's module is never converted (get_keys_to_not_convert): the LayerNorm here
    assert weight_memory(tree)["4bit"] == nf4 + 2 * 2 * 64


def test_gpu_benchmark_script_runs_on_cpu():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "memory_gpu.py"), "--device", "cpu", "--dry-run", "--limit", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    row = [line for line in done.stdout.splitlines() if line.startswith("| tiny-llama")]
    assert row and "+0.0%" in row[0], done.stdout
