"""RFC 9162 Merkle tree maths against the transparency-dev/merkle vectors, plus properties."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detente.core.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from detente.errors import ConsistencyProofError, InclusionProofError, ProofError

VECTORS = Path(__file__).parent.parent / "vectors" / "merkle"
INCLUSION = sorted((VECTORS / "inclusion").rglob("*.json"))
CONSISTENCY = sorted((VECTORS / "consistency").rglob("*.json"))


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(value: list[str] | None) -> list[bytes]:
    return [_b64(p) for p in value or []]


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_vector_files_are_present() -> None:
    assert len(INCLUSION) >= 90
    assert len(CONSISTENCY) >= 90


@pytest.mark.parametrize("path", INCLUSION, ids=_id)
def test_inclusion_vector(path: Path) -> None:
    v = _load(path)
    index = v.get("leafIdx", v.get("leafIndex"))
    args = (_b64(v["leafHash"]), index, v["treeSize"], _proof(v["proof"]), _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(InclusionProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", CONSISTENCY, ids=_id)
def test_consistency_vector(path: Path) -> None:
    v = _load(path)
    args = (
        v["size1"],
        v["size2"],
        _proof(v["proof"]),
        _b64(v["root1"]),
        _b64(v["root2"]),
    )
    if v["wantErr"]:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_rfc6962_roots_for_every_size() -> None:
    data = _load(VECTORS / "rfc6962-roots.json")
    leaves = [bytes.fromhex(x) for x in data["leaf_inputs_hex"]]
    for size, want in enumerate(data["root_hex_by_tree_size"]):
        tree = MerkleTree()
        for leaf in leaves[:size]:
            tree.append(leaf)
        assert tree.root().hex() == want
        assert root_from_leaf_hashes([leaf_hash(x) for x in leaves[:size]]).hex() == want
    assert EMPTY_ROOT.hex() == data["root_hex_by_tree_size"][0]


def test_hash_prefixes_are_domain_separated() -> None:
    # RFC 9162 §2.1.1: a leaf can never be read as an interior node.
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) != leaf_hash(a + b)


# -- exhaustive and property checks ---------------------------------------------

_FULL = MerkleTree.from_leaf_hashes(leaf_hash(i.to_bytes(4, "big")) for i in range(300))


def _check_all_proofs(size: int) -> None:
    root = _FULL.root(size)
    hashes = [_FULL.leaf_hash_at(i) for i in range(size)]
    assert root == root_from_leaf_hashes(hashes)
    for i in range(size):
        verify_inclusion(hashes[i], i, size, _FULL.inclusion_proof(i, size), root)
    for m in range(1, size + 1):
        verify_consistency(m, size, _FULL.consistency_proof(m, size), _FULL.root(m), root)


@pytest.mark.parametrize("size", range(1, 301))
def test_every_proof_verifies_for_every_tree_size_up_to_300(size: int) -> None:
    _check_all_proofs(size)


def _flip(data: bytes, pos: int, bit: int) -> bytes:
    out = bytearray(data)
    out[pos % len(out)] ^= 1 << bit
    return bytes(out)


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(min_value=2, max_value=300),
    data=st.data(),
    bit=st.integers(min_value=0, max_value=7),
)
def test_inclusion_proof_with_any_flipped_bit_rejected(size: int, data: Any, bit: int) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = _FULL.inclusion_proof(index, size)
    root = _FULL.root(size)
    leaf = _FULL.leaf_hash_at(index)
    target = data.draw(st.integers(min_value=0, max_value=len(proof) + 1))
    pos = data.draw(st.integers(min_value=0, max_value=31))
    if target < len(proof):
        proof[target] = _flip(proof[target], pos, bit)
    elif target == len(proof):
        root = _flip(root, pos, bit)
    else:
        leaf = _flip(leaf, pos, bit)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, index, size, proof, root)


@settings(max_examples=200, deadline=None)
@given(
    size2=st.integers(min_value=2, max_value=300),
    data=st.data(),
    bit=st.integers(min_value=0, max_value=7),
)
def test_consistency_proof_with_any_flipped_bit_rejected(size2: int, data: Any, bit: int) -> None:
    size1 = data.draw(st.integers(min_value=1, max_value=size2 - 1))
    proof = _FULL.consistency_proof(size1, size2)
    root1, root2 = _FULL.root(size1), _FULL.root(size2)
    target = data.draw(st.integers(min_value=0, max_value=len(proof) + 1))
    pos = data.draw(st.integers(min_value=0, max_value=31))
    if target < len(proof):
        proof[target] = _flip(proof[target], pos, bit)
    elif target == len(proof):
        root1 = _flip(root1, pos, bit)
    else:
        root2 = _flip(root2, pos, bit)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size2, proof, root1, root2)


# -- named attacks ----------------------------------------------------------------


def test_consistency_proof_with_swapped_roots_rejected() -> None:
    proof = _FULL.consistency_proof(7, 20)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(7, 20, proof, _FULL.root(20), _FULL.root(7))


def test_consistency_proof_for_a_rewritten_history_rejected() -> None:
    # The log forks after leaf 5: same size, different history.
    forked = MerkleTree.from_leaf_hashes([_FULL.leaf_hash_at(i) for i in range(5)])
    forked.extend_leaf_hashes([leaf_hash(b"forged %d" % i) for i in range(15)])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(10, 20, forked.consistency_proof(10, 20), _FULL.root(10), forked.root())


def test_inclusion_proof_for_another_index_rejected() -> None:
    proof = _FULL.inclusion_proof(3, 10)
    with pytest.raises(InclusionProofError):
        verify_inclusion(_FULL.leaf_hash_at(3), 4, 10, proof, _FULL.root(10))


def test_inclusion_proof_with_extra_element_rejected() -> None:
    proof = [*_FULL.inclusion_proof(3, 10), _FULL.root(10)]
    with pytest.raises(InclusionProofError):
        verify_inclusion(_FULL.leaf_hash_at(3), 3, 10, proof, _FULL.root(10))


def test_inclusion_proof_with_short_hash_rejected_not_crashing() -> None:
    proof = _FULL.inclusion_proof(3, 10)
    proof[0] = proof[0][:31]
    with pytest.raises(InclusionProofError):
        verify_inclusion(_FULL.leaf_hash_at(3), 3, 10, proof, _FULL.root(10))


def test_interior_node_presented_as_leaf_rejected() -> None:
    # Second-preimage attempt: node(l0, l1) claimed as a leaf of a smaller tree.
    node = node_hash(_FULL.leaf_hash_at(0), _FULL.leaf_hash_at(1))
    proof = _FULL.inclusion_proof(2, 4)[1:]
    with pytest.raises(InclusionProofError):
        verify_inclusion(node, 0, 2, proof, _FULL.root(4))


def test_consistency_from_empty_tree_rejected() -> None:
    with pytest.raises(ProofError):
        verify_consistency(0, 5, [], EMPTY_ROOT, _FULL.root(5))


def test_root_from_inclusion_proof_matches_tree() -> None:
    for i in range(13):
        assert root_from_inclusion_proof(
            _FULL.leaf_hash_at(i), i, 13, _FULL.inclusion_proof(i, 13)
        ) == _FULL.root(13)


# -- the tree itself ---------------------------------------------------------------


def test_incremental_bulk_and_loaded_trees_agree() -> None:
    rng = random.Random(7)
    hashes = [leaf_hash(rng.randbytes(8)) for _ in range(1000)]
    one = MerkleTree()
    for h in hashes:
        one.append_leaf_hash(h)
    bulk = MerkleTree()
    pos = 0
    while pos < len(hashes):
        step = rng.randint(1, 70)
        bulk.extend_leaf_hashes(hashes[pos : pos + step])
        pos += step
    loaded = MerkleTree.from_levels(one.levels)
    assert one.levels == bulk.levels == loaded.levels
    assert one.root() == bulk.root() == loaded.root() == root_from_leaf_hashes(hashes)
    assert one.inclusion_proof(777) == loaded.inclusion_proof(777)


def test_completed_nodes_are_the_rows_to_persist() -> None:
    tree = MerkleTree()
    rows: dict[tuple[int, int], bytes] = {}
    for i in range(100):
        idx = tree.append(b"%d" % i)
        rows.update({(k, j): h for k, j, h in tree.completed_nodes(idx)})
    levels = [[rows[k, j] for j in range(100 >> k)] for k in range(7)]
    assert MerkleTree.from_levels(levels).root() == tree.root()


def test_loading_levels_with_a_missing_node_rejected() -> None:
    levels = [list(level) for level in _FULL.levels]
    levels[2].pop()
    with pytest.raises(ValueError, match="level"):
        MerkleTree.from_levels(levels)


def test_past_roots_stay_answerable() -> None:
    tree = MerkleTree()
    roots = []
    for i in range(50):
        tree.append(b"%d" % i)
        roots.append(tree.root())
    assert [tree.root(n + 1) for n in range(50)] == roots
    assert tree.root(0) == EMPTY_ROOT


def test_proof_requests_outside_the_tree_refused() -> None:
    tree = MerkleTree.from_leaf_hashes([leaf_hash(b"x")] * 5)
    with pytest.raises(ValueError, match="index"):
        tree.inclusion_proof(5)
    with pytest.raises(ValueError, match="size"):
        tree.root(6)
    with pytest.raises(ValueError, match="size1"):
        tree.consistency_proof(0, 5)
    with pytest.raises(ValueError, match="32"):
        tree.append_leaf_hash(b"short")
    assert tree.consistency_proof(5) == []


@pytest.mark.parametrize(("size", "keep"), [(0, 0), (1, 0), (7, 3), (8, 4), (33, 32), (64, 17)])
def test_truncate_undoes_appends(size: int, keep: int) -> None:
    tree = MerkleTree()
    for i in range(size):
        tree.append(b"%d" % i)
    tree.truncate(keep)
    fresh = MerkleTree()
    for i in range(keep):
        fresh.append(b"%d" % i)
    assert tree.size == keep
    assert tree.root() == fresh.root()
    assert tree.levels == fresh.levels
    tree.append(b"next")
    fresh.append(b"next")
    assert tree.root() == fresh.root()
