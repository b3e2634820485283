"""Cost of encoding a decision's input, in one process and one run, interleaved.

    python benchmarks/bench_encoding.py [--n 50000] [--rounds 7] [--no-corpus]

(1) a typical 10-field input, encoded as the recorder does it:
    before: the encoder before structure-aware bounding: ``canonical_json`` (the same code, still in
            encoding/canonical.py), then a cut at ``max_chars`` and a hash when over;
    after:  ``FieldEncoder`` (encoding/bounded.py): the same text when it fits.
    Each round runs both for n inputs in turn; the report gives medians of this process's CPU time
    per input and the ratio after/before.
(2) the hostile corpus (huge strings, arrays, frames, many keys, deep nesting, NaN, bytes, cycles),
    each value bounded once under the default cap: CPU seconds per value and in all (and through the
    encoder before bounding), and the stored size.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from decisiontrail.encoding import DEFAULT_MAX_CHARS, FieldEncoder, canonical_json, sha256_hex

TYPICAL = {"income": 52000.0, "debt_ratio": 0.31, "credit_history_years": 7, "loan_amount": 15000.0,
           "late_payments": 1, "employment": "salaried", "age": 41, "zip": "94110", "has_mortgage": False,
           "requested_term_months": 36}


def before(value: Any, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The recorder's encoding before bounding (recorder._encode_into as it was)."""
    text = canonical_json(value)
    if len(text) > max_chars:
        sha256_hex(text)
        text = text[:max_chars]
    return text


def deep(n: int, leaf: Any) -> Any:
    out: Any = leaf
    for _ in range(n):
        out = [out]
    return out


def cyclic() -> Any:
    d: dict[str, Any] = {"k": 1, "big": "z" * 50_000}
    d["self"] = d
    return d


CORPUS: dict[str, Callable[[], Any]] = {
    "240 KB string + small fields": lambda: {"essay": "x" * 240_000, "loan_amount": 15000.0, "zip": "94110"},
    "2000x2000 float64 + float32": lambda: {"scan": np.random.default_rng(0).random((2000, 2000)),
                                            "f": np.float32(0.5)},
    "string of escapes (360 KB)": lambda: '"\\\n\t\x00' * 60_000,
    "list of 200k ints": lambda: list(range(200_000)),
    "50k keys": lambda: {f"k{i}": i for i in range(50_000)},
    "5000-deep nesting": lambda: deep(5000, 1),
    "40-deep nesting, big leaf": lambda: deep(40, "w" * 100_000),
    "30k NaN/inf": lambda: {"a": [math.nan, math.inf, -math.inf] * 10_000, "b": "small"},
    "1 MB bytes": lambda: {"blob": b"\xff" * 1_000_000, "many": [b"\x01" * 3000] * 200},
    "cycle with big leaf": cyclic,
    "DataFrame 50k x 2": lambda: pd.DataFrame({"a": np.arange(50_000), "b": np.arange(50_000) * 0.5}),
    "numpy NaN array 100k": lambda: {"x": np.full(100_000, np.nan), "y": 2},
    "set of 100k": lambda: set(range(100_000)),
}


def typical(n: int, rounds: int) -> None:
    enc = FieldEncoder(DEFAULT_MAX_CHARS).encode
    assert enc(TYPICAL, "input") == before(TYPICAL)

    def after(value: Any) -> Any:
        return enc(value, "input")

    variants: dict[str, Callable[[Any], Any]] = {"before (canonical_json + cut)": before, "after (FieldEncoder)": after}
    results: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        for _ in range(1000):
            fn(TYPICAL)
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.process_time()  # CPU time: on a shared machine wall time mostly measures the others
            for _ in range(n):
                fn(TYPICAL)
            results[name].append((time.process_time() - t0) / n * 1e6)
    base = statistics.median(results["before (canonical_json + cut)"])
    print(f"(1) typical 10-field input, n={n} x {rounds} rounds, medians")
    for name, values in results.items():
        m = statistics.median(values)
        print(f"    {name:32} {m:8.2f} µs  ratio {m / base:5.2f}")


def corpus() -> None:
    enc = FieldEncoder(DEFAULT_MAX_CHARS)
    print(f"(2) hostile corpus, cap {DEFAULT_MAX_CHARS}: seconds after (before), stored chars")
    total = total_before = 0.0
    for name, make in CORPUS.items():
        value = make()
        t0 = time.process_time()
        r = enc(value, "input")
        t1 = time.process_time()
        before(value)
        t2 = time.process_time()
        total, total_before = total + t1 - t0, total_before + t2 - t1
        text = r if isinstance(r, str) else r.text
        print(f"    {name:32} {t1 - t0:8.3f} s ({t2 - t1:7.3f} s)  stored {len(text):5d} chars")
    print(f"    {'all':32} {total:8.3f} s ({total_before:7.3f} s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--no-corpus", action="store_true")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}")
    typical(args.n, args.rounds)
    if not args.no_corpus:
        corpus()


if __name__ == "__main__":
    main()
