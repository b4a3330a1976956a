"""A prefix tree of cached keys/values shared across requests (SGLang's radix cache; vLLM's
automatic prefix caching and its hit/miss counters).

Each edge holds a run of tokens and their keys/values for every layer. A prompt walks down from
the root; the longest matching path is its reusable prefix (its keys/values are the same for any
request, since a prefix's states depend only on the prefix). An edge matched only in part is
split in two at the mismatch, so the match always ends on a node and its states are whole
segments, shared by reference (a KVCache built from them copies nothing). After prefill, the
prompt's unmatched remainder is added as a new leaf.

Nodes on a path in use are locked; when the stored tokens exceed the budget, the least recently
used unlocked leaves are evicted (a parent becomes a leaf in turn). Counters of hits and misses
(in tokens and lookups) are always kept.

    tree = PrefixTree(budget_tokens=65536); engine = Engine(model, tree)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from torch import Tensor

from imo.engine.cache import KVCache, Segment
from imo.errors import ConfigError


@dataclass(eq=False)
class Node:
    tokens: tuple[int, ...]  # the edge from the parent
    seg: Segment | None  # keys/values of those tokens, (n_layer, 1, nh, len, hs) each
    parent: Node | None
    children: dict[int, Node] = field(default_factory=dict)  # by first token
    locks: int = 0
    last_used: int = 0


@dataclass
class TreeStats:
    lookups: int = 0
    lookup_hits: int = 0  # lookups that reused at least one token
    hit_tokens: int = 0  # prompt tokens served from the tree
    miss_tokens: int = 0  # prompt tokens that had to be computed
    inserted_tokens: int = 0
    evicted_tokens: int = 0
    splits: int = 0

    def to_dict(self) -> dict[str, int | float]:
        d: dict[str, int | float] = dict(self.__dict__)
        asked = self.hit_tokens + self.miss_tokens
        d["hit_rate"] = self.hit_tokens / asked if asked else 0.0
        return d


class PrefixTree:
    def __init__(self, budget_tokens: int = 1 << 16) -> None:
        if budget_tokens < 1:
            raise ConfigError(f"the prefix tree budget must be >= 1 token, got {budget_tokens}")
        self.budget = budget_tokens
        self.root = Node((), None, None)
        self.tokens = 0  # stored, over all nodes
        self.stats = TreeStats()
        self._clock = itertools.count(1)

    # --- walking ---------------------------------------------------------------------------------

    def _split(self, node: Node, at: int) -> Node:
        """Cut node's edge after `at` tokens; returns the new upper node (the matched part)."""
        upper = Node(node.tokens[:at], Segment(node.seg.k[:, :, :, :at], node.seg.v[:, :, :, :at]),
                     node.parent, locks=node.locks, last_used=node.last_used)
        node.parent.children[node.tokens[0]] = upper
        node.tokens = node.tokens[at:]
        node.seg = Segment(node.seg.k[:, :, :, at:], node.seg.v[:, :, :, at:])
        node.parent = upper
        upper.children[node.tokens[0]] = node
        self.stats.splits += 1
        return upper

    def _walk(self, ids: list[int]) -> tuple[list[Node], int]:
        """The nodes along the longest stored prefix of ids (splitting a partly matched edge)."""
        path, node, i = [], self.root, 0
        while i < len(ids) and ids[i] in node.children:
            child = node.children[ids[i]]
            n = 0
            while n < len(child.tokens) and i + n < len(ids) and child.tokens[n] == ids[i + n]:
                n += 1
            if n < len(child.tokens):
                child = self._split(child, n)
            path.append(child)
            i += n
            node = child
        return path, i

    def match(self, ids: list[int], capacity: int = 64) -> tuple[int, KVCache | None]:
        """(tokens matched, a one-row cache holding their states, or None). The path is locked
        until `release(cache)`; the cache shares the tree's tensors."""
        self.stats.lookups += 1
        path, n = self._walk(ids)
        now = next(self._clock)
        for node in path:
            node.last_used = now
        if not path:
            return 0, None
        self._lock(path[-1], +1)
        self.stats.lookup_hits += 1
        cache = KVCache.from_tensors(path[0].seg.k, path[0].seg.v, capacity=capacity)
        cache.segments = tuple(p.seg for p in path)
        cache.prefix_len = n
        cache.tree_node = path[-1]  # type: ignore[attr-defined]
        return n, cache

    @staticmethod
    def _lock(node: Node | None, delta: int) -> None:
        """Lock (or unlock) a node and all its ancestors. The deepest node stands for the path:
        a later split inserts a new upper node (with the same lock count) between it and the root,
        and walking the parents at release reaches that node too (SGLang's radix cache does so)."""
        while node is not None and node.parent is not None:
            node.locks += delta
            node = node.parent

    def release(self, cache: KVCache) -> None:
        self._lock(getattr(cache, "tree_node", None), -1)
        cache.tree_node = None  # type: ignore[attr-defined]

    def record(self, hit: int, miss: int) -> None:
        self.stats.hit_tokens += hit
        self.stats.miss_tokens += miss

    def insert(self, ids: list[int], cache: KVCache) -> None:
        """Store the states of ids (cache: one row holding exactly them) not yet in the tree."""
        if cache.batch != 1 or cache.length != len(ids):
            raise ValueError("insert needs a one-row cache holding exactly the given tokens")
        path, n = self._walk(ids)
        now = next(self._clock)
        for node in path:
            node.last_used = now
        if n == len(ids):
            return
        if n >= cache.prefix_len and cache.tail_len:  # the new part lies in the tail: copy just it
            a = n - cache.prefix_len
            k, v = cache._k[:, :, :, a : cache.tail_len], cache._v[:, :, :, a : cache.tail_len]
        else:
            k, v = cache.materialize()  # (n_layer, 1, nh, len(ids), hs)
            k, v = k[:, :, :, n:], v[:, :, :, n:]
        parent = path[-1] if path else self.root
        leaf = Node(tuple(ids[n:]), Segment(_own(k), _own(v)), parent, last_used=now)
        parent.children[ids[n]] = leaf
        self.tokens += len(leaf.tokens)
        self.stats.inserted_tokens += len(leaf.tokens)
        self.evict()

    # --- memory ----------------------------------------------------------------------------------

    def leaves(self) -> list[Node]:
        out, stack = [], list(self.root.children.values())
        while stack:
            node = stack.pop()
            if node.children:
                stack.extend(node.children.values())
            else:
                out.append(node)
        return out

    def evict(self, budget: int | None = None) -> int:
        """Drop least recently used unlocked leaves until at most `budget` tokens are stored."""
        budget = self.budget if budget is None else budget
        freed = 0
        while self.tokens > budget:
            free = [n for n in self.leaves() if n.locks == 0]
            if not free:
                break  # everything left is in use; stay over budget until it is released
            victim = min(free, key=lambda n: n.last_used)
            del victim.parent.children[victim.tokens[0]]
            self.tokens -= len(victim.tokens)
            freed += len(victim.tokens)
        self.stats.evicted_tokens += freed
        return freed

    @property
    def nbytes(self) -> int:
        total, stack = 0, list(self.root.children.values())
        while stack:
            node = stack.pop()
            total += node.seg.nbytes
            stack.extend(node.children.values())
        return total


def _own(t: Tensor) -> Tensor:
    """A compact copy, so a stored leaf does not keep a whole prefill buffer alive."""
    return t.clone()
