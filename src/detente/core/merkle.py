"""RFC 9162 §2 Merkle tree maths: hashes, roots, inclusion and consistency proofs.

Implements RFC 9162 (Certificate Transparency 2.0) §2.1: the Merkle Tree Hash
(§2.1.1), inclusion proofs (§2.1.3.1 generation, §2.1.3.2 verification) and
consistency proofs (§2.1.4.1 generation, §2.1.4.2 verification).  The hashing
is the RFC 6962 one (SHA-256, ``0x00`` leaf prefix, ``0x01`` node prefix), so
C2SP tlog tools and the transparency-dev/merkle vectors agree with it.

:class:`MerkleTree` keeps, level by level, the hash of every *complete*
subtree (``levels[k][i]`` covers leaves ``[i * 2**k, (i + 1) * 2**k)``).  Those
hashes never change once written, so the tree answers for any past size too,
and a store can persist them as ``(level, index, hash)`` rows and load them
back with :meth:`MerkleTree.from_levels`.

What it deliberately does not do: persistence, locking, signing tree heads
(see :mod:`detente.core.checkpoint`), or any I/O.  Verification raises
:class:`~detente.errors.InclusionProofError` /
:class:`~detente.errors.ConsistencyProofError`; it never returns a bool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence

from detente.errors import ConsistencyProofError, InclusionProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_sha256 = hashlib.sha256

#: RFC 9162 §2.1.1: the hash of an empty list is the hash of an empty string.
EMPTY_ROOT = _sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``SHA-256(0x00 || data)``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``), RFC 9162 §2.1.1."""
    return 1 << ((n - 1).bit_length() - 1)


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    """Hash adjacent pairs; an odd last node is left for the caller."""
    it = iter(level)
    sha = _sha256
    return [sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash (RFC 9162 §2.1.1) of a list of leaf hashes.

    Works level by level: pairs are hashed, and an odd node at the end of a
    level is carried up unchanged.  This is the same tree as the recursive
    definition, because the recursion always splits at the largest power of
    two, so an unpaired right-edge node meets its sibling higher up.
    """
    if not hashes:
        return EMPTY_ROOT
    level: list[bytes] = list(hashes)
    while len(level) > 1:
        nxt = _next_level(level)
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _check_hash(value: bytes, what: str, error: type[Exception]) -> None:
    if len(value) != HASH_SIZE:
        raise error(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Recompute the root an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1-5).

    Raises :class:`InclusionProofError` if the proof has the wrong shape for
    ``index`` and ``size``; the caller compares the result with a trusted root.
    """
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is not inside a tree of size {size}")
    _check_hash(leaf_hash, "leaf hash", InclusionProofError)
    fn = index
    sn = size - 1
    r = leaf_hash
    sha = _sha256
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}", InclusionProofError)
        if sn == 0:
            raise InclusionProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = sha(b"\x01" + p + r).digest()
            if not fn & 1:
                # §2.1.3.2 step 4.b.ii: skip the levels where this node is a
                # lone right-edge node carried up without a sibling.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InclusionProofError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 §2.1.3.2.  Raises :class:`InclusionProofError`; returns nothing.
    """
    if root_from_inclusion_proof(leaf_hash, index, size, proof) != root:
        raise InclusionProofError(f"inclusion proof for leaf {index} does not lead to the root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size2`` with ``root2`` extends the one of ``size1``.

    RFC 9162 §2.1.4.2.  Edge cases follow the transparency-dev/merkle vectors:
    equal sizes need an empty proof and equal roots (and for size 0 that root
    must be the empty-tree hash); ``size1 == 0 < size2`` is refused, since such
    a "proof" would prove nothing.  Raises :class:`ConsistencyProofError`.
    """
    if size1 < 0 or size2 < size1:
        raise ConsistencyProofError(f"size1 {size1} and size2 {size2} are not in order")
    if size1 == size2:
        if proof:
            raise ConsistencyProofError("sizes are equal but the consistency proof is not empty")
        if root1 != root2:
            raise ConsistencyProofError("sizes are equal but the roots differ")
        if size1 == 0 and root1 != EMPTY_ROOT:
            raise ConsistencyProofError("a tree of size 0 must have the empty-tree root")
        return
    if size1 == 0:
        raise ConsistencyProofError("a consistency proof from the empty tree proves nothing")
    if not proof:
        raise ConsistencyProofError("consistency proof is empty")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}", ConsistencyProofError)

    path = list(proof)
    # §2.1.4.2 step 2: when size1 is a power of two, the old root is itself a
    # node of the new tree and is not sent; put it back at the front.
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn = size1 - 1
    sn = size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    sha = _sha256
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyProofError("consistency proof is longer than expected")
        if fn & 1 or fn == sn:
            fr = sha(b"\x01" + c + fr).digest()
            sr = sha(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = sha(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ConsistencyProofError("consistency proof is shorter than expected")
    if fr != root1:
        raise ConsistencyProofError(f"consistency proof does not lead to the root of size {size1}")
    if sr != root2:
        raise ConsistencyProofError(f"consistency proof does not lead to the root of size {size2}")


class MerkleTree:
    """An append-only in-memory Merkle tree (RFC 9162 §2.1) keeping every complete subtree.

    ``levels[0]`` holds the leaf hashes; ``levels[k][i]`` is the hash of the
    complete subtree over leaves ``[i << k, (i + 1) << k)``.  Appending a leaf
    writes at most ``log2(size)`` new nodes (one on average) and never
    rewrites one, so proofs and roots for any past size need only
    ``O(log n)`` lookups plus the hashes of the incomplete right edge.

    Not thread-safe: the node serialises appends (the log's sequencer).
    """

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = [[]]

    # -- construction -------------------------------------------------------

    @classmethod
    def from_leaf_hashes(cls, hashes: Iterable[bytes]) -> MerkleTree:
        """Rebuild a tree from its stored leaf hashes (bulk, level by level)."""
        tree = cls()
        tree.extend_leaf_hashes(hashes)
        return tree

    @classmethod
    def from_levels(cls, levels: Sequence[Sequence[bytes]]) -> MerkleTree:
        """Load a tree from stored complete-subtree rows, as :attr:`levels` gives them.

        Only the shape is checked (each level holds ``len(below) // 2`` hashes of
        32 bytes); the hashes are trusted, as they come from our own store.  Use
        :meth:`from_leaf_hashes` to recompute everything instead.
        """
        if not levels:
            return cls()
        tree = cls()
        loaded: list[list[bytes]] = []
        below = -1
        for k, level in enumerate(levels):
            nodes = list(level)
            if k and len(nodes) != below // 2:
                raise ValueError(f"level {k} has {len(nodes)} nodes, expected {below // 2}")
            if any(len(h) != HASH_SIZE for h in nodes):
                raise ValueError(f"level {k} holds a hash that is not {HASH_SIZE} bytes")
            loaded.append(nodes)
            below = len(nodes)
        if len(loaded[-1]) > 1:
            raise ValueError("levels stop before the top of the tree")
        while len(loaded) > 1 and not loaded[-1]:
            loaded.pop()
        tree._levels = loaded
        return tree

    # -- appending ----------------------------------------------------------

    def append(self, data: bytes) -> int:
        """Append a leaf with contents ``data``; return its index."""
        return self._push(_sha256(b"\x00" + data).digest())

    def append_leaf_hash(self, h: bytes) -> int:
        """Append a leaf by its leaf hash; return its index."""
        if len(h) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes")
        return self._push(h)

    def _push(self, h: bytes) -> int:
        levels = self._levels
        level = levels[0]
        index = len(level)
        level.append(h)
        # Each time the new node is a right child, a complete subtree closes:
        # hash it with its left sibling and carry it one level up.
        i = index
        k = 0
        sha = _sha256
        while i & 1:
            h = sha(b"\x01" + level[i - 1] + h).digest()
            k += 1
            if k == len(levels):
                levels.append([])
            level = levels[k]
            level.append(h)
            i >>= 1
        return index

    def extend_leaf_hashes(self, hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes at once (bulk hashing, level by level)."""
        new = list(hashes)
        if any(len(h) != HASH_SIZE for h in new):
            raise ValueError(f"every leaf hash must be {HASH_SIZE} bytes")
        levels = self._levels
        k = 0
        while new:
            level = levels[k]
            start = len(level)
            level.extend(new)
            # Pair from the first node whose complete parent does not exist yet.
            first = start - (start & 1)
            pairs = level[first:]
            new = _next_level(pairs)
            k += 1
            if new and k == len(levels):
                levels.append([])

    def extend(self, items: Iterable[bytes]) -> None:
        """Append many leaves by their contents."""
        sha = _sha256
        self.extend_leaf_hashes([sha(b"\x00" + d).digest() for d in items])

    def truncate(self, size: int) -> None:
        """Forget every leaf from ``size`` on (undo appends a failed commit made)."""
        if not 0 <= size <= self.size:
            raise ValueError(f"cannot truncate a tree of size {self.size} to {size}")
        for k, level in enumerate(self._levels):
            del level[size >> k :]
        while len(self._levels) > 1 and not self._levels[-1]:
            self._levels.pop()

    # -- reading ------------------------------------------------------------

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0])

    def __len__(self) -> int:
        return len(self._levels[0])

    @property
    def levels(self) -> tuple[Sequence[bytes], ...]:
        """Read-only view of the complete-subtree hashes, level by level (for persistence)."""
        return tuple(tuple(level) for level in self._levels)

    def completed_nodes(self, index: int) -> Iterator[tuple[int, int, bytes]]:
        """The ``(level, index, hash)`` nodes that appending leaf ``index`` created.

        Leaf level first.  A store persists exactly these rows after an append.
        """
        self._check_index(index, self.size)
        yield 0, index, self._levels[0][index]
        i = index
        k = 0
        while i & 1:
            i >>= 1
            k += 1
            yield k, i, self._levels[k][i]

    def leaf_hash_at(self, index: int) -> bytes:
        """The leaf hash of leaf ``index``."""
        self._check_index(index, self.size)
        return self._levels[0][index]

    def _size_arg(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is outside 0..{self.size}")
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is outside 0..{size - 1}")

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a subtree that is complete or ends on the right edge."""
        levels = self._levels
        n = end - start
        if n & (n - 1) == 0 and start & (n - 1) == 0:
            return levels[n.bit_length() - 1][start >> (n.bit_length() - 1)]
        # Right edge: the complete subtrees given by the bits of n, folded
        # right to left (RFC 9162 §2.1.1 splits at the largest power of two).
        parts: list[bytes] = []
        pos = start
        for k in range(n.bit_length() - 1, -1, -1):
            if n >> k & 1:
                parts.append(levels[k][pos >> k])
                pos += 1 << k
        r = parts[-1]
        sha = _sha256
        for p in reversed(parts[:-1]):
            r = sha(b"\x01" + p + r).digest()
        return r

    def root(self, size: int | None = None) -> bytes:
        """The Merkle Tree Hash at ``size`` leaves (default: now), RFC 9162 §2.1.1."""
        n = self._size_arg(size)
        if n == 0:
            return EMPTY_ROOT
        return self._subtree(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) per RFC 9162 §2.1.3.1, leaf side first."""
        n = self._size_arg(size)
        self._check_index(index, n)
        # Walk down from the root; the recursion appends each sibling *after*
        # the deeper path, so the collected list is reversed at the end.
        out: list[bytes] = []
        start, end, m = 0, n, index
        while end - start > 1:
            k = _split(end - start)
            if m < k:
                out.append(self._subtree(start + k, end))
                end = start + k
            else:
                out.append(self._subtree(start, start + k))
                start += k
                m -= k
        out.reverse()
        return out

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """PROOF(size1, D[0:size2]) per RFC 9162 §2.1.4.1 (empty when the sizes are equal)."""
        n = self._size_arg(size2)
        if not 0 < size1 <= n:
            raise ValueError(f"size1 {size1} must be in 1..{n}")
        out: list[bytes] = []
        start, end, m, whole = 0, n, size1, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                out.append(self._subtree(start + k, end))
                end = start + k
            else:
                out.append(self._subtree(start, start + k))
                start += k
                m -= k
                whole = False
        if not whole:
            # SUBPROOF(m, D[m], false) = {MTH(D[m])}: the old subtree itself.
            out.append(self._subtree(start, end))
        out.reverse()
        return out
