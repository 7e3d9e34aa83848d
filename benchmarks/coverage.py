"""Coverage report: every text-generating model type transformers ships, built from its default config.

Per model type: language leaves, leaves with a role, leaves left null and why, which plugin
answered, whether PEFT adapted exactly the `all` resolution (with the predicted count), and
build failures. Ends with the totals the README quotes.

    .venv/bin/python benchmarks/coverage.py                 # whole corpus (a few minutes)
    .venv/bin/python benchmarks/coverage.py llama t5 jamba  # some model types
    .venv/bin/python benchmarks/coverage.py --json out.json # also write the rows as JSON
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from collections import Counter


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_types", nargs="*", help="model types to check (default: the whole corpus)")
    parser.add_argument("--json", metavar="FILE", help="write every row as JSON to FILE")
    parser.add_argument("--no-peft", action="store_true", help="skip applying the `all` config with PEFT")
    parser.add_argument("--reasons", type=int, default=2, help="null reasons shown per model type (default 2)")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from lora_registry import coverage, get_plugin_manager

    pm = get_plugin_manager(entry_points=False)
    types = args.model_types or coverage.corpus()
    rows = []
    start = time.perf_counter()
    print(f"{'model_type':<32} {'plugin':<12} {'leaves':>7} {'role':>7} {'null':>6}  peft   null reasons / failure")
    for model_type in types:
        row = coverage.check(model_type, plugin_manager=pm, peft=not args.no_peft)
        rows.append(row)
        if not row.built:
            print(f"{model_type:<32} {'-':<12} {'-':>7} {'-':>7} {'-':>6}  -      BUILD FAILED: {row.error[:150]}")
            continue
        peft = {True: "exact", False: "DIFF", None: "-"}[row.peft_exact]
        why = "; ".join(f"{n}x {reason}" for reason, n in row.nulls.most_common(args.reasons))
        if row.unexplained:
            why = f"{len(row.unexplained)} UNEXPLAINED (e.g. {row.unexplained[0]}); " + why
        if row.peft_exact is False:
            why = f"PEFT: {row.peft_note}; " + why
        if row.unreached:
            why = f"{len(row.unreached)} TOKEN MIXERS `all` MISSES (e.g. {row.unreached[0]}); " + why
        print(
            f"{model_type:<32} {row.plugin:<12} {row.leaves:>7} {row.with_role:>7} {row.null:>6}  {peft:<6} {why[:220]}"
        )
        sys.stdout.flush()
    built = [r for r in rows if r.built]
    applied = [r for r in built if r.peft_exact is not None]
    leaves = sum(r.leaves for r in built)
    with_role = sum(r.with_role for r in built)
    linear = sum(r.linear for r in built)
    linear_with_role = sum(r.linear_with_role for r in built)
    plugins = Counter(r.plugin for r in built)
    print()
    print(f"model types: {len(rows)}; built: {len(built)}; build failures: {len(rows) - len(built)}")
    print(
        f"language leaves: {leaves:,}; with a role: {with_role:,}; explicit null: "
        f"{sum(sum(r.nulls.values()) for r in built):,}; unexplained: {sum(len(r.unexplained) for r in built)}"
    )
    print(
        f"token mixers: {sum(r.mixers for r in built):,}; reached by `all`: "
        f"{sum(r.mixers - len(r.unreached) for r in built):,}; model types where `all` misses one: "
        f"{sum(bool(r.unreached) for r in built)}"
    )
    print(
        f"language Linear leaves: {linear:,}; with a role: {linear_with_role:,} "
        f"({100 * linear_with_role / max(linear, 1):.1f}%); all language leaves with a role: "
        f"{100 * with_role / max(leaves, 1):.1f}%"
    )
    if not args.no_peft:
        print(
            f"`all` applied with PEFT: {len(applied)}; exact set and count: {sum(r.peft_exact for r in applied)}; "
            f"differ: {sum(not r.peft_exact for r in applied)}; no `all` roles: {len(built) - len(applied)}"
        )
    print("answered by: " + ", ".join(f"{p} {n}" for p, n in plugins.most_common()))
    print(f"elapsed: {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump([r.to_dict() for r in rows], fh, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
