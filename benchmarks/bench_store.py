"""Read side at audit scale: the warehouse against today's linear reader, and how each cost grows.

In one run:

1. a real demo store (``decisiontrail demo``) gives the template and the storage figure: compacted
   bytes against OTLP-JSON bytes for the demo's decisions;
2. stores of 20k, 200k and 2M decisions are generated from the demo's lines (fresh decision, trace,
   span, chain and applicant ids and shifted times per copy, spread over the same 10 days, so
   nothing repeats that would compress unrealistically), under ``--dir`` (default /tmp);
3. for each: compaction (decisions/s, CPU seconds, peak RSS, in a child process on one DuckDB thread),
   ``show <id>`` (decision + its trace), a filtered query (label, version, the hour around a
   decision), a business-key lookup (``--key loan_id=...``), a subject lookup (``--subject``:
   ``enduser.pseudo.id``), the same applicant as a path into the input (``--where
   input.applicant_id=...``), the HTML report, bytes per decision; show, the filtered query and the business key through the linear file reader (what
   every reader did before) on the smaller sizes.

Run: ``python benchmarks/bench_store.py [--sizes 20000,200000,2000000] [--keep]``. The generated
stores are deleted at the end unless ``--keep``. Timings are medians of a few calls on a shared
machine: compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from decisiontrail.report import collect, render
from decisiontrail.store.files import FileStore
from decisiontrail.store.query import Query
from decisiontrail.store.warehouse import WarehouseStore
from decisiontrail.store.warehouse.filters import where_sql

DAYS = 10
_TOKEN = re.compile(
    rb'(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12})'
    rb'|"(?P<idkey>traceId|spanId|parentSpanId)":"(?P<hexid>[0-9a-f]+)"'
    rb'|(?P<sha>[0-9a-f]{64})'
    rb'|hmac-sha256:(?P<hmac>[0-9a-f]{32})'
    rb'|"(?P<loan>L-[0-9][0-9-]*)"'
    rb'|UnixNano":"(?P<ns>\d+)"')


def _demo(out: Path, n: int) -> None:
    subprocess.run([sys.executable, "-m", "decisiontrail.cli", "demo", "--out", str(out), "--n", str(n)],
                   check=True, capture_output=True)


def generate(template: list[bytes], per_copy: int, n: int, out: Path, seed: int) -> None:
    """``n`` decisions: copies of the template lines with every id, hash and time made fresh."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    copies = max(1, n // per_copy)
    span_ms = DAYS * 86_400_000
    with open(out / "decisions.jsonl", "wb", buffering=8 << 20) as f:
        for c in range(copies):
            shift_ms = c * span_ms // copies
            node = rng.getrandbits(48)
            seen: dict[bytes, bytes] = {}

            def fresh(m: re.Match[bytes]) -> bytes:
                whole = m.group(0)
                if m.group("ns") is not None:
                    return b'UnixNano":"%d"' % (int(m.group("ns")) + shift_ms * 1_000_000)
                got = seen.get(whole)
                if got is not None:
                    return got
                if m.group("uuid") is not None:
                    u = m.group("uuid").decode()
                    ms = int(u[:8] + u[9:13], 16) + shift_ms
                    new = f"{ms >> 16:08x}-{ms & 0xFFFF:04x}{u[13:24]}{node:012x}".encode()
                elif m.group("idkey") is not None:
                    width = len(m.group("hexid"))
                    new = b'"%s":"%s"' % (m.group("idkey"), f"{rng.getrandbits(width * 4):0{width}x}".encode())
                elif m.group("loan") is not None:  # the demo's business key: one per copy
                    new = b'"L%d-%s"' % (c, m.group("loan")[2:])
                elif m.group("sha") is not None:
                    new = f"{rng.getrandbits(256):064x}".encode()
                else:
                    new = b"hmac-sha256:" + f"{rng.getrandbits(128):032x}".encode()
                seen[whole] = new
                return new

            for line in template:
                f.write(_TOKEN.sub(fresh, line))


CLOCK = time.process_time
"""Lookups are timed in CPU seconds of this process (DuckDB's threads included): on a machine shared by
other jobs, wall time measures the neighbours. ``--wall`` times them by the wall clock instead."""


def _median(fn: Callable[[], Any], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = CLOCK()
        fn()
        times.append(CLOCK() - t)
    return statistics.median(times)


def _compact(data: Path) -> dict[str, float]:
    code = ("import sys; from decisiontrail.store.warehouse import compact; "
            "s = compact([sys.argv[1]]); print(s.decisions)")
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", code, str(data)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)  # this child's own CPU time and peak RSS
    p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0, out
    wall = time.perf_counter() - t
    return {"decisions": int(out.strip().splitlines()[-1]), "wall": wall,
            "cpu": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024}


def _lookups(store_of: Callable[[], Any], ids: list[str], query: Query, key_queries: dict[str, Query]) -> dict[str, float]:
    def show() -> None:
        for did in ids:
            s = store_of()
            d = s.decision(did)
            assert d is not None, did
            s.trace(d.trace_id)

    def filtered() -> None:
        s = store_of()
        sum(1 for r in s.decisions(query) if r.to_dict())

    def lookup(q: Query) -> Callable[[], None]:
        def run() -> None:
            s = store_of()
            rows = [r.to_dict() for r in s.decisions(q)]
            assert rows, q
        return run

    runs = 3 if len(ids) > 1 else 1
    return {"show": _median(show, 1) / len(ids), "query": _median(filtered, runs),
            **{name: _median(lookup(q), runs) for name, q in key_queries.items()}}


def _report(data: Path) -> float:
    def one() -> None:
        s = WarehouseStore([data], data / "warehouse")
        con = s.connection()
        where, params = where_sql(Query())
        render(collect(con, where, params), title="bench", scope=str(data))
        s.close()

    return _median(one, 1)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20000,200000,2000000")
    ap.add_argument("--linear-max", type=int, default=200_000, help="largest store read by the linear reader")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--demo", type=int, default=20_000, help="decisions of the real demo store")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--wall", action="store_true", help="time lookups by the wall clock, not CPU time")
    args = ap.parse_args()
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    root = Path(args.dir) / f"dt-bench-store-{os.getpid()}"
    root.mkdir(parents=True)
    try:
        demo = root / "demo"
        _demo(demo, args.demo)
        json_bytes = _size(demo)
        c = _compact(demo)
        wh = _size(demo / "warehouse")
        dec = _size(demo / "warehouse" / "decisions")
        print(f"demo store: {c['decisions']} decisions, OTLP-JSON {json_bytes / c['decisions']:.0f} B/decision; "
              f"warehouse {wh / c['decisions']:.0f} B/decision = {100 * wh / json_bytes:.1f}% "
              f"(decisions table {100 * dec / json_bytes:.1f}%, spans {100 * (wh - dec) / json_bytes:.1f}%)")
        template = (demo / "decisions.jsonl").read_bytes().splitlines(keepends=True)
        results: dict[int, dict[str, float]] = {}
        for n in [int(s) for s in args.sizes.split(",")]:
            data = root / f"store-{n}"
            t = time.perf_counter()
            generate(template, c["decisions"], n, data, seed=n)
            gen = time.perf_counter() - t
            size = _size(data)
            r = _compact(data)
            probe = WarehouseStore([data], data / "warehouse")
            con = probe.connection()
            ids = [row[0] for row in con.execute(
                "SELECT decision_id FROM decisions USING SAMPLE 5 ROWS (reservoir, 1)").fetchall()]
            app, loan = con.execute(f"SELECT input->>'$.applicant_id', keys['loan_id'] FROM decisions "
                                    f"WHERE decision_id = '{ids[0]}'").fetchone()
            # One hour around a sampled decision (the copies are bursts spread over the days: the middle
            # of the range may hold none).
            t_mid = con.execute(f"SELECT time_unix_nano - 1_800_000_000_000 FROM decisions "
                                f"WHERE decision_id = '{ids[0]}'").fetchone()[0]
            probe.close()
            query = Query(label="deny", version="1.0.0", since_ns=t_mid, until_ns=t_mid + 3_600_000_000_000)
            # The business-key lookups: by the subject's pseudonym (query --subject, a column), by the
            # loan id (query --key loan_id=..., a key column), and by the same value as a path into the
            # input JSON (parsed per row: what the subject column saves).
            keys = {"subject": Query(where=[("enduser.pseudo.id", app)]),
                    "key": Query(where=[("decision.key.loan_id", loan)]),
                    "input_path": Query(where=[("input.applicant_id", app)])}
            res: dict[str, float] = {"n": r["decisions"], "gen_s": gen, "json_B": size / n,
                                     "compact_rate": r["decisions"] / r["wall"], "compact_cpu_rate": r["decisions"] / r["cpu"],
                                     "rss_mb": r["rss_mb"], "wh_B": _size(data / "warehouse") / n}

            def wstore(d: Path = data) -> WarehouseStore:
                return WarehouseStore([d], d / "warehouse")

            res.update({f"wh_{k}": v for k, v in _lookups(wstore, ids, query, keys).items()})
            res["report"] = _report(data)
            if n <= args.linear_max:
                lin = _lookups(lambda d=data: FileStore([d]), ids[:1], query, {"key": keys["key"]})
                res.update({f"lin_{k}": v for k, v in lin.items()})
                res["lin_show_rate"] = n / lin["show"]  # decisions scanned per (CPU) second
            results[n] = res
            print(f"{n:>9,} decisions: generated in {gen:.0f} s, OTLP-JSON {res['json_B']:.0f} B/decision, "
                  f"warehouse {res['wh_B']:.0f} B/decision")
            print(f"           compact {res['compact_rate']:,.0f} decisions/s wall, {res['compact_cpu_rate']:,.0f} "
                  f"per CPU-second, peak RSS {res['rss_mb']:.0f} MB")
            unit = "CPU " if CLOCK is time.process_time else ""
            print(f"           warehouse ({unit}time): show {res['wh_show'] * 1e3:.0f} ms, filtered query {res['wh_query'] * 1e3:.0f} ms, "
                  f"business key {res['wh_key'] * 1e3:.0f} ms, subject {res['wh_subject'] * 1e3:.0f} ms, "
                  f"input path {res['wh_input_path'] * 1e3:.0f} ms, report {res['report']:.1f} s")
            if "lin_show" in res:
                print(f"           linear reader ({unit}time): show {res['lin_show']:.1f} s ({res['lin_show_rate']:,.0f} decisions/s), "
                      f"filtered query {res['lin_query']:.1f} s, business key {res['lin_key']:.1f} s; compaction is "
                      f"{res['compact_cpu_rate'] / res['lin_show_rate']:.1f}x the linear show's scan rate "
                      f"(per CPU-second)")
            shutil.rmtree(data)
        sizes = sorted(results)
        base = results[sizes[0]]
        print("growth against the smallest store (cost ratio):")
        for n in sizes[1:]:
            r = results[n]
            print(f"  {n // sizes[0]:>4}x decisions: show {r['wh_show'] / base['wh_show']:.2f}x, "
                  f"filtered query {r['wh_query'] / base['wh_query']:.2f}x, business key {r['wh_key'] / base['wh_key']:.2f}x, "
                  f"subject {r['wh_subject'] / base['wh_subject']:.2f}x, input path {r['wh_input_path'] / base['wh_input_path']:.2f}x, "
                  f"report {r['report'] / base['report']:.2f}x, compaction time "
                  f"{(r['n'] / r['compact_cpu_rate']) / (base['n'] / base['compact_cpu_rate']):.1f}x (CPU)"
                  + (f"; linear show {r['lin_show'] / base['lin_show']:.1f}x" if "lin_show" in r and "lin_show" in base else ""))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
