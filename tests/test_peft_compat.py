"""Each PEFT rule ``lora_registry.peft_compat`` restates, checked against real PEFT on tiny models."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.tuners_utils import check_target_module_exists
from peft.utils.other import get_pattern_key
from transformers import AutoConfig, AutoModelForCausalLM

from lora_registry import peft_compat
from lora_registry.tree import ModuleTree, parameter_shape


def _build(model_type, device="meta", **sizes):
    config = AutoConfig.for_model(
        model_type,
        num_hidden_layers=2,
        hidden_size=64,
        intermediate_size=96,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=100,
        **sizes,
    )
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config)


def _apply(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_peft_model(model, LoraConfig(**kwargs))


@pytest.fixture(scope="module")
def llama_names():
    return [name for name, _ in _build("llama").named_modules() if name]


@pytest.mark.parametrize(
    "targets",
    [
        ["q_proj"],
        ["self_attn.q_proj", "mlp.down_proj"],
        ["proj"],
        ["model.layers.0.self_attn.q_proj"],
        ["layers.1.mlp"],
        r"model\.layers\.\d+\.self_attn\.(q_proj|v_proj)",
        r".*_proj",
        r"q_proj",
    ],
)
def test_target_modules_rule(llama_names, targets):
    probe = SimpleNamespace(
        target_modules=targets,
        target_parameters=None,
        exclude_modules=None,
        modules_to_save=None,
        layers_to_transform=None,
        layers_pattern=None,
    )
    peft = {n for n in llama_names if check_target_module_exists(probe, n)}
    ours = {n for n in llama_names if peft_compat.matches_target_modules(targets, n)}
    assert ours == peft


@pytest.mark.parametrize(
    "targets",
    [["gate_up_proj"], ["experts.down_proj"], ["mlp.gate.weight"], ["model.layers.1.mlp.experts.gate_up_proj"]],
)
def test_target_parameters_rule(targets):
    model = _build("qwen3_moe", num_experts=4, moe_intermediate_size=32)
    keys = [f"{m}.{p}" if m else p for m, sub in model.named_modules() for p, _ in sub.named_parameters(recurse=False)]
    peft = _apply(model, target_modules=[], target_parameters=targets)
    assert set(peft.base_model.targeted_parameter_names) == {
        k for k in keys if peft_compat.matches_target_parameters(targets, k)
    }


@pytest.mark.parametrize(
    "key,name",
    [
        ("q_proj", "model.layers.0.self_attn.q_proj"),
        ("self_attn.q_proj", "model.layers.0.self_attn.q_proj"),
        ("proj", "model.layers.0.self_attn.q_proj"),
        (r"layers\.0\..*", "model.layers.0.mlp.up_proj"),
        ("model.layers.0.mlp.up_proj", "model.layers.0.mlp.up_proj"),
        ("up", "model.layers.0.mlp.up_proj"),
    ],
)
def test_pattern_key_rule(key, name):
    assert peft_compat.matches_pattern_key(key, name) == (get_pattern_key([key], name) == key)


@pytest.mark.parametrize("entry", ["lm_head", "embed_tokens", "head", "norm", "layers.1.mlp"])
def test_modules_to_save_rule(entry):
    model = _build("llama")
    names = [name for name, _ in model.named_modules(remove_duplicate=False) if name]
    expected = {n for n in names if peft_compat.matches_modules_to_save(entry, n)}
    peft = _apply(model, target_modules=["q_proj"], modules_to_save=[entry])
    wrapped = {
        n.removeprefix("base_model.model.")
        for n, m in peft.named_modules()
        if type(m).__name__ == "ModulesToSaveWrapper"
    }
    assert wrapped == expected


@pytest.mark.parametrize("entry", ["lm_head", "mlp", "layers.0.self_attn", "q_proj"])
def test_targets_inside_modules_to_save_are_excluded(llama_names, entry):
    probe = SimpleNamespace(
        target_modules=["q_proj", "up_proj", "lm_head"],
        target_parameters=None,
        exclude_modules=None,
        modules_to_save=[entry],
        layers_to_transform=None,
        layers_pattern=None,
    )
    for name in llama_names:
        excluded = type(check_target_module_exists(probe, name)).__name__ == "_ExcludedModule"
        assert excluded == peft_compat.inside_modules_to_save(entry, name), name


class _Convs(torch.nn.Module):
    """Every LoRA leaf kind in one small module: Linear, Embedding, Conv1d/2d, and 2-D / 3-D parameters."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 12)
        self.lin = torch.nn.Linear(12, 20, bias=True)
        self.c1 = torch.nn.Conv1d(12, 6, 3)
        self.c2 = torch.nn.Conv2d(4, 8, (3, 2))
        self.router = torch.nn.Module()
        self.router.weight = torch.nn.Parameter(torch.empty(5, 12))
        self.experts = torch.nn.Module()
        self.experts.up = torch.nn.Parameter(torch.empty(5, 16, 12))


@pytest.mark.parametrize("r", [1, 4])
@pytest.mark.parametrize("use_dora", [False, True])
def test_lora_and_dora_parameter_counts(r, use_dora):
    model = _Convs()
    tree = ModuleTree.from_module(model)
    from lora_registry.registry import load_registry

    leaves = {leaf.name: leaf for leaf in tree.leaves(load_registry())}
    module_targets = ["emb", "lin", "c1", "c2"]
    peft = _apply(model, r=r, target_modules=module_targets, use_dora=use_dora, init_lora_weights="gaussian")
    for name in module_targets:
        layer = peft.base_model.model.get_submodule(name)
        counted = {n: p.numel() for n, p in layer.named_parameters() if p.requires_grad}
        lora = sum(v for n, v in counted.items() if "magnitude" not in n)
        dora = sum(v for n, v in counted.items() if "magnitude" in n)
        assert lora == peft_compat.lora_parameters(leaves[name], r), name
        assert dora == (peft_compat.dora_parameters(leaves[name]) if use_dora else 0), name
    params = _apply(_Convs(), r=r, target_modules=[], target_parameters=["router.weight", "experts.up"])
    trainable = sum(p.numel() for p in params.parameters() if p.requires_grad)
    assert trainable == sum(peft_compat.lora_parameters(leaves[n], r) for n in ("router.weight", "experts.up"))


def test_mica_freezes_b():
    model = _build("llama", device="cpu")  # MiCA's init decomposes real weights
    from lora_registry.registry import load_registry

    leaves = {leaf.name: leaf for leaf in ModuleTree.from_module(model).leaves(load_registry())}
    peft = _apply(model, r=4, target_modules=["model.layers.0.self_attn.q_proj"], init_lora_weights="mica")
    trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    leaf = leaves["model.layers.0.self_attn.q_proj"]
    assert trainable == peft_compat.lora_parameters(leaf, 4) - peft_compat.mica_frozen_parameters(leaf, 4)


@pytest.mark.parametrize("bias", ["all", "lora_only"])
def test_bias_counts(bias):
    model = _build("phi")
    from lora_registry.registry import load_registry

    tree = ModuleTree.from_module(model)
    leaves = [leaf for leaf in tree.leaves(load_registry()) if leaf.short_name in ("q_proj", "fc1")]
    peft = _apply(model, target_modules=["q_proj", "fc1"], bias=bias, modules_to_save=["lm_head"])
    biases = sum(
        p.numel()
        for n, p in peft.named_parameters()
        if p.requires_grad and n.endswith(".bias") and "modules_to_save" not in n and "lora_" not in n
    )
    assert biases == peft_compat.bias_parameters(tree, leaves, bias, ["lm_head"])


def test_a_tied_head_saved_whole_counts_its_weight():
    model = _build("llama", tie_word_embeddings=True)
    tree = ModuleTree.from_module(model)
    peft = _apply(model, target_modules=["q_proj"], modules_to_save=["lm_head"])
    copies = sum(p.numel() for n, p in peft.named_parameters() if p.requires_grad and "modules_to_save" in n)
    assert copies == peft_compat.modules_to_save_parameters(tree, "lm_head") == 100 * 64


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_adapter_dtypes_are_what_get_peft_model_allocates(dtype):
    # phi: biases; DoRA; a whole lm_head copy; and 3-D experts through ParamWrapper on qwen3_moe
    model = _build("phi").to(dtype)
    peft = _apply(model, target_modules=["q_proj", "fc1"], use_dora=True, bias="all", modules_to_save=["lm_head"])
    moe = _build("qwen3_moe", num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32).to(dtype)
    peft_moe = _apply(moe, target_modules=["q_proj"], target_parameters=["mlp.experts.gate_up_proj"])
    expected = peft_compat.adapter_value_bytes(torch.empty((), dtype=dtype).element_size())
    seen = set()
    for name, p in [*peft.named_parameters(), *peft_moe.named_parameters()]:
        if not p.requires_grad:
            continue
        if "modules_to_save" in name:
            kind = "modules_to_save"
        elif "lora_magnitude_vector" in name:
            kind = "dora"
        elif "lora_" in name:
            kind = "lora"
        else:
            kind = "biases"
        seen.add(kind)
        assert p.element_size() == expected[kind], (name, p.dtype)
    assert seen == {"lora", "dora", "biases", "modules_to_save"}


def test_tuner_layers_are_recognised():
    peft = _apply(_build("llama"), target_modules=["q_proj"])
    wrapped = [n for n, m in peft.named_modules() if peft_compat.is_tuner_layer(m)]
    assert wrapped and all(n.endswith("q_proj") for n in wrapped)
    assert not peft_compat.is_tuner_layer(torch.nn.Linear(2, 2))


def test_wrapped_module_is_what_peft_wraps():
    model = _build("llama", device="cpu")
    q_proj, head, embed = model.model.layers[0].self_attn.q_proj, model.lm_head, model.model.embed_tokens
    peft = _apply(model, target_modules=["q_proj"], modules_to_save=["lm_head"], trainable_token_indices=[1, 2])
    assert peft_compat.wrapped_module(peft) is model
    assert peft_compat.wrapped_module(peft.base_model) is model
    assert peft_compat.wrapped_module(model.model.layers[0].self_attn.q_proj) is q_proj  # lora.Linear
    assert peft_compat.wrapped_module(model.lm_head) is head  # ModulesToSaveWrapper
    assert peft_compat.wrapped_module(model.model.embed_tokens) is embed  # TrainableTokensWrapper
    assert peft_compat.wrapped_module(head) is None and peft_compat.wrapped_module(model) is None


def test_the_dispatchers_accounted_for_are_peft_s():
    import inspect

    from peft.tuners.lora.model import LoraModel

    source = inspect.getsource(LoraModel._create_new_module)
    assert set(re.findall(r"\b(dispatch_\w+)\b", source)) - {"dynamic_dispatch_func"} == set(
        peft_compat.LORA_DISPATCHERS
    )


def _layers():
    """Real layers of each kind PEFT meets: (name, layer, the model flags PEFT's dispatchers read)."""
    from hqq.core.quantize import BaseQuantizeConfig, HQQLinear
    from transformers.integrations.bitnet import BitLinear
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    four_bit = __import__("bitsandbytes").nn.Linear4bit(64, 32, bias=False)
    four_bit.load_state_dict(torch.nn.Linear(64, 32, bias=False).state_dict())
    four_bit = four_bit.to("cpu")  # quantizes: the weight is packed two values to a byte
    eight_bit = __import__("bitsandbytes").nn.Linear8bitLt(64, 32, bias=False, has_fp16_weights=False).to("cpu")
    hqq = HQQLinear(
        torch.nn.Linear(64, 32), BaseQuantizeConfig(nbits=4, group_size=64), compute_dtype=torch.float32, device="cpu"
    )
    return [
        ("linear", torch.nn.Linear(64, 32), []),
        ("conv1d", Conv1D(32, 64), []),
        ("bnb-4bit", four_bit, ["loaded_in_4bit"]),
        ("bnb-8bit", eight_bit, ["loaded_in_8bit"]),
        ("hqq", hqq, []),
        ("bitnet", BitLinear(64, 32, bias=False, dtype=torch.float32), []),
        ("layernorm", torch.nn.LayerNorm(64), []),
    ]


def test_linear_shape_is_what_peft_adapts_and_sizes():
    from peft.tuners.tuners_utils import _get_in_out_features

    for name, layer, flags in _layers():
        param = layer._parameters.get("weight")
        weight = parameter_shape("weight", "weight", param, layer) if param is not None else None  # logical shape
        shape = peft_compat.linear_shape(layer, weight)
        holder = torch.nn.Module()
        holder.norm, holder.proj = torch.nn.LayerNorm(4), layer  # PEFT reads the device off a model's first parameter
        for flag in flags:  # what transformers sets on a bitsandbytes-quantized model, and PEFT's dispatch reads
            setattr(holder, f"is_{flag}", True)
        try:
            adapted = _apply(holder, r=4, target_modules=["proj"]).base_model.model.proj
        except ValueError:  # LoraModel._create_new_module: "Target module ... is not supported"
            adapted = None
        assert (shape is not None) == (adapted is not None), name
        if shape is not None:
            assert shape == (32, 64) and _get_in_out_features(layer) == (64, 32), name
            assert (adapted.in_features, adapted.out_features) == (64, 32), name


_RENAMES = (
    "import json, sys\n"
    "from lora_registry import peft_compat\n"
    "out = {t: peft_compat.rename_table(t) for t in json.loads(sys.stdin.read())}\n"
    "assert 'torch' not in sys.modules, 'the source reading imported torch'\n"
    "print(json.dumps(out))\n"
)


def test_the_rename_table_read_without_torch_equals_peft_and_transformers():
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    types = sorted(CONFIG_MAPPING_NAMES)
    done = subprocess.run(
        [sys.executable, "-c", _RENAMES], input=json.dumps(types), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    from_source = json.loads(done.stdout)
    imported = {t: peft_compat.rename_table(t) for t in sorted(CONFIG_MAPPING_NAMES)}  # torch is imported here
    assert from_source == imported
    assert imported["qwen3_moe"] == {
        "gate": "gate.weight",
        "gate_proj": "gate_up_proj",
        "up_proj": "gate_up_proj",
        "down_proj": "down_proj",
    }
    assert set(imported["mixtral"]) == {"gate", "w1", "w2", "w3"} and imported["llama"] == {}


def test_the_rename_is_what_peft_does():
    # qwen3_moe with a dense first layer: PEFT rewrites a dense down_proj target into the experts' parameters.
    model = _build("qwen3_moe", num_experts=4, moe_intermediate_size=32, mlp_only_layers=[0])
    peft = _apply(model, target_modules=["down_proj"])
    renamed = peft_compat.renamed_module_names("qwen3_moe")
    assert "down_proj" in renamed
    assert not peft.base_model.targeted_module_names  # the dense down_proj is not adapted...
    assert any(n.endswith("experts.down_proj") for n in peft.base_model.targeted_parameter_names)  # ...the experts are


def test_a_further_adapter_must_use_the_same_target_parameters_as_peft_requires():
    from lora_registry.errors import ConfigError

    model = _build("qwen3_moe", num_experts=4, moe_intermediate_size=32)
    peft = _apply(model, target_modules=[], target_parameters=["mlp.experts.down_proj"])
    names = ModuleTree.from_module(peft).parameter_names()
    downs = [n for n in names if n.endswith("experts.down_proj")]
    existing = peft_compat.adapter_target_parameters([peft])
    assert existing == {"default": ("mlp.experts.down_proj",)}
    assert peft_compat.further_adapter_target_parameters({}, downs, names) is None
    agreed = peft_compat.further_adapter_target_parameters(existing, downs, names)
    assert agreed == ["mlp.experts.down_proj"]
    for targets, accepted in ((agreed, True), (["down_proj"], False)):  # the same parameters, other strings
        try:
            peft.add_adapter(f"next-{accepted}", LoraConfig(target_modules=[], target_parameters=targets))
            added = True
        except ValueError:  # LoraModel._check_new_adapter_config
            added = False
        assert added == accepted
    with pytest.raises(ConfigError, match="leaves out"):
        peft_compat.further_adapter_target_parameters(existing, downs[:1], names)


def test_option_refusals_match_peft():
    # Each value rule: PEFT itself refuses (or silently ignores) what check_option_values refuses.
    base = dict(lora_dropout=0.0, bias="none", use_rslora=False, use_dora=False, init_lora_weights=True)
    for change, peft_error in ((dict(bias="some"), NotImplementedError), (dict(init_lora_weights="nope"), ValueError)):
        with pytest.raises(Exception, match=re.escape(str(change[next(iter(change))]))):
            peft_compat.check_option_values({**base, **change})
        with pytest.raises(peft_error):
            _apply(_build("llama"), target_modules=["q_proj"], **{**base, **change})


@pytest.fixture(scope="module")
def vlm_names():
    """A tiny LLaVA's module names (a vision tower with its own layers), plus names that test the index rule's edges."""
    from transformers import AutoModelForImageTextToText

    text = dict(model_type="llama", num_hidden_layers=3, hidden_size=32, intermediate_size=64, vocab_size=100)
    vision = dict(
        model_type="clip_vision_model",
        num_hidden_layers=2,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        image_size=32,
        patch_size=16,
    )
    config = AutoConfig.for_model("llava", text_config=text, vision_config=vision)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    names = [name for name, _ in model.named_modules() if name]
    return names + ["layers.1.q_proj", "model.layers.1.mlp.experts.0.q_proj", "blocks.2.q_proj"]


@pytest.mark.parametrize(
    "targets,layers,pattern",
    [
        (["q_proj", "v_proj"], [1], None),  # layer 1 of the language model and of the vision tower
        (["q_proj"], [0, 2], None),
        (["q_proj"], 1, None),  # an int
        (["q_proj"], [], None),  # empty: no filter
        (["q_proj", "lm_head"], [1], None),  # lm_head has no index: dropped, unless given in full
        (["q_proj", "model.language_model.layers.0.self_attn.q_proj"], [2], None),  # a full name skips the filter
        (["q_proj"], [1], "layers"),
        (["q_proj"], [1], "language_model.layers"),  # inserted unescaped: a dotted tail works
        (["q_proj"], [0, 1], ["language_model.layers", "blocks"]),
        (["self_attn.q_proj"], [1], "encoder.layers"),
    ],
)
def test_layer_selection_rule(vlm_names, targets, layers, pattern):
    probe = SimpleNamespace(
        target_modules=set(targets),  # LoraConfig turns the list into a set
        target_parameters=None,
        exclude_modules=None,
        modules_to_save=None,
        layers_to_transform=layers,
        layers_pattern=pattern,
    )
    peft = {n for n in vlm_names if check_target_module_exists(probe, n)}
    ours = {
        n
        for n in vlm_names
        if peft_compat.matches_target_modules(targets, n, layers_to_transform=layers, layers_pattern=pattern)
    }
    assert ours == peft and (peft or layers == [])


def test_task_types_are_peft_s():
    from peft.utils.peft_types import TaskType

    assert set(peft_compat.TASK_TYPES) == {task.value for task in TaskType}


@pytest.mark.parametrize(
    "model_class,model_type,task",
    [
        ("LlamaForCausalLM", "llama", "CAUSAL_LM"),
        ("T5ForConditionalGeneration", "t5", "SEQ_2_SEQ_LM"),
        ("BartForSequenceClassification", "bart", "SEQ_CLS"),
        ("BertForTokenClassification", "bert", "TOKEN_CLS"),
        ("LlamaForQuestionAnswering", "llama", "QUESTION_ANS"),
        ("LlamaModel", "llama", "FEATURE_EXTRACTION"),
    ],
)
def test_task_type_is_the_one_whose_auto_class_builds_the_model(model_class, model_type, task):
    # auto.py: AutoPeftModelFor<task> loads its base with a transformers Auto class; that class builds model_class
    from peft import auto

    assert peft_compat.task_type_for(model_class) == task
    peft_class = {
        "CAUSAL_LM": auto.AutoPeftModelForCausalLM,
        "SEQ_2_SEQ_LM": auto.AutoPeftModelForSeq2SeqLM,
        "SEQ_CLS": auto.AutoPeftModelForSequenceClassification,
        "TOKEN_CLS": auto.AutoPeftModelForTokenClassification,
        "QUESTION_ANS": auto.AutoPeftModelForQuestionAnswering,
        "FEATURE_EXTRACTION": auto.AutoPeftModelForFeatureExtraction,
    }[task]
    assert peft_class._target_class._model_mapping._model_mapping[model_type] == model_class


def test_task_types_for_what_peft_has_no_task_for():
    # a vision-language model: CAUSAL_LM, as the trainers give it (PeftModelForCausalLM wraps it); Whisper: seq2seq
    assert peft_compat.task_type_for("LlavaForConditionalGeneration") == "CAUSAL_LM"
    assert peft_compat.task_type_for("WhisperForConditionalGeneration") == "SEQ_2_SEQ_LM"
    assert peft_compat.task_type_for("NoSuchModel") is None


def _tiny(model_type, **sizes):
    from transformers import AutoModel

    config = AutoConfig.for_model(model_type, **sizes)
    with torch.device("meta"):
        try:
            return AutoModelForCausalLM.from_config(config)
        except ValueError:  # a model type with no causal-LM class (LLaVA): its own model class
            return AutoModel.from_config(config)


def _leaves(model):
    from lora_registry.registry import load_registry

    tree = ModuleTree.from_module(model)
    return tree, tree.leaves(load_registry())


_MAMBA = dict(num_hidden_layers=1, hidden_size=32, state_size=4, vocab_size=100)


@pytest.mark.parametrize(
    "model_type,sizes",
    [
        ("mamba", _MAMBA),  # refused: out_proj and conv1d
        ("nemotron_h", dict(num_hidden_layers=2, layers_block_type=["mamba", "attention"], hidden_size=64)),
        ("jamba", dict(num_hidden_layers=2, hidden_size=64, num_experts=2)),  # a Mamba mixer PEFT accepts whole
    ],
)
def test_mamba_refusal_rule(model_type, sizes):
    model = _tiny(model_type, **sizes)
    _, leaves = _leaves(model)
    layer0 = [leaf for leaf in leaves if leaf.layer == 0 and leaf.kind == "module"]
    assert layer0
    for leaf in layer0:
        reason = peft_compat.lora_refusal(model_type, leaf)
        try:
            _apply(_tiny(model_type, **sizes), target_modules=[leaf.name], r=1)
            refused = None
        except ValueError as exc:
            refused = str(exc)
        assert (reason is not None) == (refused is not None and "incompatible with Mamba" in refused), leaf.name
    if model_type == "jamba":
        assert not any(peft_compat.lora_refusal(model_type, leaf) for leaf in leaves)


def _all_linear_keys(model_type, leaves, tree):
    renamed = peft_compat.renamed_module_names(model_type)
    return {
        leaf.name + ".weight" if leaf.kind == "module" and leaf.short_name in renamed else leaf.name
        for leaf in peft_compat.all_linear_leaves(tree, leaves, model_type)
    }


@pytest.mark.parametrize(
    "model_type,sizes",
    [
        ("llama", dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, vocab_size=100)),
        ("gpt2", dict(n_layer=2, n_embd=64, n_head=4, vocab_size=100)),  # transformers' Conv1D, tied head
        ("qwen3_moe", dict(num_hidden_layers=2, hidden_size=64, num_experts=4, mlp_only_layers=[0], vocab_size=100)),
        (
            "deepseek_v3",  # PEFT's MoE conversion: dense and shared FFNs drop out, experts and router come in
            dict(
                num_hidden_layers=2,
                first_k_dense_replace=1,
                n_routed_experts=4,
                hidden_size=64,
                intermediate_size=96,
                moe_intermediate_size=16,
                q_lora_rank=16,
                kv_lora_rank=16,
                num_attention_heads=2,
                vocab_size=100,
            ),
        ),
        ("llava", dict()),  # the vision tower and projector too: all-linear knows no scope
    ],
)
def test_all_linear_rule(model_type, sizes):
    if model_type == "llava":
        sizes = dict(
            text_config=dict(model_type="llama", num_hidden_layers=1, hidden_size=64, num_attention_heads=4),
            vision_config=dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2),
        )
    model = _tiny(model_type, **sizes)
    tree, leaves = _leaves(model)
    peft = _apply(model, target_modules="all-linear", r=1)
    targeted = set(peft.base_model.targeted_module_names) | set(peft.base_model.targeted_parameter_names or [])
    assert _all_linear_keys(model_type, leaves, tree) == targeted


def test_all_linear_rule_on_a_model_peft_refuses():
    # PEFT raises for all-linear on Mamba (it includes out_proj); the expansion itself is the same rule
    from peft.tuners.tuners_utils import _maybe_include_all_linear_layers

    model = _tiny("mamba", **_MAMBA)
    tree, leaves = _leaves(model)
    expanded = _maybe_include_all_linear_layers(LoraConfig(target_modules="all-linear"), model).target_modules
    assert {leaf.name for leaf in peft_compat.all_linear_leaves(tree, leaves, "mamba")} == set(expanded)
    with pytest.raises(ValueError, match="incompatible with Mamba"):
        _apply(model, target_modules="all-linear")
