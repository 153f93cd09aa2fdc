"""Merkle tree math of RFC 9162 §2.1 (Certificate Transparency v2; the same tree as RFC 6962):
tree heads, inclusion and consistency proofs, and their verifiers.

Standard library only, with no I/O: the store reads the hashes this module asks for, and an
offline ``verify.py`` copies this file as it is.

A tree of ``n`` leaves is addressed by **complete subtrees**: node ``(level, index)`` is the
hash of leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf hashes.
Every hash a proof needs is either such a node or a *ragged right edge* (leaves
``[start, size)``), folded from the complete subtrees that cover it (:func:`range_nodes`).
So a proof is planned here as ranges (:func:`inclusion_ranges`, :func:`consistency_ranges`),
the nodes those ranges need are read in one go, and the ranges are hashed from them
(:func:`range_hash`): O(log n) nodes whatever the size of the log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string."""

Node = tuple[int, int]
"""``(level, index)`` of a complete subtree."""
Range = tuple[int, int]
"""Leaves ``[start, end)``."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


# --- planning: which ranges a proof is made of -------------------------------------------

def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose hashes make the audit path ``PATH(index, D[size])``, leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    ranges: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    return ranges[::-1]


def consistency_ranges(old: int, new: int) -> list[Range]:
    """The ranges whose hashes make ``PROOF(old, D[new])`` (RFC 9162 §2.1.4.1), in order;
    empty when ``old`` is 0 or equals ``new``."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from {old} leaves to {new}")
    if old in (0, new):
        return []
    ranges: list[Range] = []
    lo, hi, m, whole = 0, new, old, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:  # SUBPROOF(m, D[m], false) = [MTH(D[m])]
        ranges.append((lo, hi))
    return ranges[::-1]


def range_nodes(start: int, end: int) -> list[Node]:
    """The complete subtrees covering leaves ``[start, end)``, left to right, each as large as
    its alignment allows (for the ranges of a proof: decreasing sizes)."""
    if not 0 <= start < end:
        raise ValueError(f"empty or negative range [{start}, {end})")
    nodes: list[Node] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while start + (1 << level) > end:
            level -= 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def range_hash(start: int, end: int, nodes: Mapping[Node, bytes]) -> bytes:
    """MTH of leaves ``[start, end)`` from their complete subtrees (a ragged right edge is
    folded from the right, as the tree hashes it)."""
    parts = [nodes[n] for n in range_nodes(start, end)]
    acc = parts[-1]
    for part in reversed(parts[:-1]):
        acc = node_hash(part, acc)
    return acc


def nodes_for(ranges: Iterable[Range]) -> set[Node]:
    """Every complete subtree the hashes of ``ranges`` need."""
    return {n for lo, hi in ranges for n in range_nodes(lo, hi)}


def root_nodes(size: int) -> list[Node]:
    """The complete subtrees the tree head of ``size`` leaves is folded from."""
    return range_nodes(0, size) if size else []


def root_hash(size: int, nodes: Mapping[Node, bytes]) -> bytes:
    """MTH(D[size]) from :func:`root_nodes`."""
    return range_hash(0, size, nodes) if size else EMPTY_ROOT


def completed_by(index: int) -> list[Node]:
    """The complete subtrees above level 0 that appending leaf ``index`` completes, lowest
    first: each is hashed from its two children, the right one just made."""
    done: list[Node] = []
    level, n = 1, index + 1
    while n % (1 << level) == 0:
        done.append((level, (n >> level) - 1))
        level += 1
    return done


def left_siblings(index: int) -> list[Node]:
    """The stored nodes appending leaf ``index`` needs: the left children of
    :func:`completed_by`."""
    return [(level - 1, 2 * i) for level, i in completed_by(index)]


def appended(index: int, leaf: bytes, lefts: Mapping[Node, bytes]) -> list[tuple[Node, bytes]]:
    """The nodes to store when leaf ``index`` (a leaf hash) is appended: the leaf itself and
    every subtree it completes, given :func:`left_siblings`."""
    made = [((0, index), leaf)]
    right = leaf
    for level, i in completed_by(index):
        right = node_hash(lefts[(level - 1, 2 * i)], right)
        made.append(((level, i), right))
    return made


# --- building proofs from any hash source --------------------------------------------------

def inclusion_path(index: int, size: int, hash_of: Callable[[int, int], bytes]) -> list[bytes]:
    return [hash_of(lo, hi) for lo, hi in inclusion_ranges(index, size)]


def consistency_path(old: int, new: int, hash_of: Callable[[int, int], bytes]) -> list[bytes]:
    return [hash_of(lo, hi) for lo, hi in consistency_ranges(old, new)]


def tree_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes, in memory (for small trees and checks)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:  # pairwise, an odd last node moving up unchanged: the same tree
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# --- verifying (RFC 9162 §2.1.3.2 and §2.1.4.2, step by step) ------------------------------

def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root an audit path leads to, or None if the path cannot be one for ``index`` in
    ``size`` leaves (too long, too short, or out of range)."""
    if index >= size or index < 0:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes],
                     root: bytes) -> bool:
    return root_from_inclusion(index, size, leaf, path) == root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes,
                       path: Sequence[bytes]) -> bool:
    """True if the tree of ``new`` leaves with ``new_root`` extends the one of ``old`` leaves
    with ``old_root``. Equal sizes need equal roots and an empty path; an empty old tree is
    consistent with everything (and has an empty path)."""
    if not 0 <= old <= new:
        return False
    if old == new:
        return not path and old_root == new_root
    if old == 0:
        return not path
    if not path:
        return False
    steps = list(path)
    if old & (old - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        steps.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = steps[0]
    for c in steps[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


# --- the shapes dealdesk hands out (``dealdesk audit prove``, evidence bundles) ------------

def verify_row_inclusion(row: Mapping[str, Any], proof: Mapping[str, Any],
                         head: Mapping[str, Any]) -> bool:
    """True if audit ``row`` (``content``, ``prev_hash``, ``row_hash``, as the log's rows are
    exported) is leaf ``proof["leaf_index"]`` of the tree ``head`` signed (``tree_size``,
    ``root_hash`` in hex). ``proof`` is ``store.transparency.InclusionProof.as_json()``: its
    ``leaf`` text is hashed as it is (no re-serialising, so no canonical-JSON rules to copy),
    after checking that it says exactly what the row says."""
    try:
        leaf_text: str = proof["leaf"]
        stated = json.loads(leaf_text)
        if stated != {"content": row["content"], "prev_hash": row["prev_hash"],
                      "row_hash": row["row_hash"]}:
            return False
        size = int(head["tree_size"])
        if int(proof["tree_size"]) != size:
            return False
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        root = bytes.fromhex(head["root_hash"])
        return verify_inclusion(int(proof["leaf_index"]), size,
                                leaf_hash(leaf_text.encode()), path, root)
    except (KeyError, TypeError, ValueError):
        return False
