"""Benchmark detente.core.merkle at 1,000,000 leaves against raw hashlib in the same run.

Run: .venv/bin/python bench/bench_merkle.py [N]
"""

from __future__ import annotations

import hashlib
import random
import sys
import time

from detente.core.merkle import (
    MerkleTree,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = random.Random(1)

    # Reference: raw SHA-256 of a 65-byte input (the size of an interior node).
    block = bytes(65)
    sha = hashlib.sha256
    t0 = time.perf_counter()
    for _ in range(n):
        sha(block).digest()
    ref_ops = n / (time.perf_counter() - t0)
    ref_us = 1e6 / ref_ops
    print(f"reference sha256(65 B)      {ref_ops:12,.0f} ops/s   ({ref_us:.3f} us/op)")

    hashes = [leaf_hash(i.to_bytes(8, "big")) for i in range(n)]

    tree = MerkleTree()
    append = tree.append_leaf_hash
    t0 = time.perf_counter()
    for h in hashes:
        append(h)
    rate = n / (time.perf_counter() - t0)
    print(f"append_leaf_hash            {rate:12,.0f} leaves/s  x{ref_ops / rate:.2f} ref time")

    small = MerkleTree()
    t0 = time.perf_counter()
    for i in range(n):
        small.append(i.to_bytes(8, "big"))
    rate = n / (time.perf_counter() - t0)
    print(f"append(8-byte data)         {rate:12,.0f} leaves/s  x{ref_ops / rate:.2f} ref time")

    t0 = time.perf_counter()
    MerkleTree.from_leaf_hashes(hashes)
    dt = time.perf_counter() - t0
    print(f"from_leaf_hashes (bulk)     {dt:12.3f} s        x{dt / (n / ref_ops):.2f} ref time")

    t0 = time.perf_counter()
    root = root_from_leaf_hashes(hashes)
    dt = time.perf_counter() - t0
    print(f"root_from_leaf_hashes       {dt:12.3f} s        x{dt / (n / ref_ops):.2f} ref time")
    assert root == tree.root()
    _proofs(tree, hashes, root, ref_us, rng)


def _proofs(
    tree: MerkleTree, hashes: list[bytes], root: bytes, ref_us: float, rng: random.Random
) -> None:
    n = tree.size
    samples = 10_000
    idx = [rng.randrange(n) for _ in range(samples)]
    t0 = time.perf_counter()
    proofs = [tree.inclusion_proof(i) for i in idx]
    us = (time.perf_counter() - t0) / samples * 1e6
    print(f"inclusion_proof             {us:12.2f} us       x{us / ref_us:.1f} ref op")
    t0 = time.perf_counter()
    for i, p in zip(idx, proofs, strict=True):
        verify_inclusion(hashes[i], i, n, p, root)
    us = (time.perf_counter() - t0) / samples * 1e6
    print(f"verify_inclusion            {us:12.2f} us       x{us / ref_us:.1f} ref op")

    sizes = [rng.randrange(1, n) for _ in range(samples)]
    t0 = time.perf_counter()
    cproofs = [tree.consistency_proof(m) for m in sizes]
    us = (time.perf_counter() - t0) / samples * 1e6
    print(f"consistency_proof           {us:12.2f} us       x{us / ref_us:.1f} ref op")
    roots = [tree.root(m) for m in sizes]
    t0 = time.perf_counter()
    for m, r1, p in zip(sizes, roots, cproofs, strict=True):
        verify_consistency(m, n, p, r1, root)
    us = (time.perf_counter() - t0) / samples * 1e6
    print(f"verify_consistency          {us:12.2f} us       x{us / ref_us:.1f} ref op")

    t0 = time.perf_counter()
    for m in sizes:
        tree.root(m)
    us = (time.perf_counter() - t0) / samples * 1e6
    print(f"root(past size)             {us:12.2f} us       x{us / ref_us:.1f} ref op")


if __name__ == "__main__":
    main()
