"""The generic fallback: classify any model's leaves by name, by the block they sit in, and by shape.

How it decides, for each leaf (innermost context first):

1. Leaves inside a block no role covers (sparse-attention indexers, XLNet's einsum attention
   tensors, position-bias tables) get no role, with the reason.
2. Inside a token mixer that is not softmax attention (state-space, linear-attention, recurrent and
   short-convolution blocks, ``blocks.mixer``): the ``names.mixer`` family (``in_proj`` -> mixer-in,
   ``x_proj`` -> mixer-gate, ``out_proj`` -> mixer-out, ...); its convolutions and state
   parameters get no role. The innermost token mixer decides: a linear-attention block's
   ``q_proj`` is mixer-in, softmax attention's is attention-q.
3. Inside routed experts (``experts`` holding 3-D parameters or one module per expert): the
   ``names.experts`` family (``gate_up_proj`` -> experts-gate-up, ``w2`` -> experts-down, ...).
4. A router: a module whose class is a router, or a ``gate``/``router`` leaf of an MoE block whose
   output size is the number of experts. Qwen-MoE's ``shared_expert_gate`` (one output) is
   shared-expert-gate.
5. Inside an attention block (by attribute name or a class named ``*Attention``): the
   ``names.attention`` family (``q_proj``, ``c_attn``, ``query_key_value``, ``q_a_proj``, ...).
6. Inside an FFN (``mlp``, ``feed_forward``, ``DenseReluDense``, shared experts, a class named
   ``*MLP``): the ``names.ffn`` family, checked against the config's hidden and intermediate
   sizes where both are known; an unknown name is placed by shape alone
   (hidden->intermediate is up, intermediate->hidden is down, hidden->2*intermediate is gate-up).
7. FFN projections that sit directly in a layer (BART's ``fc1``/``fc2``) by name and shape, never
   inside an attention block.
8. Outside the layer stack: the model's input embedding is ``embed`` and its output embedding
   ``lm-head``. Everything else gets no role: a wrong role is worse than none.

A Linear named ``linear`` inside a wrapper whose class ends in ``Linear`` (Gemma 4's
``Gemma4ClippableLinear``, Moshi's ``MoshiLinear``) is judged by the wrapper's name.
"""

from __future__ import annotations

from lora_registry import Null, hookimpl


@hookimpl
def lora_registry_model_types():
    """Any model: this plugin is the last resort."""
    return ["*"]


@hookimpl(trylast=True)
def lora_registry_classify(config, leaves, tree, registry):
    """Classify every leaf; always answers (from the module tree: no module needed)."""
    sizes = _Sizes(config)
    special = _embedding_names(tree)
    classifier = _Classifier(registry, sizes, special)
    return {leaf.name: classifier.role(leaf) for leaf in leaves}


class _Sizes:
    """hidden/intermediate sizes and expert count per scope, attention head counts, from the config where it has them."""

    def __init__(self, config):
        self.by_scope = {}
        self.experts = set()
        self.heads = set()
        if config is None:
            return
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        self.by_scope["language"] = _dims(text)
        # a tower's config sits on the model's config, or on its encoder's (T5Gemma 2)
        holders = [config, _attr(config, "encoder")]
        for key, scope in (("vision_config", "vision"), ("audio_config", "audio"), ("qformer_config", "projector")):
            sub = next((found for h in holders if (found := _attr(h, key)) is not None), None)
            if sub is not None:
                self.by_scope[scope] = _dims(sub, tower=True)
        for cfg in (text, config):
            heads = _attr(cfg, "num_attention_heads")
            if isinstance(heads, int) and heads > 0:
                self.heads.add(heads)
            for attr in (
                "num_experts",
                "num_local_experts",
                "n_routed_experts",
                "moe_num_experts",
                "num_experts_per_layer",
            ):
                value = _attr(cfg, attr)
                if isinstance(value, int) and value > 0:
                    self.experts.add(value)
                    zero = _attr(cfg, "zero_expert_num")  # LongCat-Flash routes to "zero" experts too
                    if isinstance(zero, int) and zero > 0:
                        self.experts.add(value + zero)

    def dims(self, scope):
        # A scope with no config of its own (Whisper's audio encoder) shares the model's sizes.
        return self.by_scope.get(scope) or self.by_scope.get("language", (None, set()))


def _attr(cfg, name):
    # transformers' per-layer configs raise their own error for a global read of a per-layer value
    try:
        return getattr(cfg, name, None)
    except Exception:
        return None


def _dims(cfg, tower=False):
    # A tower's hidden_size can be the language model's (Qwen2-VL's vision config): embed_dim first there.
    order = ("embed_dim", "hidden_size", "d_model") if tower else ("hidden_size", "d_model", "n_embd", "embed_dim")
    hidden = next((_attr(cfg, a) for a in order if isinstance(_attr(cfg, a), int)), None)
    inter = set()
    ratio = _attr(cfg, "mlp_ratio")
    if hidden and isinstance(ratio, (int, float)) and ratio > 0:
        inter.add(int(hidden * ratio))
    for attr in (
        "intermediate_size",
        "ffn_dim",
        "d_ff",
        "n_inner",
        "ffn_hidden_size",
        "moe_intermediate_size",
        "shared_expert_intermediate_size",
        "decoder_ffn_dim",
        "encoder_ffn_dim",
        "mlp_dim",
        "dff",
    ):
        value = _attr(cfg, attr)
        if isinstance(value, int) and value > 0:
            inter.add(value)
    shared = _attr(cfg, "n_shared_experts")
    moe_inter = _attr(cfg, "moe_intermediate_size")
    if isinstance(shared, int) and isinstance(moe_inter, int) and shared > 0:
        inter.add(shared * moe_inter)  # DeepSeek's shared experts are one FFN of n_shared x moe width
    if hidden and not inter:
        inter.add(4 * hidden)
    return hidden, inter


#: why the leaves of a null block (``blocks.nulls`` / ``blocks.null_classes``) get no role
_NULL_BLOCKS = {
    "indexer": "a sparse-attention indexer (DSA lightning indexer): it scores keys and returns the top-k "
    "indices the attention may use, computed without gradient, so a LoRA here never trains",
    "rel_attn": "XLNet's relative attention keeps q/k/v/o/r as 3-D [d_model, heads, head_dim] tensors used "
    "through einsum; PEFT's target_parameters reads a 3-D tensor as [experts, out, in], so no role fits",
    "relative_attention_bias": "a relative-position bias table, not a projection",
}
_CONV_IN_MIXER = (
    "a depthwise causal convolution inside a token mixer: transformers hands its .weight to the causal-conv "
    "kernels instead of calling the module (LFM and RecurrentGemma call it, but not when decoding), so a "
    "LoRA on it would not run, and PEFT's Conv1d LoRA needs rank % groups == 0 with groups = channels"
)


class _Classifier:
    def __init__(self, registry, sizes, special):
        self.names = registry.names
        self.blocks = {k: set(v) for k, v in registry.blocks.items()}
        self.sizes = sizes
        self.special = special

    def role(self, leaf):
        """The leaf's role, or ``Null(reason)``."""
        if leaf.name in self.special:
            return self.special[leaf.name]
        if leaf.layer is None and leaf.lora_type == "embedding":
            return Null("an embedding that is not the model's input or output embedding (positions, types)")
        components = [c for c, _ in leaf.path]
        classes = [cls for _, cls in leaf.path]
        # For a parameter leaf, its name is the parameter's unless that is a bare "weight".
        name = components[-1]
        owner = len(components) - 1
        if leaf.kind == "parameter" and name == "weight":
            name, owner = components[-2], len(components) - 2
        elif (
            name == "linear" and owner > 0 and classes[owner - 1].endswith("Linear") and classes[owner - 1] != "Linear"
        ):
            # a wrapper holding the Linear (Gemma4ClippableLinear, MoshiLinear): the wrapper's name says what it is
            name, owner = components[owner - 1], owner - 1
        ancestors = list(range(owner - 1, -1, -1))  # innermost first
        for i in ancestors:
            word = self._null_block(components[i], classes[i])
            if word is not None and not components[i].isdigit():
                return Null(f"inside {components[i]} ({classes[i]}): {_NULL_BLOCKS.get(word, word)}")
        if leaf.kind == "parameter" and len(leaf.shape) >= 2 and sorted(leaf.shape)[-2] == 1:
            return Null(
                f"a per-channel vector stored as {list(leaf.shape)} (e.g. RWKV's token-shift mix), not a projection"
            )
        mixer = self._token_mixer(components, classes, ancestors)
        if mixer is not None and self._is_mixer(components[mixer], classes[mixer]):
            return self._mixer_role(leaf, name, f"{components[mixer]} ({classes[mixer]})")
        if self._in_routed_experts(components, classes, owner):
            # a mixture-of-attention block, not the layer (JambaAttentionDecoderLayer holds attention and experts)
            if any(self._is_attention(components[i], classes[i]) for i in ancestors if not components[i].isdigit()):
                if self._is_router(leaf, name, components, classes, owner):
                    return "router"
                return Null("a routed expert of a mixture-of-attention block: no role covers attention experts")
            return self._lookup("experts", name) or Null(f"routed-expert tensor with an unknown name {name!r}")
        if self._is_shared_expert_gate(leaf, name):
            return "shared-expert-gate"
        if self._is_router(leaf, name, components, classes, owner):
            return "router"
        if leaf.lora_type not in ("linear", "parameter"):
            return Null(
                f"{leaf.lora_type} ({leaf.module_class}): only Linear projections and expert tensors have roles"
            )
        if "GroupedLinear" in leaf.module_class:
            return Null(
                f"{leaf.module_class}: a grouped block-diagonal Linear whose forward reshapes .weight per group; "
                "a LoRA of the dense shape does not fit it"
            )
        for i in ancestors:
            comp, cls = components[i], classes[i]
            if comp.isdigit():
                if cls in ("Sequential",) or (
                    i > 0 and (self._is_attention(components[i - 1], "") or self._is_ffn(components[i - 1], ""))
                ):
                    continue  # one of several blocks in a list (LongCat-Flash's self_attn.0 and .1)
                if not any(cls.endswith(w) for w in self.blocks.get("attention_classes", ())):
                    break  # reached the layer itself
                # a stack of attention modules (BLT's cross_attn_layers.N): the layer is the block
            if self._is_attention(comp, cls):
                role = self._lookup("attention", name)
                if role:
                    return role
            elif self._is_ffn(comp, cls):
                role = self._ffn_role(name, leaf)
                if role:
                    return role
        if mixer is not None:  # inside softmax attention, but no attention name fits
            return self._attention_null(leaf, name, components, classes, ancestors, mixer)
        if leaf.layer is not None and leaf.kind == "module":
            role = self._ffn_role(name, leaf, by_shape=False, strict=True)
            if role:
                return role
        where = next((f"{components[i]} ({classes[i]})" for i in ancestors if not components[i].isdigit()), "the model")
        if leaf.layer is None:
            return Null(f"outside the layer stack, in {where}: not an embedding, attention or FFN projection")
        return Null(f"in {where}: no attention, FFN or expert name fits {name!r} with shape {list(leaf.shape)}")

    # ------------------------------------------------------------------ token mixers
    def _token_mixer(self, components, classes, ancestors):
        """The index of the innermost enclosing token mixer (softmax attention or another mixer), or ``None``."""
        for i in ancestors:
            comp, cls = components[i], classes[i]
            if comp.isdigit():
                continue
            if self._is_mixer(comp, cls) or self._is_attention(comp, cls):
                return i
        return None

    def _is_mixer(self, comp, cls):
        if any(word in cls for word in self.blocks.get("softmax_classes", ())):
            return False
        return comp in self.blocks.get("mixer", ()) or any(w in cls for w in self.blocks.get("mixer_classes", ()))

    def _mixer_role(self, leaf, name, where):
        if leaf.lora_type == "conv":
            return Null(f"inside {where}: {_CONV_IN_MIXER}")
        if leaf.lora_type not in ("linear", "parameter"):
            return Null(f"inside {where}: {leaf.lora_type} ({leaf.module_class}), not a projection")
        role = self._lookup("mixer", name)
        if role:
            return role
        if leaf.kind == "parameter":
            return Null(f"inside {where}: the mixer's state parameter {name!r} {list(leaf.shape)}, not a projection")
        return Null(f"inside {where}: no mixer name fits {name!r} with shape {list(leaf.shape)}")

    def _attention_null(self, leaf, name, components, classes, ancestors, mixer):
        where = f"{components[mixer]} ({classes[mixer]})"
        inner = next((i for i in ancestors if i > mixer and not components[i].isdigit()), None)
        if inner is not None and "Compressor" in classes[inner]:
            return Null(
                f"inside {where}'s KV compressor ({classes[inner]}): {name!r} computes pooling weights over each "
                "window's tokens, not a q/k/v/o projection"
            )
        adapters = next((components[i] for i in ancestors if components[i].endswith("adapter_list")), None)
        if adapters is not None:
            return Null(
                f"inside {where}: one of its own per-layer LoRA adapters ({adapters}), already a low-rank "
                "adapter on the shared block rather than a base projection"
            )
        out_f = leaf.shape[0] if leaf.shape else None
        per_head = leaf.lora_type == "linear" and out_f in self.sizes.heads
        if per_head and "sink" in name:
            return Null(
                f"inside {where}: per-head attention-sink logits, Linear(hidden, heads); no attention role fits"
            )
        if leaf.lora_type == "linear" and ("gate" in name or name == "g_proj"):
            shape = "Linear(hidden, heads), one gate per head" if per_head else "one gate per output element"
            return Null(
                f"inside {where}: an output gate of softmax attention (the attention output times "
                f"sigmoid({name}(x)), {shape}); no attention role covers it"
            )
        return Null(f"inside {where}: {name!r} with shape {list(leaf.shape)} is not a q/k/v/o projection")

    # ------------------------------------------------------------------ contexts
    def _null_block(self, comp, cls):
        if comp in self.blocks.get("nulls", ()):
            return comp
        word = next((w for w in self.blocks.get("null_classes", ()) if w in cls), None)
        return word.lower() if word else None

    def _is_attention(self, comp, cls):
        return comp in self.blocks.get("attention", ()) or any(
            w in cls for w in self.blocks.get("attention_classes", ())
        )

    def _is_ffn(self, comp, cls):
        return comp in self.blocks.get("ffn", ()) or any(w in cls for w in self.blocks.get("ffn_classes", ()))

    def _in_routed_experts(self, components, classes, owner):
        moe = self.blocks.get("moe", ())
        shared = self.blocks.get("shared", ())
        for i in range(owner, -1, -1):
            comp, cls = components[i], classes[i]
            if comp in shared:
                return False
            if comp in moe or (cls.endswith("Experts") and "Shared" not in cls):
                return True
        return False

    def _is_shared_expert_gate(self, leaf, name):
        names = self.names.get("router", {}).get("shared-expert-gate", ())
        return name in names and leaf.lora_type == "linear" and leaf.shape[0] == 1

    def _is_router(self, leaf, name, components, classes, owner):
        owner_cls = classes[owner]
        if "Router" in owner_cls and leaf.kind == "parameter" and len(leaf.shape) == 2:
            return True  # a router module's own weight (Inkling's counts shared experts among its logits)
        if "Router" in owner_cls or any("Router" in c for c in classes[max(0, owner - 1) : owner]):
            return self._router_shape_ok(leaf)
        router_names = self.names.get("router", {}).get("router", ())
        if name not in router_names:
            # a router module holding a plain Linear (JetMoE's router.layer)
            if not (leaf.kind == "module" and owner > 0 and components[owner - 1] in router_names):
                return False
            return self._router_shape_ok(leaf)
        in_moe = any(any(w in c for w in self.blocks.get("moe_classes", ())) for c in classes[:owner])
        return in_moe and self._router_shape_ok(leaf)

    def _router_shape_ok(self, leaf):
        if len(leaf.shape) != 2:
            return False
        return not self.sizes.experts or leaf.shape[0] in self.sizes.experts

    # ------------------------------------------------------------------ names and shapes
    def _lookup(self, block, name):
        for role, names in self.names.get(block, {}).items():
            if name in names:
                return role
        return None

    def _ffn_role(self, name, leaf, by_shape=True, strict=False):
        """A known FFN name wins when its direction fits (gate/up read the hidden state, down writes it);
        an unknown name is placed by shape against the config's sizes."""
        hidden, inter = self.sizes.dims(leaf.scope)
        role = self._lookup("ffn", name)
        out_f, in_f = tuple(leaf.shape[-2:])
        # a name that is also an attention output (dense, wo, c_proj) proves nothing on its own
        ambiguous = name in self.names.get("attention", {}).get("attention-o", ())
        if role and hidden:
            fits = out_f == hidden if role == "ffn-down" else in_f == hidden
            if role == "ffn-down" and in_f == hidden and ambiguous:
                fits = False  # hidden -> hidden is not a down projection (attention outputs named "dense")
            if fits:
                return role
            return None if strict or not by_shape or not inter else self._by_shape((out_f, in_f), hidden, inter)
        if role:
            return None if strict or ambiguous else role
        if by_shape and hidden and inter:
            return self._by_shape((out_f, in_f), hidden, inter)
        return None

    @staticmethod
    def _by_shape(shape, hidden, inter):
        out_f, in_f = shape
        if in_f == hidden and out_f in {2 * i for i in inter} and out_f not in inter:
            return "ffn-gate-up"
        if in_f == hidden and out_f in inter and out_f != hidden:
            return "ffn-up"
        if out_f == hidden and in_f in inter and in_f != hidden:
            return "ffn-down"
        return None


def _embedding_names(tree):
    """``{name: "embed" | "lm-head"}`` for the model's own input and output embeddings."""
    out: dict[str, str | Null] = {}
    if tree.input_embedding is not None:
        out[tree.input_embedding] = "embed"
    if tree.output_embedding is not None:
        out.setdefault(tree.output_embedding, "lm-head")  # one module for both: it is the input embedding
    # transformers 5 gives T5's and BART's encoder and decoder their own embedding modules whose
    # weights are tied to `shared`; those run in forward, so they are the embed role and a LoRA on
    # `shared` alone would be a silent no-op.
    for name, role in list(out.items()):
        if role != "embed":
            continue
        copies = [t for t in _tied_to(tree, name) if (node := tree.node(t)) is not None and node.kind == "embedding"]
        if copies:
            out[name] = Null(f"its weight is tied into {', '.join(copies)}, which run in forward instead")
            out.update(dict.fromkeys(copies, "embed"))
    return out


def _tied_to(tree, source):
    """Names of modules whose weight transformers ties to ``<source>.weight`` (``_tied_weights_keys``)."""
    targets = []
    for target, src in tree.weight_ties.items():
        if src == f"{source}.weight" and target.endswith(".weight"):
            name = target[: -len(".weight")]
            if tree.node(name) is not None and name not in targets:
                targets.append(name)
    return targets
