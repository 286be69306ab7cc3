"""Benchmark: keyed pseudonyms per second on one core (target >= 1,000,000/s).

.venv/bin/python bench/bench_pseudonymisation.py
"""

from __future__ import annotations

import hmac
import time

from srs.pipeline.deid import Pseudonymiser, generate_pseudonym_key

COUNT = 2_000_000


def main() -> None:
    key = generate_pseudonym_key()
    values = [f"police_arrests:A{n:09d}" for n in range(COUNT)]
    pseudonymiser = Pseudonymiser(key)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        out = pseudonymiser.pseudonyms(values, "person")
        best = min(best, time.perf_counter() - start)
    check = hmac.new(key, b"person\x1f" + values[0].encode(), "sha256").hexdigest()[:20]
    assert out[0] == check
    start = time.perf_counter()
    [hmac.digest(key, b"person\x1f" + v.encode(), "sha256").hex()[:20] for v in values]
    plain = time.perf_counter() - start
    print(
        f"pseudonyms: {COUNT / best:,.0f} per second on one core ({COUNT:,} in {best:.2f} s, best of 3)"
    )
    print(f"plain hmac.digest loop for comparison: {COUNT / plain:,.0f} per second")


if __name__ == "__main__":
    main()
