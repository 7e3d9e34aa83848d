"""Property-based tests (hypothesis) over role specs, layer specs, rank and alpha patterns, CLI options,
mutated configs, registry fragments and declarative name globs.

Contracts checked on every generated case:
- the library raises only lora-registry's own error types (``LoraRegistryError``);
- the CLI exits 0 or 2, and on 2 writes exactly one ``error:`` line and no file;
- a successful resolution adapts exactly its leaves, at the ranks and alphas asked for, as PEFT reads
  the config (PEFT's own target and pattern matching rules), and counts what PEFT will create.

Models are tiny (2 layers of width 64) and inspected once per module; every test has a fixed
``max_examples`` and a derandomized, database-free run, so CI sees the same few thousand cases each time.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lora_registry as lr
from helpers import TINY, cli
from helpers import config_folder as write_config
from lora_registry.architectures import match_entry
from lora_registry.errors import ConfigError, LoraRegistryError, RegistryError, RoleError
from lora_registry.inspection import Leaf
from lora_registry.peft_compat import lora_parameters
from lora_registry.peft_compat import matches_target_modules as matches_list
from lora_registry.registry import load_registry
from lora_registry.resolution import parse_layers
from lora_registry.roles import expand

REGISTRY = load_registry()
NAMES = list(REGISTRY.roles) + list(REGISTRY.aliases)


def fixed(n: int):
    """The same ``n`` cases on every run and machine."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


CONFIGS = {
    "llama": TINY,  # separate q/k/v/o and gate/up/down
    "phi3": {
        **TINY,
        "model_type": "phi3",
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    },  # fused qkv, gate_up
    # 3-D experts as target_parameters; PEFT renames the router module "gate", so it moves to target_parameters
    "mixtral": {**TINY, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2},
    "t5": {
        "model_type": "t5",
        "num_layers": 2,
        "num_decoder_layers": 1,
        "d_model": 64,
        "d_ff": 128,  # two stacks
        "num_heads": 4,
        "d_kv": 16,
        "vocab_size": 128,
    },
    "gpt2": {
        "model_type": "gpt2",
        "n_layer": 2,
        "n_embd": 64,
        "n_head": 4,
        "vocab_size": 128,  # Conv1D, declarative
        "n_positions": 64,
        "bos_token_id": 0,
        "eos_token_id": 0,
    },
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny")
    return {name: str(write_config(base / name, config)) for name, config in CONFIGS.items()}


@pytest.fixture(scope="module")
def maps(folders):
    return {name: lr.inspect(folder) for name, folder in folders.items()}


# ----------------------------------------------------------------------------- strategies

junk = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
known = st.sampled_from(NAMES)
role_token = st.one_of(
    known,
    known.map(str.upper),
    st.tuples(st.sampled_from(["", " ", "\t"]), known, st.sampled_from(["", " "])).map("".join),
    junk,
)
role_spec = st.one_of(
    st.lists(role_token, max_size=5).map(",".join),
    st.lists(role_token, max_size=5),
    st.lists(st.one_of(role_token, st.integers(), st.none()), max_size=3),
)


@st.composite
def layer_spec(draw):
    """``(spec, expected set or None)``: well-formed ranges (expected known), lists of ints, or junk."""
    kind = draw(st.sampled_from(["ranges", "ranges", "list", "junk"]))
    if kind == "ranges":
        parts, expected = [], set()
        for _ in range(draw(st.integers(1, 3))):
            start = draw(st.integers(0, 3))
            end = draw(st.integers(start, 4))
            space = draw(st.sampled_from(["", " "]))
            parts.append(str(start) if start == end and draw(st.booleans()) else f"{start}{space}-{space}{end}")
            expected.update(range(start, end + 1))
        return ",".join(parts), expected
    if kind == "list":
        items = draw(st.lists(st.one_of(st.integers(-2, 4), st.booleans()), max_size=4))
        ok = items and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items)
        return items, set(items) if ok else None
    return draw(st.text(alphabet="0123456789-, x.", max_size=8)), None


number = st.one_of(
    st.integers(1, 32),
    st.integers(1, 32),
    st.integers(-2, 0),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=2),
    st.none(),
)
overrides = st.dictionaries(st.one_of(known, known.map(str.upper), junk, st.integers()), number, max_size=3)


# ----------------------------------------------------------------------------- PEFT's reading of a config


def peft_value(pattern: dict, key: str, default):
    """The value PEFT 0.21 gives ``key`` from a rank/alpha pattern (``peft.utils.other.get_pattern_key``)."""
    from peft.utils.other import get_pattern_key

    return pattern.get(get_pattern_key(pattern.keys(), key), default)


def expected_override(resolution, role: str, given: dict, default):
    """The documented rule, independently: the override naming the role alone beats an alias covering it.

    ``None`` when two overrides of the same specificity disagree (the rule leaves that open).
    """
    best, values = -1, set()
    for key, value in given.items():
        word = str(key).strip().lower()
        expansion = (word,) if word in REGISTRY.roles else REGISTRY.aliases.get(word, ())
        if role not in {resolution.substituted.get(r, r) for r in expansion}:
            continue
        weight = 1 if len(expansion) == 1 else 0
        if weight > best:
            best, values = weight, {value}
        elif weight == best:
            values.add(value)
    if best < 0:
        return default
    return values.pop() if len(values) == 1 else None


def check_exact(resolution, config, r, alpha, ranks, alphas):
    """PEFT targets exactly the resolved leaves, at the asked ranks and alphas, and the count matches."""
    mm = resolution.model_map
    keys = resolution.target_keys()
    role_of = {name: role for role, names in resolution.names_by_role().items() for name in names}
    module_keys = {key for name, key in keys.items() if key == name and name in mm.all_module_names}
    parameter_keys = set(keys.values()) - module_keys
    targets = config.target_modules or []
    if isinstance(targets, str):
        hit = {n for n in mm.all_module_names if re.fullmatch(targets, n)}
    else:
        layers = dict(layers_to_transform=config.layers_to_transform, layers_pattern=config.layers_pattern)
        hit = {n for n in mm.all_module_names if matches_list(list(targets), n, **layers)}
    assert hit == module_keys
    parameter_names = [name for name, _ in mm.module.named_parameters()]
    hit = {n for n in parameter_names if matches_list(list(config.target_parameters or []), n)}
    assert hit == parameter_keys
    total = 0
    default_alpha = 2 * r if alpha is None else alpha
    for leaf in resolution.leaves:
        role = role_of[leaf.name]
        rank = peft_value(config.rank_pattern, keys[leaf.name], config.r)
        assert rank == resolution.rank_of(role, r, ranks)
        want = expected_override(resolution, role, ranks or {}, r)
        assert want is None or rank == want, (leaf.name, rank, want)
        got_alpha = peft_value(config.alpha_pattern, keys[leaf.name], config.lora_alpha)
        want = expected_override(resolution, role, alphas or {}, default_alpha)
        assert want is None or got_alpha == want, (leaf.name, got_alpha, want)
        total += lora_parameters(leaf, rank)
    assert resolution.trainable_parameters(r, ranks) == total


# ----------------------------------------------------------------------------- library properties


def usable_names(model_map) -> list[str]:
    """Roles and aliases that name at least one language leaf of the model (directly or fused)."""
    present = set(model_map.present_roles())
    out = []
    for name in NAMES:
        roles = (name,) if name in REGISTRY.roles else REGISTRY.aliases[name]
        if any(r in present or REGISTRY.fused.get(r) in present for r in roles):
            out.append(name)
    return out


def stack_depth(model_map) -> int:
    """Layers in the shallowest stack (T5's decoder has 1 of our 2)."""
    depth: dict[str, int] = {}
    for leaf in model_map.leaves:
        if leaf.layer is not None and leaf.scope == "language":
            depth[leaf.stack] = max(depth.get(leaf.stack, 0), leaf.layer + 1)
    return min(depth.values())


@st.composite
def sensible_request(draw, model_map):
    """Requests a user would plausibly make of this model: most resolve, some hit a real refusal."""
    tokens = draw(st.lists(st.sampled_from(usable_names(model_map)), min_size=1, max_size=4, unique=True))
    cased = [draw(st.sampled_from([t, t.upper(), f" {t} "])) for t in tokens]
    roles = ",".join(cased) if draw(st.booleans()) else cased
    depth = stack_depth(model_map)
    layers, last, wanted = None, None, None
    choice = draw(st.sampled_from(["all", "all", "layers", "last"]))
    if choice == "layers":
        wanted = set(draw(st.lists(st.integers(0, depth - 1), min_size=1, max_size=3)))
        layers = ",".join(map(str, sorted(wanted))) if draw(st.booleans()) else sorted(wanted)
    elif choice == "last":
        last = draw(st.integers(1, depth + 1))
    r = draw(st.integers(1, 16))
    alpha = draw(st.one_of(st.none(), st.integers(1, 64), st.floats(0.5, 64)))
    ranks = draw(st.dictionaries(st.sampled_from(tokens), st.integers(1, 16), max_size=2))
    alphas = draw(st.dictionaries(st.sampled_from(tokens), st.floats(0.5, 64), max_size=2))
    return dict(
        roles=roles,
        layers=layers,
        last=last,
        wanted=wanted,
        r=r,
        alpha=alpha,
        ranks=ranks,
        alphas=alphas,
        strict=draw(st.sampled_from([False, False, False, True])),
    )


@st.composite
def messy_request(draw):
    """Anything: junk roles and numbers, malformed layer specs, wrong types inside the containers."""
    spec, wanted = draw(layer_spec())
    if draw(st.booleans()):
        spec, wanted = None, None
    return dict(
        roles=draw(role_spec),
        layers=spec,
        wanted=wanted,
        last=draw(st.one_of(st.none(), st.none(), st.integers(-1, 3), st.booleans())),
        r=draw(number),
        alpha=draw(st.one_of(st.none(), number)),
        ranks=draw(st.one_of(st.none(), overrides)),
        alphas=draw(st.one_of(st.none(), overrides)),
        strict=draw(st.booleans()),
    )


@fixed(1500)
@given(data=st.data(), model=st.sampled_from(sorted(CONFIGS)), sensible=st.booleans())
def test_resolution_raises_only_its_own_errors_and_is_exact(maps, data, model, sensible):
    mm = maps[model]
    q = data.draw(sensible_request(mm) if sensible else messy_request())
    try:
        resolution = lr.resolve(mm, roles=q["roles"], layers=q["layers"], last_layers=q["last"], strict=q["strict"])
        config = resolution.lora_config(q["r"], q["alpha"], ranks=q["ranks"], alphas=q["alphas"])
    except LoraRegistryError as exc:
        event(f"{'sensible' if sensible else 'messy'}: refused ({type(exc).__name__})")
        assert str(exc) and "\n" not in str(exc).strip()
        return
    event(f"{'sensible' if sensible else 'messy'}: resolved, checked against PEFT's matching")
    assert resolution.roles and resolution.leaves
    for leaf in resolution.leaves:
        assert resolution.substituted.get(mm.roles[leaf.name], mm.roles[leaf.name]) in resolution.roles
        assert leaf.scope == "language"
        if leaf.layer is not None and q["wanted"] is not None and q["layers"] is not None:
            assert leaf.layer in q["wanted"]
        last = q["last"]
        if leaf.layer is not None and q["layers"] is None and isinstance(last, int) and not isinstance(last, bool):
            depth = 1 + max(other.layer for other in mm.leaves if other.stack == leaf.stack)
            assert leaf.layer >= depth - last
    check_exact(resolution, config, q["r"], q["alpha"], q["ranks"], q["alphas"])


@fixed(600)
@given(spec=role_spec)
def test_role_specs_expand_to_the_union_of_their_parts(spec):
    try:
        roles = expand(spec, REGISTRY)
    except RoleError as exc:
        assert "\n" not in str(exc)
        items = [
            p.strip().lower()
            for item in ([spec] if isinstance(spec, str) else spec)
            for p in str(item).split(",")
            if p.strip()
        ]
        unknown = [i for i in items if i not in REGISTRY.roles and i not in REGISTRY.aliases]
        assert unknown or not items, str(exc)
        if unknown:
            assert repr(unknown[0]) in str(exc)
        return
    items = [
        p.strip().lower()
        for item in ([spec] if isinstance(spec, str) else spec)
        for p in str(item).split(",")
        if p.strip()
    ]
    union = {role for i in items for role in ((i,) if i in REGISTRY.roles else REGISTRY.aliases[i])}
    assert roles == [role for role in REGISTRY.roles if role in union]


@fixed(600)
@given(layers=layer_spec())
def test_layer_specs_parse_to_their_ranges_or_a_config_error(layers):
    spec, wanted = layers
    try:
        parsed = parse_layers(spec)
    except ConfigError as exc:
        assert wanted is None and "\n" not in str(exc)
        return
    assert parsed == sorted(set(parsed)) and all(isinstance(i, int) and i >= 0 for i in parsed)
    if wanted is not None:
        assert set(parsed) == wanted


# ----------------------------------------------------------------------------- the command line

numeral = st.one_of(
    st.integers(-2, 40).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "0.5", "x", "", " 4", "0x10", "1_0", "٣"]),
)
option = st.one_of(
    st.tuples(st.just("--roles"), st.lists(role_token, max_size=4).map(",".join)),
    st.tuples(st.just("--rank"), numeral),
    st.tuples(st.just("--alpha"), numeral),
    st.tuples(st.just("--rank-for"), st.tuples(role_token, numeral).map("=".join)),
    st.tuples(st.just("--alpha-for"), st.tuples(role_token, numeral).map("=".join)),
    st.tuples(st.just("--layers"), st.text(alphabet="0123-, ", max_size=6)),
    st.tuples(st.just("--last-layers"), numeral),
    st.tuples(st.just("--preset"), st.one_of(st.sampled_from(sorted(REGISTRY.presets)), st.text(max_size=3))),
    st.tuples(st.just("--format"), st.sampled_from(["json", "peft", "table", "yaml", ""])),
    st.tuples(st.just("--scope"), st.sampled_from(["language", "vision", "language,vision", "", "x"])),
    st.tuples(st.just("--strict")),
    st.tuples(st.just("--plugin"), st.sampled_from(["llama", "phi", "generic", "declarative", "x"])),
    st.tuples(st.sampled_from(["--bogus", "-z", "--rank"])),
)


@st.composite
def sensible_options(draw, model_map):
    tokens = draw(st.lists(st.sampled_from(usable_names(model_map)), min_size=1, max_size=3, unique=True))
    options = [("--roles", ",".join(tokens))]
    if draw(st.booleans()):
        options.append(("--rank", str(draw(st.integers(1, 16)))))
    for token in draw(st.lists(st.sampled_from(tokens), max_size=2, unique=True)):
        options.append((draw(st.sampled_from(["--rank-for", "--alpha-for"])), f"{token}={draw(st.integers(1, 32))}"))
    choice = draw(st.sampled_from([None, None, "--layers", "--last-layers"]))
    if choice == "--layers":
        options.append((choice, draw(st.sampled_from(["0", "0-1", "1", "0,1"]))))
    elif choice == "--last-layers":
        options.append((choice, str(draw(st.integers(1, 3)))))
    options.append(("--format", draw(st.sampled_from(["json", "peft", "table"]))))
    return draw(st.permutations(options))


@fixed(400)
@given(
    data=st.data(),
    model=st.sampled_from(sorted(CONFIGS)),
    sensible=st.booleans(),
    output=st.sampled_from([None, "new", "existing"]),
    force=st.booleans(),
)
def test_cli_exits_0_or_2_with_one_line(folders, maps, tmp_path_factory, data, model, sensible, output, force):
    options = data.draw(sensible_options(maps[model]) if sensible else st.lists(option, max_size=5))
    args = ["resolve", folders[model], *[part for item in options for part in item]]
    path = None
    if output is not None:
        path = tmp_path_factory.mktemp("out") / "out.json"
        if output == "existing":
            path.write_text("old")
        args += ["-o", str(path)] + (["--force"] if force else [])
    run = cli(*args)
    event(f"{'sensible' if sensible else 'messy'}: exit {run.code}")
    assert run.code in (0, 2), run
    if run.code == 2:
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in run.stdout, run
        if path is not None:
            assert (path.read_text() == "old") if output == "existing" else not path.exists()
            assert [p.name for p in path.parent.iterdir()] == ([path.name] if output == "existing" else [])
        return
    formats = [value for name, *rest in options if name == "--format" for value in rest]
    fmt = formats[-1] if formats else "table"
    text = path.read_text() if path is not None else run.stdout
    assert text.strip()
    if fmt in ("json", "peft"):
        json.loads(text)


# ----------------------------------------------------------------------------- mutated config.json

EXTRA_FIELDS = [
    "architectures",
    "rope_theta",
    "hidden_act",
    "tie_word_embeddings",
    "max_position_embeddings",
    "rms_norm_eps",
    "head_dim",
    "num_experts_per_tok",
    "rope_scaling",
    "torch_dtype",
    "attention_bias",
    "text_config",
    "layer_types",
    "pad_token_id",
    "auto_map",
    "use_sliding_window",
    "multi_query",
    "parallel_attn",
    "num_ln_in_parallel_attn",
    "bias",
    "n_inner",
    "add_cross_attention",
]
# the fast path's families beyond CONFIGS: Falcon's new decoder (grouped fused qkv) and Qwen2 (q/k/v biases)
MUTATED = {
    **CONFIGS,
    "falcon": {
        "model_type": "falcon",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "vocab_size": 128,
        "new_decoder_architecture": True,
        "num_kv_heads": 2,
    },
    "qwen2": {**TINY, "model_type": "qwen2"},
}
wrong = st.one_of(
    st.sampled_from(
        [
            -1,
            0,
            -(2**31),
            2**31,
            2**63,
            10**30,
            1.5,
            -0.5,
            1e308,
            True,
            False,
            None,
            "",
            "many",
            "64",
            [],
            [1],
            [2, "x"],
            {},
            {"a": 1},
        ]
    ),
    st.integers(-4, 4),
    st.text(max_size=4),
)
# values a real config could hold: some combinations still fail (heads that do not divide the width)
plausible = st.sampled_from(
    [
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        1e-6,
        0.5,
        10000.0,
        True,
        False,
        "silu",
        "gelu",
        "bfloat16",
        "float32",
        ["LlamaForCausalLM"],
        ["MixtralForCausalLM"],
    ]
)


@st.composite
def mutated_config(draw):
    name = draw(st.sampled_from(sorted(MUTATED)))
    config = dict(MUTATED[name])
    fields = sorted(config) + EXTRA_FIELDS
    values = plausible if draw(st.booleans()) else st.one_of(wrong, plausible)
    for field in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True)):
        if field in config and field != "model_type" and draw(st.integers(0, 4)) == 0:
            del config[field]  # a missing key: transformers' default applies
        else:
            config[field] = draw(values)
    return name, config


@fixed(300)
@given(case=mutated_config(), command=st.sampled_from(["resolve", "resolve", "inspect"]))
def test_mutated_configs_exit_0_or_2_with_one_line(tmp_path_factory, case, command):
    name, config = case
    folder = write_config(tmp_path_factory.mktemp(name), config)
    # --format json and inspect may answer from config.json alone (the fast path); peft builds the model
    formats = ["json", "peft"] if command == "resolve" else [None]
    codes = []
    for fmt in formats:
        args = [command, folder] + (["--roles", "all", "-f", fmt] if fmt else ["--json"])
        start = time.monotonic()
        run = cli(*args)
        assert time.monotonic() - start < 60, config
        assert run.code in (0, 2), (config, run)
        if run.code == 2:
            lines = run.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (config, run)
        else:
            json.loads(run.stdout)
        codes.append((fmt, run.code, run.stderr.strip()))
        event(f"{command} {fmt or ''}: exit {run.code}".replace("  ", " "))
    # the config-only answer accepts exactly what building the model accepts
    assert len({code for _, code, _ in codes}) == 1, (config, codes)


# ----------------------------------------------------------------------------- registry fragments

VALID_FRAGMENT = {
    "presets": {
        "p": {
            "description": "d",
            "roles": "q,ffn",
            "rank": 8,
            "alpha": 16,
            "rank_for": {"ffn": 4},
            "alpha_for": {"q": 2},
        }
    },
    "architectures": {
        "acme": {
            "plugin": "acme",
            "layers": ["model.layers"],
            "layer_roles": {"attention-q": "self_attn.q_proj", "experts-down": ["experts.*.w2"]},
            "model_roles": {"embed": "model.embed_tokens"},
        }
    },
}
anything = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3),
        st.floats(allow_nan=True),
        st.text(max_size=4),
        st.sampled_from(NAMES),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=4), st.sampled_from(NAMES)), children, max_size=3),
    ),
    max_leaves=6,
)


# values of the right shape somewhere in a fragment (a role, a name, a rank, a list of names)
plausible_entry = st.one_of(
    st.sampled_from(list(REGISTRY.roles)),
    st.sampled_from(["q,v", "ffn", "model.layers", "mlp.experts.*.w1"]),
    st.integers(1, 16),
    st.lists(st.sampled_from(["a.b", "c_*"]), min_size=1),
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))


@st.composite
def mutated_fragment(draw):
    fragment = json.loads(json.dumps(VALID_FRAGMENT))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(fragment))
        path = draw(st.sampled_from(paths))
        if not path:
            if draw(st.booleans()):
                return draw(anything)  # not even a table, perhaps
            continue
        *parents, last = path
        holder = fragment
        for key in parents:
            holder = holder[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        value = draw(st.one_of(anything, plausible_entry))
        if action == "delete":
            del holder[last]
        elif action == "add" and isinstance(holder[last], dict):
            holder[last][draw(st.one_of(st.text(max_size=5), st.sampled_from(NAMES)))] = value
        else:
            holder[last] = value
    return fragment


@fixed(500)
@given(fragment=mutated_fragment())
def test_registry_fragments_validate_or_name_source_and_key(fragment):
    try:
        registry = REGISTRY.merged(fragment, "plugin 'fuzz'")
    except RegistryError as exc:
        event("refused")
        assert str(exc).startswith("plugin 'fuzz': ") and "\n" not in str(exc)
        return
    event("accepted")
    # whatever got through is usable: presets resolve their roles, entries name known roles
    for preset in registry.presets.values():
        assert isinstance(preset.rank, int) and preset.rank >= 1 and preset.alpha > 0
        expand(preset.roles, registry)
        assert all(isinstance(v, int) and v >= 1 for v in preset.rank_for.values())
        assert all(v > 0 for v in preset.alpha_for.values())
    for entry in registry.architectures.values():
        assert entry.layers and entry.layer_roles
        for names in list(entry.layer_roles.values()) + list(entry.model_roles.values()):
            assert names and all(isinstance(n, str) and n for n in names)
        assert set(entry.layer_roles) | set(entry.model_roles) <= set(registry.roles)


# ----------------------------------------------------------------------------- declarative name globs


def glob_matches(glob: str, name: str) -> bool:
    """The documented rule, independently of regexes: ``*`` is one or more digits, everything else literal."""
    parts = glob.split("*")
    if len(parts) == 1:
        return name == glob
    if not name.startswith(parts[0]):
        return False
    positions = {len(parts[0])}
    for part in parts[1:]:
        after = set()
        for pos in positions:
            end = pos
            while end < len(name) and name[end].isdecimal():
                end += 1
                if name.startswith(part, end):
                    after.add(end + len(part))
        positions = after
    return len(name) in positions


glob_text = st.text(alphabet=st.sampled_from(list("ab.*()+?[]{}|\\^$01_-")), min_size=1, max_size=30)


@st.composite
def glob_and_name(draw):
    glob = draw(glob_text)
    kind = draw(st.sampled_from(["instance", "mutant", "free"]))
    if kind == "instance":  # every * replaced by a number
        name = "".join(
            part + (draw(st.integers(0, 999)).__str__() if i < glob.count("*") else "")
            for i, part in enumerate(glob.split("*"))
        )
    elif kind == "mutant":
        position = draw(st.integers(0, len(glob)))
        name = glob[:position] + draw(st.sampled_from(list("a.*0(+"))) + glob[position + 1 :]
    else:
        name = draw(glob_text)
    return glob, name


def _leaf(name: str) -> Leaf:
    return Leaf(
        name=name, kind="module", lora_type="linear", shape=(4, 4), layer=0, scope="language", module_class="Linear"
    )


@fixed(500)
@given(case=glob_and_name())
def test_declarative_names_are_literal_globs(case):
    glob, name = case
    fragment = {"architectures": {"acme": {"layers": "model.layers", "layer_roles": {"attention-q": glob}}}}
    entry = REGISTRY.merged(fragment, "plugin 'acme'").architectures["acme"]
    start = time.perf_counter()
    roles = match_entry(entry, [_leaf("model.layers.0." + name)])
    assert time.perf_counter() - start < 1.0
    event("matches" if roles is not None else "does not match")
    assert (roles is not None) == glob_matches(glob, name), (glob, name)
