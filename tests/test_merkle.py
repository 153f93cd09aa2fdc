"""The tree math (store/merkle.py) against RFC 6962's published test vectors and against the
RFC's recursive definitions written out literally, for every size up to 70 and every index.

Vectors: the eight leaf inputs, every tree head from 0 to 8 leaves, the complete-subtree
hashes, and the inclusion and consistency proofs of the transparency-dev/merkle Go
repository (``testonly/constants.go``, ``proof/verify_test.go``), which carries over those
of certificate-transparency's C++ and Go code.
"""

from __future__ import annotations

import hashlib

import pytest

from store import merkle

LEAF_INPUTS = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
"""ROOTS[n]: the tree head of the first n leaf inputs."""
NODES = {(0, i): bytes.fromhex(h) for i, h in enumerate((
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"))} | {
    (1, i): bytes.fromhex(h) for i, h in enumerate((
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"))} | {
    (2, 0): bytes.fromhex("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    (2, 1): bytes.fromhex("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    (3, 0): bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")}
INCLUSION = [  # (0-based leaf index, tree size, audit path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [  # (old size, new size, proof)
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
LEAVES = [merkle.leaf_hash(d) for d in LEAF_INPUTS]


# --- the RFC's definitions, literally (the reference the iterative code is checked against)

def mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = merkle._split(n)
    return merkle.node_hash(mth(d[:k]), mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = merkle._split(n)
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = merkle._split(n)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def all_nodes(leaves: list[bytes]) -> dict[merkle.Node, bytes]:
    nodes: dict[merkle.Node, bytes] = {}
    level = 0
    while (1 << level) <= len(leaves):
        for i in range(len(leaves) >> level):
            nodes[(level, i)] = mth(leaves[i << level:(i + 1) << level])
        level += 1
    return nodes


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"row {i}".encode()) for i in range(n)]


# --- vectors -------------------------------------------------------------------------------

def test_tree_heads_of_the_rfc_vectors() -> None:
    assert ROOTS[0] == merkle.EMPTY_ROOT
    for n in range(9):
        assert merkle.tree_hash(LEAVES[:n]) == ROOTS[n] == mth(LEAVES[:n])
        assert merkle.root_hash(n, NODES) == ROOTS[n]


def test_complete_subtrees_of_the_rfc_vectors() -> None:
    assert all_nodes(LEAVES) == NODES
    for i in range(8):  # appending leaf i completes exactly the nodes the vectors list
        for level, index in merkle.completed_by(i):
            left, right = NODES[(level - 1, 2 * index)], NODES[(level - 1, 2 * index + 1)]
            assert merkle.node_hash(left, right) == NODES[(level, index)]
    assert {n for i in range(8) for n in merkle.completed_by(i)} == {
        n for n in NODES if n[0] > 0}


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_of_the_rfc_vectors(index: int, size: int, proof: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    built = merkle.inclusion_path(
        index, size, lambda lo, hi: merkle.range_hash(lo, hi, NODES))
    assert built == expected
    assert merkle.verify_inclusion(index, size, LEAVES[index], expected, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_of_the_rfc_vectors(old: int, new: int, proof: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    built = merkle.consistency_path(old, new, lambda lo, hi: merkle.range_hash(lo, hi, NODES))
    assert built == expected
    assert merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], expected)


def test_corrupted_proofs_fail() -> None:
    """As the Go vectors' probes: every wrong index, size, root, extra or missing or flipped
    hash is refused."""
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    for index, size, hexes in INCLUSION:
        proof, root, leaf = [bytes.fromhex(h) for h in hexes], ROOTS[size], LEAVES[index]
        bad = [(index - 1, size, leaf, proof, root), (index + 1, size, leaf, proof, root),
               (index ^ 2, size, leaf, proof, root), (index, size * 2, leaf, proof, root),
               (index, size // 2, leaf, proof, root), (index, size, b"WrongLeaf", proof, root),
               (index, size, leaf, proof, ROOTS[0]), (index, size, leaf, proof, some),
               (index, size, leaf, [*proof, b""], root), (index, size, leaf, [*proof, root], root),
               (index, size, leaf, [root, *proof], root), (index, size, leaf, proof[:-1], root),
               (index, size, leaf, [proof[0], some, *proof[1:]], root)]
        for i in range(len(proof)):
            flipped = list(proof)
            flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
            bad.append((index, size, leaf, flipped, root))
        for args in bad:
            assert not merkle.verify_inclusion(*args), args
    for old, new, hexes in CONSISTENCY:
        proof, r1, r2 = [bytes.fromhex(h) for h in hexes], ROOTS[old], ROOTS[new]
        bad_c = [(old - 1, new, r1, r2, proof), (old + 1, new, r1, r2, proof),
                 (old ^ 2, new, r1, r2, proof), (old, new * 2, r1, r2, proof),
                 (old, new // 2, r1, r2, proof), (old, new, b"WrongRoot", r2, proof),
                 (old, new, r1, b"WrongRoot", proof), (old, new, r2, r1, proof),
                 (old, new, r1, r2, []), (old, new, r1, r2, [*proof, b""]),
                 (old, new, r1, r2, [*proof, r1]), (old, new, r1, r2, [r2, *proof]),
                 (old, new, r1, r2, [proof[0], *proof]), (old, new, r1, r2, proof[:-1])]
        for i in range(len(proof)):
            flipped = list(proof)
            flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
            bad_c.append((old, new, r1, r2, flipped))
        for c in bad_c:
            assert not merkle.verify_consistency(*c), c


def test_edge_sizes() -> None:
    h = merkle.leaf_hash(b"data")
    assert merkle.verify_inclusion(0, 1, h, [], h)
    assert not merkle.verify_inclusion(0, 0, h, [], h)
    assert not merkle.verify_inclusion(1, 1, h, [], h)
    assert merkle.verify_consistency(0, 0, ROOTS[0], ROOTS[0], [])
    assert merkle.verify_consistency(0, 5, ROOTS[0], ROOTS[5], [])
    assert merkle.verify_consistency(3, 3, ROOTS[3], ROOTS[3], [])
    assert not merkle.verify_consistency(3, 3, ROOTS[3], ROOTS[4], [])
    assert not merkle.verify_consistency(3, 3, ROOTS[3], ROOTS[3], [ROOTS[0]])
    assert not merkle.verify_consistency(4, 3, ROOTS[4], ROOTS[3], [])


# --- every size and index against the literal definitions ---------------------------------

def test_every_proof_up_to_70_leaves_matches_the_definition() -> None:
    leaves = _leaves(70)
    nodes = all_nodes(leaves)

    def hash_of(lo: int, hi: int) -> bytes:
        return merkle.range_hash(lo, hi, nodes)

    roots = [mth(leaves[:n]) for n in range(71)]
    for size in range(1, 71):
        assert merkle.root_hash(size, nodes) == roots[size] == merkle.tree_hash(leaves[:size])
        for index in range(size):
            proof = merkle.inclusion_path(index, size, hash_of)
            assert proof == path(index, leaves[:size]), (index, size)
            assert merkle.verify_inclusion(index, size, leaves[index], proof, roots[size])
            assert not merkle.verify_inclusion(index, size, leaves[index - 1] if index else
                                               leaves[1 % size] + b"x", proof, roots[size])
        for old in range(1, size + 1):
            proof = merkle.consistency_path(old, size, hash_of)
            assert proof == (subproof(old, leaves[:size], True) if old < size else [])
            assert merkle.verify_consistency(old, size, roots[old], roots[size], proof)
            if old < size:  # a different past is refused
                forked = merkle.tree_hash([merkle.leaf_hash(b"forged"), *leaves[1:old]])
                assert not merkle.verify_consistency(old, size, forked, roots[size], proof)


def test_proofs_read_few_nodes() -> None:
    """A proof in a tree of a million leaves needs O(log n) stored nodes."""
    size = 1_000_000
    for index in (0, 1, 499_999, 999_998, 999_999):
        needed = merkle.nodes_for(merkle.inclusion_ranges(index, size))
        assert len(needed) <= 2 * size.bit_length()
    assert len(merkle.nodes_for(merkle.consistency_ranges(333_333, size))) <= 2 * 20
