"""LoRA settings: rank, alpha, per-role overrides and PEFT's options, checked once when made.

After PEFT's ``LoraConfig``: a frozen dataclass whose ``__post_init__`` checks every value once, so
a bad ``--bias`` or rank fails before any model is read, and nothing downstream checks again.
``LoraSettings.from_preset`` holds the one rule for combining a preset with the user's overrides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .peft_compat import check_option_values, check_task_type

if TYPE_CHECKING:  # pragma: no cover
    from .registry import Preset

DEFAULT_RANK = 8


@dataclass(frozen=True)
class LoraSettings:
    """How to adapt whatever a resolution selected: PEFT's ``LoraConfig`` fields, per-role overrides, a preset's defaults.

    ``ranks`` / ``alphas`` override ``r`` / ``lora_alpha`` per role or alias (``{"ffn": 4}``); a
    per-role value for a role the resolution lacks is an error. ``default_ranks`` /
    ``default_alphas`` (a preset's) apply only where their roles were resolved. ``modules_to_save``
    takes roles, aliases or module names; ``extra`` holds further ``LoraConfig`` keyword arguments.
    """

    r: int = DEFAULT_RANK
    lora_alpha: float | None = None
    ranks: Mapping[str, int] = field(default_factory=dict)
    alphas: Mapping[str, float] = field(default_factory=dict)
    lora_dropout: float = 0.0
    bias: str = "none"
    use_rslora: bool = False
    use_dora: bool = False
    init_lora_weights: bool | str = True
    modules_to_save: tuple[str, ...] | None = None
    extra: Mapping[str, object] = field(default_factory=dict)
    default_ranks: Mapping[str, int] = field(default_factory=dict)
    default_alphas: Mapping[str, float] = field(default_factory=dict)
    #: the preset these settings started from, if any
    preset: str | None = None
    #: ``LoraConfig.task_type`` (``"NONE"``: none); ``None``: the one for the class the model is built as
    task_type: str | None = None

    def __post_init__(self) -> None:
        check_option_values(self.peft_options())  # value rules first: a bad --bias is reported before anything else
        check_rank(self.r, "rank")
        if self.lora_alpha is not None:
            check_alpha(self.lora_alpha, "alpha")
        for what, table in (
            ("rank", self.ranks),
            ("alpha", self.alphas),
            ("rank", self.default_ranks),
            ("alpha", self.default_alphas),
        ):
            if not isinstance(table, Mapping):
                raise ConfigError(
                    f"{what}s must be a mapping of role or alias to value, e.g. {{'ffn': 4}}, "
                    f"not {type(table).__name__}"
                )
            for key, value in table.items():
                (check_rank if what == "rank" else check_alpha)(value, f"{what} for {key}")
        if self.task_type is not None:
            object.__setattr__(self, "task_type", check_task_type(self.task_type) or "NONE")
        object.__setattr__(self, "ranks", _lower_keys(self.ranks))
        object.__setattr__(self, "alphas", _lower_keys(self.alphas))
        object.__setattr__(self, "modules_to_save", split_names(self.modules_to_save))
        object.__setattr__(self, "extra", dict(self.extra))

    @property
    def alpha(self) -> float:
        """``lora_alpha``, or twice the rank when unset."""
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.r

    def peft_options(self) -> dict[str, Any]:
        """The PEFT options (``lora_dropout``, ``bias``, ``use_rslora``, ``use_dora``, ``init_lora_weights``, extras)."""
        return {
            "lora_dropout": self.lora_dropout,
            "bias": self.bias,
            "use_rslora": self.use_rslora,
            "use_dora": self.use_dora,
            "init_lora_weights": self.init_lora_weights,
            **self.extra,
        }

    @classmethod
    def from_options(
        cls,
        r: int = DEFAULT_RANK,
        lora_alpha: float | None = None,
        ranks: Mapping[str, int] | None = None,
        alphas: Mapping[str, float] | None = None,
        *,
        lora_dropout: float = 0.0,
        bias: str = "none",
        use_rslora: bool = False,
        use_dora: bool = False,
        init_lora_weights: bool | str = True,
        modules_to_save: str | Sequence[str] | None = None,
        task_type: str | None = None,
        **extra: Any,
    ) -> LoraSettings:
        """Settings from ``lora_config``-style keyword arguments (other keywords go to ``LoraConfig``)."""
        return cls(
            task_type=task_type,
            r=r,
            lora_alpha=lora_alpha,
            ranks=ranks if ranks is not None else {},
            alphas=alphas if alphas is not None else {},
            lora_dropout=lora_dropout,
            bias=bias,
            use_rslora=use_rslora,
            use_dora=use_dora,
            init_lora_weights=init_lora_weights,
            modules_to_save=split_names(modules_to_save),
            extra=extra,
        )

    @classmethod
    def from_preset(
        cls,
        preset: Preset | None,
        *,
        r: int | None = None,
        lora_alpha: float | None = None,
        ranks: Mapping[str, int] | None = None,
        alphas: Mapping[str, float] | None = None,
        **options: Any,
    ) -> LoraSettings:
        """A preset with the user's overrides: what the user gives wins over the preset's values.

        The preset's rank and alpha apply unless ``r`` / ``lora_alpha`` are given; its per-role
        ranks and alphas become defaults that apply where their roles are resolved, and the
        user's ``ranks`` / ``alphas`` win over them.
        """
        if preset is None:
            return cls(
                r=DEFAULT_RANK if r is None else r,
                lora_alpha=lora_alpha,
                ranks=ranks if ranks is not None else {},
                alphas=alphas if alphas is not None else {},
                **_split_options(options),
            )
        return cls(
            r=preset.rank if r is None else r,
            lora_alpha=preset.alpha if lora_alpha is None else lora_alpha,
            ranks=ranks if ranks is not None else {},
            alphas=alphas if alphas is not None else {},
            default_ranks=dict(preset.rank_for),
            default_alphas=dict(preset.alpha_for),
            preset=preset.name,
            **_split_options(options),
        )


def check_rank(value: Any, what: str) -> int:
    """A rank: a positive whole number."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive whole number, not {value!r}")
    return value


def check_alpha(value: Any, what: str) -> float:
    """An alpha: a positive finite number."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0
        or value != value
        or value == float("inf")
    ):
        raise ConfigError(f"{what} must be a positive number, not {value!r}")
    return value


def _split_options(options: Mapping[str, Any]) -> dict[str, Any]:
    known = ("lora_dropout", "bias", "use_rslora", "use_dora", "init_lora_weights", "modules_to_save", "task_type")
    out = {key: options[key] for key in known if key in options}
    out["extra"] = {key: value for key, value in options.items() if key not in known}
    return out


def _lower_keys(table: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key).strip().lower(): value for key, value in table.items()}


def split_names(items: Any, option: str = "modules_to_save") -> tuple[str, ...] | None:
    """``option``'s value as given (a comma list or a list of names) -> its stripped names; ``None`` for none."""
    if items is None:
        return None
    try:
        parts = items.split(",") if isinstance(items, str) else [str(i) for i in items]
    except TypeError:
        raise ConfigError(f"{option} must be a comma list or a list of names, not {items!r}") from None
    names = tuple(p.strip() for p in parts if p.strip())
    return names or None
