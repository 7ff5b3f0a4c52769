"""Interop speed, side by side with the reference libraries, in one run.

1. STIX ingest of one 100,000-indicator bundle (every indicator has a STIX
   pattern): the ``stix2`` library's ``parse`` of each object (the reference),
   then Détente's streaming check (JSON decode + every STIX MUST + the
   pattern grammar), then Détente's full import (check pass + store pass into
   SQLite, as ``detente indicators import`` does).
2. Memory: ``detente indicators import`` of 10k, 100k and 1M indicators, each
   in its own process; peak RSS (flat means the import holds a chunk and a
   batch, not the bundle).
3. TAXII: a real node (``detente serve`` on 127.0.0.1) holding 100,000
   objects, paged through by the OASIS ``taxii2-client``.

    python bench/bench_interop.py             # everything (about five minutes)
    python bench/bench_interop.py --max 100000 --stix2-sample 20000   # quicker
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

NOW = "2026-11-24T12:00:00.000Z"


def write_bundle(path: Path, n: int) -> None:
    with path.open("w") as f:
        f.write(f'{{"type": "bundle", "id": "bundle--{uuid.uuid4()}", "objects": [')
        for i in range(n):
            if i:
                f.write(",\n")
            f.write(
                json.dumps(
                    {
                        "type": "indicator",
                        "spec_version": "2.1",
                        "id": f"indicator--{uuid.uuid4()}",
                        "created": NOW,
                        "modified": NOW,
                        "name": f"C2 server {i}",
                        "indicator_types": ["malicious-activity"],
                        "pattern": f"[ipv4-addr:value = '10.{i >> 16 & 255}.{i >> 8 & 255}."
                        f"{i & 255}']",
                        "pattern_type": "stix",
                        "pattern_version": "2.1",
                        "valid_from": NOW,
                        "object_marking_refs": [
                            "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
                        ],
                    }
                )
            )
        f.write("]}\n")


def bench_stix2(path: Path, sample: int | None) -> float:
    import stix2

    from detente.interop.stream import BundleReader

    done = 0
    started = time.perf_counter()
    with path.open("rb") as f:
        for obj in BundleReader(f):
            stix2.parse(obj, allow_custom=False, version="2.1")
            done += 1
            if sample is not None and done >= sample:
                break
    return done / (time.perf_counter() - started)


def bench_ours(path: Path, workdir: Path) -> tuple[float, float, int]:
    from detente.interop.ingest import import_engine, import_file, scan_file

    started = time.perf_counter()
    scanned = scan_file(path)
    check_rate = scanned.objects / (time.perf_counter() - started)
    engine = import_engine(f"sqlite:///{workdir / 'bench.db'}")
    started = time.perf_counter()
    result = import_file(
        engine,
        path,
        scope="local",
        source="local:bench",
        now_us=lambda: int(time.time() * 1_000_000),
    )
    import_rate = result.objects / (time.perf_counter() - started)
    engine.dispose()
    return check_rate, import_rate, result.stored


def new_home(workdir: Path, name: str) -> Path:
    from detente.cli.demo import create_node, free_port

    return create_node(workdir / name, "US-CISA", {"en": "CISA"}, "US", ["en"], free_port()).path


def bench_taxii(workdir: Path, bundle: Path) -> tuple[int, float, int]:
    from taxii2client.v21 import Server, as_pages

    from detente.cli.demo import wait_healthy
    from detente.node.config import NodeHome

    home = new_home(workdir, "taxii")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "detente",
            "indicators",
            "import",
            str(bundle),
            "--home",
            str(home),
            "--json",
        ],
        check=True,
        capture_output=True,
    )
    config = NodeHome(home).config()
    base = f"http://{config.listen_host}:{config.listen_port}"
    log = (workdir / "taxii-node.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "detente", "serve", "--home", str(home)], stdout=log, stderr=log
    )
    try:
        wait_healthy(base, proc, timeout=60)
        token = NodeHome(home).cli_token()
        server = Server(f"{base}/taxii2/", user="cli", password=token)
        (local,) = [c for c in server.api_roots[0].collections if c.title.endswith(" local")]
        best = 0.0
        count = 0
        per_request = 10_000
        for _ in range(2):  # the first pass also warms SQLite's page cache
            count = 0
            started = time.perf_counter()
            for envelope in as_pages(local.get_objects, per_request=per_request):
                count += len(envelope.get("objects", []))
            best = max(best, count / (time.perf_counter() - started))
        return count, best, per_request
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=100_000, help="indicators in the ingest bundle")
    parser.add_argument("--max", type=int, default=1_000_000, help="largest memory run")
    parser.add_argument(
        "--stix2-sample", type=int, default=None, help="time stix2 on this many (default: all)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-interop-") as tmp:
        workdir = Path(tmp)
        bundle = workdir / f"bundle-{args.n}.json"
        write_bundle(bundle, args.n)
        size_mb = bundle.stat().st_size / 1e6
        print(f"STIX ingest: {args.n:,} indicators, {size_mb:.0f} MB, each with a STIX pattern")
        reference = bench_stix2(bundle, args.stix2_sample)
        sampled = f" (first {args.stix2_sample:,})" if args.stix2_sample else ""
        print(f"  stix2.parse (reference){sampled:<20} {reference:>10,.0f} indicators/s")
        check_rate, import_rate, stored = bench_ours(bundle, workdir)
        print(
            f"  detente check (stream + validate)       {check_rate:>10,.0f} indicators/s"
            f"   {check_rate / reference:5.1f}x stix2"
        )
        print(
            f"  detente import (check + store, SQLite)  {import_rate:>10,.0f} indicators/s"
            f"   {import_rate / reference:5.1f}x stix2   ({stored:,} stored)"
        )

        print("Memory: `detente indicators import`, one process per size (peak RSS)")
        sizes = [n for n in (10_000, 100_000, 1_000_000) if n <= args.max]
        for n in sizes:
            path = bundle if n == args.n else workdir / f"mem-{n}.json"
            if n != args.n:
                write_bundle(path, n)
            home = new_home(workdir, f"mem-{n}")
            code = (
                "import resource,subprocess,sys,json;"
                "subprocess.run(sys.argv[1:],check=True,capture_output=True);"
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
            )
            started = time.perf_counter()
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    code,
                    sys.executable,
                    "-m",
                    "detente",
                    "indicators",
                    "import",
                    str(path),
                    "--home",
                    str(home),
                    "--json",
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - started
            peak_mib = int(out.stdout.strip()) / 1024
            print(
                f"  {n:>9,} indicators  {path.stat().st_size / 1e6:6.0f} MB  "
                f"peak RSS {peak_mib:6.0f} MiB  {n / seconds:8,.0f} indicators/s"
            )
            if path != bundle:
                path.unlink()

        print("TAXII 2.1: taxii2-client pages through a real node's collection")
        count, rate, per_request = bench_taxii(workdir, bundle)
        print(f"  {count:,} objects, {per_request:,} per request: {rate:,.0f} objects/s")


if __name__ == "__main__":
    main()
