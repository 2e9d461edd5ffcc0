"""The CTC prefix beam search of :mod:`models.recognition.ctc`, compiled with numba.

The beam in Python cost ~80 ms a page on the 2-core machine (~15% of a page's CPU time)
and most of a GPU worker's time per page, all of it interpreter work per beam and
candidate. This is the same search over the same arithmetic in the same order (the LM's
Witten-Bell sums included), so it gives the same readings and confidences; the Python
search in :mod:`models.recognition.ctc` stays as the reference the tests hold it to.

The LM becomes arrays: each history (the last ``order - 1`` characters, start padding
included) is an integer in base ``len(symbols) + 1``, so dropping its first character is a
modulo; its row is found by binary search, and its counts are a sorted slice of (follower,
count) pairs.

It is compiled when the engine loads, in every process (about 7 s on the 2-core machine):
numba's on-disk cache stores pickles, and no cache of billstream's holds a pickle.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np
from numba import njit

from models.recognition.char_lm import END, START, CharNgramLM


@dataclass(frozen=True)
class LmTables:
    keys: np.ndarray  # history codes, ascending; a history's row is its index here
    totals: np.ndarray  # per row: sum of its follower counts
    distinct: np.ndarray  # per row: number of distinct followers
    starts: np.ndarray  # per row: where its followers begin in ``followers`` (and one past the last row)
    followers: np.ndarray  # follower codes, sorted within each row
    counts: np.ndarray
    char_codes: np.ndarray  # charset index → symbol code (0 for the blank)
    root: int  # the empty history's row, or -1
    base: int
    order: int
    alphabet_size: int
    start_history: int  # the history before the first character
    end_code: int


def build_tables(lm: CharNgramLM, chars: str) -> LmTables:
    """``chars``: the charset's characters, index 1 onwards (index 0 is the blank)."""
    symbols = sorted({START, END} | set(chars) | {c for history, followed in lm.counts.items()
                                                  for c in history + "".join(followed)})
    code = {symbol: i + 1 for i, symbol in enumerate(symbols)}
    base = len(symbols) + 1
    if base ** max(lm.order - 1, 1) >= 2 ** 62:
        raise ValueError(f"an order-{lm.order} LM over {len(symbols)} symbols does not fit 64-bit history codes")

    def encode(history: str) -> int:
        value = 0
        for symbol in history:
            value = value * base + code[symbol]
        return value

    keys: list[int] = []
    totals: list[int] = []
    distinct: list[int] = []
    starts = [0]
    followers: list[int] = []
    counts: list[int] = []
    for key, followed in sorted((encode(history), followed) for history, followed in lm.counts.items()):
        keys.append(key)
        pairs = sorted((code[c], n) for c, n in followed.items())
        totals.append(sum(n for _, n in pairs))
        distinct.append(len(pairs))
        followers.extend(c for c, _ in pairs)
        counts.extend(n for _, n in pairs)
        starts.append(len(followers))
    char_codes = np.zeros(len(chars) + 1, np.int64)
    char_codes[1:] = [code[c] for c in chars]
    return LmTables(np.array(keys, np.int64), np.array(totals, np.int64), np.array(distinct, np.int64), np.array(starts, np.int64),
                    np.array(followers, np.int64), np.array(counts, np.int64), char_codes,
                    0 if keys and keys[0] == 0 else -1, base, lm.order, lm.alphabet_size,
                    encode(lm.context("")), code[END])


_TABLES: weakref.WeakKeyDictionary[CharNgramLM, tuple[str, LmTables]] = weakref.WeakKeyDictionary()


def tables_for(lm: CharNgramLM, chars: str) -> LmTables:
    """Built once per LM and charset (a few hundred ms), then kept with the LM."""
    cached = _TABLES.get(lm)
    if cached is None or cached[0] != chars:
        cached = (chars, build_tables(lm, chars))
        _TABLES[lm] = cached
    return cached[1]


def prepare(lm: CharNgramLM, chars: str) -> None:
    """Build the tables and compile the search now, so that a worker's first bill does not
    wait for it."""
    probs = np.full((2, len(chars) + 1), 1.0 / (len(chars) + 1))
    beam_one(probs, 0, tables_for(lm, chars), 0.3, 0.5, 2, 1e-3, 0.999)


def beam_one(probs: np.ndarray, blank: int, tables: LmTables, alpha: float, beta: float, width: int,
             prune: float, blank_skip: float) -> tuple[list[int], float]:
    """One line's (steps, classes) probabilities → the chosen charset indices and confidence."""
    t = tables
    indices, confidence = _beam(np.ascontiguousarray(probs, np.float64), blank, t.keys, t.totals, t.distinct,
                                t.starts, t.followers, t.counts, t.char_codes, t.root, t.base, t.order,
                                t.alphabet_size, t.start_history, t.end_code, float(alpha), float(beta), int(width),
                                float(prune), float(blank_skip))  # one compiled signature, whatever the config's types
    return indices.tolist(), confidence


@njit
def _count(row: int, symbol: int, starts: np.ndarray, followers: np.ndarray, counts: np.ndarray) -> int:
    lo, hi = starts[row], starts[row + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if followers[mid] < symbol:
            lo = mid + 1
        else:
            hi = mid
    if lo < starts[row + 1] and followers[lo] == symbol:
        return counts[lo]
    return 0


@njit
def _log_prob(history: int, symbol: int, keys, totals, distinct, starts, followers, counts,  # type: ignore[no-untyped-def]
              root: int, base: int, order: int, alphabet_size: int) -> float:
    # the reference recursion (CharNgramLM._prob), unrolled from the empty history upwards
    if root >= 0:
        p = (_count(root, symbol, starts, followers, counts) + 1) / (totals[root] + alphabet_size + 1)
    else:
        p = 1 / (alphabet_size + 1)
    scale = 1
    for _ in range(order - 1):
        scale *= base
        key = history % scale
        row = int(np.searchsorted(keys, key))
        if row < len(keys) and keys[row] == key:
            d = distinct[row]
            p = (_count(row, symbol, starts, followers, counts) + d * p) / (totals[row] + d)
    return math.log(p)


@njit
def _same_prefix(prefixes_a: np.ndarray, a: int, prefixes_b: np.ndarray, b: int, length: int) -> bool:
    for k in range(length):
        if prefixes_a[a, k] != prefixes_b[b, k]:
            return False
    return True


@njit(nogil=True)  # other threads (a worker's fetch, a GPU's next batch) run meanwhile
def _beam(probs, blank, keys, totals, distinct, starts, followers, counts, char_codes, root, base,  # type: ignore[no-untyped-def]
          order, alphabet_size, start_history, end_code, alpha, beta, width, prune, blank_skip):
    steps, classes = probs.shape
    history_mod = 1
    for _ in range(order - 1):
        history_mod *= base
    cap_len = steps + 1
    # the beams: probability ending in blank / in a character, LM log-prob, LM history, prefix;
    # every buffer is allocated once per line and filled entry by entry
    pb = np.empty(width)
    pnb = np.empty(width)
    lm = np.empty(width)
    hist = np.empty(width, np.int64)
    length = np.empty(width, np.int64)
    prefix = np.empty((width, cap_len), np.int64)
    pb[0], pnb[0], lm[0], hist[0], length[0] = 1.0, 0.0, 0.0, start_history, 0
    n = 1
    cap = width * classes
    f_pb = np.empty(cap)
    f_pnb = np.empty(cap)
    f_lm = np.empty(cap)
    f_hist = np.empty(cap, np.int64)
    f_len = np.empty(cap, np.int64)
    f_last = np.empty(cap, np.int64)
    f_prefix = np.empty((cap, cap_len), np.int64)
    scores = np.empty(cap)
    candidates = np.empty(classes, np.int64)
    log_scale = 0.0
    for t in range(steps):
        p_blank = probs[t, blank]
        if p_blank >= blank_skip:
            for i in range(n):
                pb[i] = (pb[i] + pnb[i]) * p_blank
                pnb[i] = 0.0
        else:
            m = 0
            for c in range(classes):
                if c != blank and probs[t, c] > prune:
                    candidates[m] = c
                    m += 1
            f_n = 0
            for i in range(n):
                size = length[i]
                last = prefix[i, size - 1] if size > 0 else -1
                # following.setdefault(prefix): an earlier beam's extension may already be it
                entry = -1
                for j in range(f_n):
                    if f_len[j] == size and _same_prefix(f_prefix, j, prefix, i, size):
                        entry = j
                        break
                if entry < 0:
                    entry = f_n
                    f_n += 1
                    f_pb[entry], f_pnb[entry], f_lm[entry] = 0.0, 0.0, lm[i]
                    f_hist[entry], f_len[entry], f_last[entry] = hist[i], size, last
                    f_prefix[entry, :size] = prefix[i, :size]
                f_pb[entry] += (pb[i] + pnb[i]) * p_blank
                for k in range(m):
                    c = candidates[k]
                    p = probs[t, c]
                    if last == c:
                        f_pnb[entry] += pnb[i] * p  # the same character continued
                        extend_with = pb[i] * p  # a new character after a blank
                    else:
                        extend_with = (pb[i] + pnb[i]) * p
                    target = -1
                    for j in range(f_n):
                        if f_len[j] == size + 1 and f_last[j] == c and _same_prefix(f_prefix, j, prefix, i, size):
                            target = j
                            break
                    if target < 0:
                        target = f_n
                        f_n += 1
                        symbol = char_codes[c]
                        f_pb[target], f_pnb[target] = 0.0, 0.0
                        f_lm[target] = lm[i] + _log_prob(hist[i], symbol, keys, totals, distinct, starts, followers,
                                                         counts, root, base, order, alphabet_size)
                        f_hist[target] = (hist[i] * base + symbol) % history_mod if order > 1 else 0
                        f_len[target], f_last[target] = size + 1, c
                        f_prefix[target, :size] = prefix[i, :size]
                        f_prefix[target, size] = c
                    f_pnb[target] += extend_with
            for j in range(f_n):
                total = f_pb[j] + f_pnb[j]
                scores[j] = -((math.log(total) if total > 0 else -1e30) + alpha * f_lm[j] + beta * f_len[j])
            ranked = np.argsort(scores[:f_n], kind="mergesort")[:width]  # stable, as Python's sorted(reverse=True)
            n = len(ranked)
            for i in range(n):
                j = ranked[i]
                pb[i], pnb[i], lm[i], hist[i], length[i] = f_pb[j], f_pnb[j], f_lm[j], f_hist[j], f_len[j]
                prefix[i, :f_len[j]] = f_prefix[j, :f_len[j]]
        top = pb[0] + pnb[0]
        for i in range(1, n):
            if pb[i] + pnb[i] > top:
                top = pb[i] + pnb[i]
        if top <= 0:
            break
        log_scale += math.log(top)
        for i in range(n):
            pb[i] /= top
            pnb[i] /= top
    best, best_score = 0, 0.0
    for i in range(n):
        total = pb[i] + pnb[i]
        value = (math.log(total) if total > 0 else -1e30) + alpha * lm[i] + beta * length[i]
        value += alpha * _log_prob(hist[i], end_code, keys, totals, distinct, starts, followers, counts, root, base,
                                   order, alphabet_size)
        if i == 0 or value > best_score:
            best, best_score = i, value
    total = pb[best] + pnb[best]
    log_p = (math.log(total) if total > 0 else -1e30) + log_scale
    return prefix[best, :length[best]].copy(), math.exp(log_p / max(1, length[best]))
