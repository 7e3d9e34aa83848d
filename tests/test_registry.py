"""registry.toml: it loads, its vocabulary is the public one, and bad data is named precisely."""

from __future__ import annotations

import pytest

from lora_registry.errors import RegistryError
from lora_registry.registry import load_registry, parse_registry
from lora_registry.roles import expand

PUBLIC_ROLES = [
    "attention-q",
    "attention-k",
    "attention-v",
    "attention-o",
    "attention-qkv",
    "attention-q-a",
    "attention-q-b",
    "attention-kv-a",
    "attention-kv-b",
    "mixer-in",
    "mixer-out",
    "mixer-gate",
    "ffn-gate",
    "ffn-up",
    "ffn-down",
    "ffn-gate-up",
    "experts-gate",
    "experts-up",
    "experts-down",
    "experts-gate-up",
    "router",
    "shared-expert-gate",
    "embed",
    "lm-head",
]


def test_vocabulary_is_exactly_the_public_contract():
    registry = load_registry()
    assert list(registry.roles) == PUBLIC_ROLES
    assert expand("q,k,v,o,qkv,gate,up,down", registry) == [
        "attention-q",
        "attention-k",
        "attention-v",
        "attention-o",
        "attention-qkv",
        "ffn-gate",
        "ffn-up",
        "ffn-down",
    ]
    opt_in = ("router", "shared-expert-gate", "embed", "lm-head")
    assert expand("all", registry) == [r for r in PUBLIC_ROLES if r not in opt_in]
    assert expand("attention", registry) == PUBLIC_ROLES[:9]
    assert expand("mixer", registry) == ["mixer-in", "mixer-out", "mixer-gate"]
    assert expand("experts", registry) == PUBLIC_ROLES[16:20]
    # ffn is the whole feed-forward sublayer: dense and shared (ffn-*) and routed experts
    assert expand("ffn", registry) == PUBLIC_ROLES[12:20]
    # a one-role alias is served where its role is missing: latent attention, routed-experts-only FFNs
    assert dict(registry.served_by) == {
        "q": ("attention-q-a", "attention-q-b"),
        "k": ("attention-kv-a", "attention-kv-b"),
        "v": ("attention-kv-a", "attention-kv-b"),
        "gate": ("experts-gate", "experts-gate-up"),
        "up": ("experts-up", "experts-gate-up"),
        "down": ("experts-down",),
    }


def test_founding_preset():
    p = load_registry().presets["qv8-ffn4"]
    assert (p.roles, p.rank, p.alpha, dict(p.rank_for), dict(p.alpha_for)) == ("q,v,ffn", 8, 16, {"ffn": 4}, {"ffn": 8})
    assert {"qv8", "qv8-ffn4", "attention16", "all16"} <= set(load_registry().presets)


@pytest.mark.parametrize(
    "doc,where",
    [
        ({"roles": {"attention-q": "q"}, "aliases": {"q": ["attention-z"]}}, "aliases.q"),
        ({"roles": {"attention-q": "q"}, "presets": {"p": {"roles": "q", "rank": "8", "alpha": 1}}}, "presets.p.rank"),
        (
            {"roles": {"attention-q": "q"}, "architectures": {"x": {"layer_roles": {"attention-q": "a"}}}},
            "architectures.x",
        ),
        (
            {"roles": {"attention-q": "q"}, "architectures": {"x": {"layers": "m", "layer_roles": {"nope": "a"}}}},
            "nope",
        ),
        ({"roles": {"attention-q": "q"}, "scopes": {"video": ["v"]}}, "scopes.video"),
        ({"roles": {"attention-q": "q"}, "gpus": {"H100": "80GB"}}, "gpus.H100"),
        ({"roles": {"attention-q": "q"}, "gpus": {"H100": 80, "aliases": {"H": "H200"}}}, "gpus.aliases.H"),
        (
            {"roles": {"attention-q": "q"}, "aliases": {"a": ["attention-q"]}, "served_by": {"b": ["attention-q"]}},
            "served_by.b",
        ),
        ({"roles": {"attention-q": "q"}, "limits": {"X.y": {"kind": "maybe", "why": "w"}}}, "limits.X.y.kind"),
        ({"roles": {"attention-q": "q"}, "limits": {"X.y": {"kind": "never"}}}, "limits.X.y"),
    ],
)
def test_bad_registry_names_file_and_key(doc, where):
    with pytest.raises(RegistryError) as info:
        parse_registry(doc, "my.toml")
    assert "my.toml" in str(info.value) and where in str(info.value)
