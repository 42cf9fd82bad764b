"""TensorFlow's `tf.random.stateless_truncated_normal` on the CPU, in numpy: the same bits.

repro.models.initial_weights draws every kernel from this function of (trial seed, tensor
index), so that trial i starts from the same point on every engine. The JAX engine runs where
TensorFlow may not be installed; this module gives it those initial values without it.

What TensorFlow does (tensorflow/core/kernels/stateless_random_ops*.cc, random_distributions.h):
the seed pair becomes a Philox-4x32-10 key and counter (`_key_counter`: the seed as a counter
under a fixed key, one Philox block, split into key and counter); output group g (4 values)
draws from its own Philox stream, skipped g x 256 blocks ahead; a group takes pairs of 32-bit
draws, turns each pair into two normals (Box-Muller in float32, with glibc's logf and sincosf)
and keeps those of magnitude below 2 until it holds 4. The float32 functions are glibc's own
(libm through ctypes), as TensorFlow's kernels call them, so the bits match.
"""
import ctypes
import ctypes.util
import functools
import math

import numpy as np

_W32A, _W32B = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_M4x32A, _M4x32B = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_GROUP = 4                 # values per output group (Philox's native count)
_SKIP_PER_GROUP = 256      # Philox blocks reserved per group (kReservedSamplesPerOutput x 4 / 4)
_TRUNCATE = np.float32(2.0)
_EPSILON = np.float32(1.0e-7)


def philox(counter, key):
    """Philox-4x32-10 blocks: `counter` (4, n) uint32, `key` (2, n) uint32 -> (4, n) uint32."""
    c = [np.asarray(x, np.uint32).copy() for x in counter]
    k = [np.asarray(x, np.uint32).copy() for x in key]
    for r in range(10):
        p0 = _M4x32A * c[0].astype(np.uint64)
        p1 = _M4x32B * c[2].astype(np.uint64)
        hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), p0.astype(np.uint32)
        hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), p1.astype(np.uint32)
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]
        if r < 9:
            k = [k[0] + _W32A, k[1] + _W32B]
    return np.stack(c)


def _key_counter(seed):
    """(key (2,), counter (4,)) uint32 of TensorFlow's stateless ops for the seed pair `seed`."""
    words = []
    for s in seed:
        s = int(s) & 0xFFFFFFFFFFFFFFFF  # int64 seen as its two 32-bit halves
        words += [s & 0xFFFFFFFF, s >> 32]
    mix = philox(np.array(words, np.uint32)[:, None],
                 np.array([0x3EC8F720, 0x02461E29], np.uint32)[:, None])[:, 0]
    return mix[:2].copy(), np.array([0, 0, mix[2], mix[3]], np.uint32)


def _skip(counter, blocks):
    """`counter` (4,) as a 128-bit number plus each of `blocks` (n,) uint64: (4, n) uint32."""
    value = sum(int(w) << (32 * i) for i, w in enumerate(counter))
    total = [value + int(b) for b in blocks]
    return np.array([[(t >> (32 * i)) & 0xFFFFFFFF for t in total] for i in range(4)], np.uint32)


def _uniform(bits):
    """TensorFlow's Uint32ToFloat: 23 random bits as a float32 in [0, 1)."""
    return ((bits & np.uint32(0x7FFFFF)) | np.uint32(127 << 23)).view(np.float32) - np.float32(1.0)


@functools.cache
def _libm():
    lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    lib.logf.restype, lib.logf.argtypes = ctypes.c_float, [ctypes.c_float]
    lib.sincosf.restype = None
    lib.sincosf.argtypes = [ctypes.c_float, ctypes.POINTER(ctypes.c_float),
                            ctypes.POINTER(ctypes.c_float)]
    return lib


def _box_muller(x0, x1):
    """TensorFlow's BoxMullerFloat for the 32-bit draws `x0`, `x1` (n,): two float32 normals each."""
    lib = _libm()
    u1 = np.maximum(_uniform(x0), _EPSILON)
    v1 = (2.0 * math.pi * _uniform(x1).astype(np.float64)).astype(np.float32)  # 2.0f * M_PI * u
    log = np.array([lib.logf(float(u)) for u in u1], np.float32)
    u2 = np.sqrt(np.float32(-2.0) * log)
    s, c = ctypes.c_float(), ctypes.c_float()
    sin, cos = np.empty(len(v1), np.float32), np.empty(len(v1), np.float32)
    for j, v in enumerate(v1):
        lib.sincosf(float(v), ctypes.byref(s), ctypes.byref(c))
        sin[j], cos[j] = s.value, c.value
    return sin * u2, cos * u2


def _groups(counter, key, groups, blocks):
    """The 32-bit draws of output groups `groups`: `blocks` Philox blocks each, (n, 4 x blocks)."""
    out = []
    for b in range(blocks):
        ctr = _skip(counter, groups.astype(np.uint64) * _SKIP_PER_GROUP + b)
        out.append(philox(ctr, np.repeat(key[:, None], len(groups), axis=1)).T)
    return np.concatenate(out, axis=1)


def stateless_truncated_normal(shape, seed):
    """float32 array of `shape`: `tf.random.stateless_truncated_normal(shape, seed=seed)` (mean 0,
    std 1, CPU), bit for bit, for a seed pair of two int64s."""
    key, counter = _key_counter(seed)
    size = math.prod(shape)
    n_groups = -(-size // _GROUP)
    out = np.zeros((n_groups, _GROUP), np.float32)
    todo, blocks = np.arange(n_groups), 2
    while len(todo):
        draws = _groups(counter, key, todo, blocks)  # each pair of draws gives two normals
        f0, f1 = _box_muller(draws[:, 0::2].ravel(), draws[:, 1::2].ravel())
        pairs = draws.shape[1] // 2
        normals = np.stack([f0.reshape(-1, pairs), f1.reshape(-1, pairs)], axis=2).reshape(len(todo), -1)
        kept = np.abs(normals) < _TRUNCATE
        short = kept.sum(axis=1) < _GROUP
        for row in np.flatnonzero(~short):
            out[todo[row]] = normals[row][kept[row]][:_GROUP]
        todo, blocks = todo[short], blocks * 2  # rare: a group that rejected many draws
    return out.ravel()[:size].reshape(shape)
