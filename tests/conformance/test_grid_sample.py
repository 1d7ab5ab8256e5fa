#!/usr/bin/python3
"""Conformance of grid_sample, affine_grid and the fused affine_sample through a real daemon,
against torch 1.13 (ATEN_CPU_CAPABILITY=default, inputs made with numpy).

Cases: every mode x padding x align_corners x rank; grids spilling outside [-1, 1] by several
periods, exactly on +-1 and 0, one ULP either side of +-1, half-pixel ties, +-1e30.  CPU backend:
bit-exact.  Vulkan: nearest exact, bilinear and affine_grid within 1e-6, bicubic within 1e-5
relative (max |got - ref| / max |ref|).  Where vkresample's documented rules differ from 1.13:
  - 3-D nearest rounds half to even: the reference is a numpy model of the 3-D coordinate rule with
    np.rint, itself checked against torch at every point that is not an exact tie.
Non-finite grid values (NaN, +-inf, finite ones up to 3.4e38) are compared with torch like any other:
torch's own test_grid_sample_nan_inf case, the 3-D bilinear inf case (pytorch issue 24823), random
grids laced with them over every mode x padding x align_corners x rank, and affine_sample with
NaN / inf in theta.
affine_sample must equal grid_sample(input, affine_grid(theta)) within 1e-5 (bit-exact on CPU).

usage: test_grid_sample.py DAEMON --backend cpu|vulkan [--cases N] [--affine-cases N] [--validation]"""
import argparse
import itertools
import math
import os
import sys
import warnings

os.environ['ATEN_CPU_CAPABILITY'] = 'default'
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import check_stopped, Tap, running_daemon, vkresample  # noqa: E402

warnings.filterwarnings('ignore', message='Since version 1.3.0, affine_grid behavior')   # unit-size grids, by design
f32 = np.float32
MODES = ('bilinear', 'nearest', 'bicubic')
PADDINGS = ('zeros', 'border', 'reflection')
VULKAN_RTOL = {'bilinear': 1e-6, 'nearest': 0.0, 'bicubic': 1e-5, 'affine_grid': 1e-6, 'affine_sample': 1e-5}


# ---------------------------------------------------------------- grids
def special_values(size, ac):
    """Grid values that land on borders, half-pixel ties and outside [-1, 1]."""
    one = f32(1)
    vals = [-1, 1, 0, np.nextafter(one, f32(2)), np.nextafter(one, f32(0)), -np.nextafter(one, f32(2)),
            -np.nextafter(one, f32(0)), 1e30, -1e30, 3.7, -5.3, 9.1]
    for k in range(-1, size + 1):                  # coordinates k + 0.5 (ties) and k (centres)
        for c in (k + 0.5, float(k)):
            g = (c / (size - 1) * 2 - 1) if ac and size > 1 else ((2 * c + 1) / size - 1)
            vals.append(g)
    return np.array(vals, f32)


def make_grid(rng, shape, spatial_sizes, ac):
    """shape = (N, *out, rank); each component mixes uniform, far and special values."""
    g = rng.uniform(-1.6, 1.6, shape).astype(f32)
    far = rng.random(shape[:-1]) < 0.15
    g[far] = rng.uniform(-7, 7, (far.sum(), shape[-1])).astype(f32)
    for k, size in enumerate(spatial_sizes):       # component k indexes the k-th axis from the inside
        sp = special_values(size, ac)
        pick = rng.random(shape[:-1]) < 0.3
        g[..., k][pick] = rng.choice(sp, pick.sum())
    return g


def random_case(rng):
    rank = 4 if rng.random() < 0.6 else 5
    mode = MODES[rng.integers(0, 3 if rank == 4 else 2)]
    pad = PADDINGS[rng.integers(0, 3)]
    ac = [None, False, True][rng.integers(0, 3)]
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    if rank == 4:
        spatial = [int(rng.integers(1, 12)), int(rng.integers(1, 12))]
        out = [int(rng.integers(1, 8)), int(rng.integers(1, 8))]
    else:
        spatial = [int(rng.integers(1, 6)) for _ in range(3)]
        out = [int(rng.integers(1, 5)) for _ in range(3)]
    return {'mode': mode, 'padding_mode': pad, 'align_corners': ac, 'shape': [n, c] + spatial, 'out': out}


# ---------------------------------------------------------------- 3-D nearest model (half to even)
def _unnorm(g, size, ac):
    """The 3-D scalar kernel's ((g + 1) * size - 1) / 2 (its (g + 1) * size overflows first)."""
    g = g.astype(f32)
    with np.errstate(over='ignore', invalid='ignore'):
        if ac:
            return ((g + f32(1)) * f32(f32(size - 1) * f32(0.5))).astype(f32)
        return ((((g + f32(1)) * f32(size)).astype(f32) - f32(1)).astype(f32) * f32(0.5)).astype(f32)


def _reflect3(c, size, ac):
    tl, th = (0, 2 * (size - 1)) if ac else (-1, 2 * size - 1)
    if tl == th:
        return np.zeros_like(c)
    mn, span = f32(tl * 0.5), f32((th - tl) * 0.5)
    a = np.abs((c - mn).astype(f32))
    with np.errstate(invalid='ignore', divide='ignore'):
        extra = np.fmod(a, span).astype(f32)
        q = np.floor((a / span).astype(f32))
    small = np.isfinite(q) & (q < 2 ** 24)           # torch's int cast: INT_MIN (even) beyond int range
    odd = small & (np.where(small, q, 0).astype(np.int64) % 2 == 1)
    return np.where(odd, ((span - extra).astype(f32) + mn).astype(f32), (extra + mn).astype(f32)).astype(f32)


def _pad3(c, size, pad, ac):
    # std::min(size - 1, std::max(v, 0)): NaN gives size - 1
    clip = lambda v: np.where(np.isnan(v), f32(size - 1), np.clip(v, f32(0), f32(size - 1))).astype(f32)  # noqa: E731
    if pad == 'border':
        return clip(c)
    if pad == 'reflection':
        return clip(_reflect3(c, size, ac))
    return c


def nearest3d_model(x, grid, pad, ac):
    """Returns (output, tie mask): 3-D nearest with half-to-even rounding."""
    N, C, D, H, W = x.shape
    coords, ties = [], np.zeros(grid.shape[:-1], bool)
    for k, size in enumerate((W, H, D)):
        c = _pad3(_unnorm(grid[..., k], size, ac), size, pad, ac)
        fin = np.isfinite(c)
        ties |= fin & (np.abs(np.where(fin, c - np.floor(np.where(fin, c, 0)), 0)) == f32(0.5))
        with np.errstate(invalid='ignore'):
            r = np.rint(c)
        ok = np.isfinite(r) & (np.abs(r) < 2 ** 31)
        coords.append(np.where(ok, r, -1).astype(np.int64))
    ix, iy, iz = coords
    inside = (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H) & (iz >= 0) & (iz < D)
    out = np.zeros((N, C) + grid.shape[1:-1], f32)
    for n in range(N):
        v = x[n][:, np.clip(iz[n], 0, D - 1), np.clip(iy[n], 0, H - 1), np.clip(ix[n], 0, W - 1)]
        out[n] = np.where(inside[n][None], v, f32(0))
    return out, ties


# ---------------------------------------------------------------- comparison
def compare(got, ref):
    """(bit_exact, relative error); NaN must match NaN."""
    if got.shape != ref.shape:
        return False, math.inf
    if not np.array_equal(np.isnan(got), np.isnan(ref)):
        return False, math.inf
    same = (got.view(np.uint32) == ref.view(np.uint32)) | (np.isnan(got) & np.isnan(ref))
    if same.all():
        return True, 0.0
    fin = np.isfinite(ref)
    if not np.array_equal(fin, np.isfinite(got)):
        return False, math.inf
    scale = float(np.max(np.abs(ref[fin]))) if fin.any() else 0.0
    diff = float(np.max(np.abs(got[fin].astype(np.float64) - ref[fin])))
    return False, diff / scale if scale > 0 else math.inf


class Stats:
    def __init__(self):
        self.rows = {}

    def add(self, key, exact, rel, ok):
        s = self.rows.setdefault(key, [0, 0, 0.0, 0])
        s[0] += 1
        s[1] += int(exact)
        s[2] = max(s[2], rel)
        s[3] += int(not ok)

    def print(self, backend):
        print('# backend %s' % backend)
        for k in sorted(self.rows):
            c, e, r, f = self.rows[k]
            print('# %-32s cases %4d  bit-exact %4d  max rel err %.3g  failed %d' % (k, c, e, r, f))


def torch_grid_sample(x, grid, case):
    ac = case['align_corners']
    return F.grid_sample(torch.from_numpy(x), torch.from_numpy(grid), mode=case['mode'], padding_mode=case['padding_mode'],
                         align_corners=bool(ac)).numpy()


def run_grid_cases(tap, client, backend, rng, n_cases, stats):
    for i in range(n_cases):
        case = random_case(rng)
        x = rng.standard_normal(case['shape']).astype(f32)
        rank = len(case['shape'])
        spatial_inner_first = list(reversed(case['shape'][2:]))
        grid = make_grid(rng, [case['shape'][0]] + case['out'] + [rank - 2], spatial_inner_first, bool(case['align_corners']))
        ref = torch_grid_sample(x, grid, case)
        label = 'case %d %s/%s/ac=%s %s grid %s' % (i, case['mode'], case['padding_mode'], case['align_corners'], case['shape'],
                                                   list(grid.shape))
        if rank == 5 and case['mode'] == 'nearest':
            model, ties = nearest3d_model(x, grid, case['padding_mode'], bool(case['align_corners']))
            agree = (model == ref) | ties[:, None]
            if not tap.check(bool(agree.all()), label + ': half-even model equals torch away from ties'):
                continue
            ref = model
        got = client.grid_sample(x, grid, mode=case['mode'], padding_mode=case['padding_mode'],
                                 align_corners=case['align_corners'], backend=backend)
        exact, rel = compare(got, ref)
        tol = 0.0 if backend == 'cpu' else VULKAN_RTOL[case['mode']]
        ok = exact or rel <= tol
        stats.add('%dD %s %s' % (rank - 2, case['mode'], case['padding_mode']), exact, rel, ok)
        tap.check(ok and client.last_backend == backend,
                  label + ': ' + ('bit-exact' if exact else 'rel err %.3g (limit %g)' % (rel, tol)) + ' on ' + str(client.last_backend))


NONFINITE = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 3e9, -3e9, 1e38, -1e38, 3.4e38, -3.4e38], f32)


def reference(x, grid, mode, pad, ac):
    """torch, or for 3-D nearest the half-even model (checked against torch away from ties)."""
    ref = torch_grid_sample(x, grid, {'mode': mode, 'padding_mode': pad, 'align_corners': ac})
    if x.ndim == 5 and mode == 'nearest':
        model, ties = nearest3d_model(x, grid, pad, ac)
        return model, bool(((model.view(np.uint32) == ref.view(np.uint32)) | ties[:, None]).all())
    return ref, True


def run_nonfinite(tap, client, backend, rng, stats):
    """Non-finite grid values: what torch 1.13 gives (NaN, 0 or a pixel, by kernel and padding)."""
    tol = lambda mode: 0.0 if backend == 'cpu' else VULKAN_RTOL[mode]  # noqa: E731
    # torch's test_grid_sample_nan_inf: zeros input, nearest, every padding, expects zeros
    nan_inf = np.array([[[[np.nan, 0], [0, np.inf]]]], f32)
    for pad in ('reflection', 'border', 'zeros'):
        got = client.grid_sample(np.zeros([1, 1, 3, 3], f32), nan_inf, mode='nearest', padding_mode=pad, align_corners=False,
                                 backend=backend)
        tap.check(got.shape == (1, 1, 1, 2) and bool((got.view(np.uint32) == 0).all()),
                  "torch's test_grid_sample_nan_inf, padding %s: [[nan, 0], [0, inf]] gives [+0, +0] (got %s)" % (pad, got.ravel()))
    # the same grid on a random input, against torch
    x = rng.standard_normal([1, 2, 3, 3]).astype(f32)
    for pad in PADDINGS:
        ref, _ = reference(x, nan_inf, 'nearest', pad, False)
        exact, _ = compare(client.grid_sample(x, nan_inf, mode='nearest', padding_mode=pad, align_corners=False, backend=backend), ref)
        tap.check(exact, 'test_grid_sample_nan_inf grid on a random input, padding %s: bit-exact with torch' % pad)
    # 3-D bilinear with inf components (pytorch issue 24823): 0, nothing read
    x = rng.standard_normal([1, 2, 3, 3, 3]).astype(f32)
    inf3 = np.array([[[[[np.inf, 0, 0], [0, -np.inf, 0], [0, 0, np.inf], [np.inf, np.inf, np.inf]]]]], f32)
    for ac in (False, True):
        ref = torch_grid_sample(x, inf3, {'mode': 'bilinear', 'padding_mode': 'zeros', 'align_corners': ac})
        got = client.grid_sample(x, inf3, mode='bilinear', padding_mode='zeros', align_corners=ac, backend=backend)
        tap.check(bool((ref == 0).all()) and bool((got.view(np.uint32) == 0).all()),
                  '3-D bilinear zeros, inf grid components (issue 24823), ac=%s: +0 as torch (got %s)' % (ac, got.ravel()))
    # random grids laced with non-finite and huge values, every mode x padding x align_corners x rank
    for rank in (4, 5):
        for mode in MODES if rank == 4 else MODES[:2]:
            for pad in PADDINGS:
                for ac, _ in itertools.product((False, True), range(4)):
                    shape = [1, 3] + ([int(rng.integers(1, 7)), int(rng.integers(1, 8))] if rank == 4 else
                                      [int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 6))])
                    x = rng.standard_normal(shape).astype(f32)
                    gshape = [1, 6, 7, 2] if rank == 4 else [1, 3, 4, 4, 3]
                    grid = rng.uniform(-1.2, 1.2, gshape).astype(f32)
                    lace = rng.random(gshape) < 0.35
                    grid[lace] = rng.choice(NONFINITE, lace.sum())
                    flat = grid.reshape(-1, rank - 2)
                    flat[0, :] = np.nan                      # every component at once
                    flat[1, 0], flat[2, -1], flat[3, 0] = np.nan, np.inf, -np.inf
                    ref, model_ok = reference(x, grid, mode, pad, ac)
                    label = 'non-finite grid %dD %s %s ac=%s %s' % (rank - 2, mode, pad, ac, shape)
                    if not tap.check(model_ok, label + ': half-even model equals torch away from ties'):
                        continue
                    got = client.grid_sample(x, grid, mode=mode, padding_mode=pad, align_corners=ac, backend=backend)
                    exact, rel = compare(got, ref)
                    ok = exact or rel <= tol(mode)
                    stats.add('%dD %s %s non-finite' % (rank - 2, mode, pad), exact, rel, ok)
                    tap.check(ok, label + ': as torch (%s)' % ('bit-exact' if exact else 'rel %.3g' % rel))
    # affine_sample with NaN / inf in theta: the same rules, through affine_grid's arithmetic
    for i, (three, mode, pad) in enumerate([(t, m, p) for t in (False, True) for m in (MODES if not t else MODES[:2]) for p in PADDINGS]):
        n = 2
        shape = [n, 2] + ([3, 4, 5] if three else [5, 6])
        out = [2, 3, 4] if three else [4, 5]
        theta = (np.eye(3, 4) if three else np.eye(2, 3)) + 0.3 * rng.standard_normal((n, 3, 4) if three else (n, 2, 3))
        theta = theta.astype(f32)
        theta.reshape(n, -1)[0, rng.integers(0, theta[0].size)] = [np.nan, np.inf, -np.inf][i % 3]
        theta.reshape(n, -1)[1, rng.integers(0, theta[0].size)] = [np.inf, -np.inf, np.nan][i % 3]
        ac = bool(i % 2)
        x = rng.standard_normal(shape).astype(f32)
        grid = F.affine_grid(torch.from_numpy(theta), shape[:2] + out, align_corners=ac).numpy()
        ref, model_ok = reference(x, grid, mode, pad, ac)
        label = 'affine_sample, theta with NaN/inf, %dD %s %s ac=%s' % (3 if three else 2, mode, pad, ac)
        if not tap.check(model_ok, label + ': half-even model equals torch away from ties'):
            continue
        got = client.affine_sample(x, theta, out, mode=mode, padding_mode=pad, align_corners=ac, backend=backend)
        exact, rel = compare(got, ref)
        ok = exact or rel <= (0.0 if backend == 'cpu' else VULKAN_RTOL['affine_sample'])
        stats.add('affine_sample non-finite theta', exact, rel, ok)
        tap.check(ok, label + ': as grid_sample(affine_grid(theta)) in torch (%s)' % ('bit-exact' if exact else 'rel %.3g' % rel))


def run_wide_channels(tap, client, backend, rng, stats):
    """2-D bilinear and bicubic with C >= 8 (the CPU backend's channel-blocked path: 8 channels a
    vector, ragged last block, ragged point tiles), grids laced with special and non-finite values,
    every padding x align_corners; and affine_sample into the same path."""
    tol = lambda mode: 0.0 if backend == 'cpu' else VULKAN_RTOL[mode]  # noqa: E731
    for mode in ('bilinear', 'bicubic'):
        for pad in PADDINGS:
            for ac in (None, False, True):
                c = int(rng.choice([8, 9, 13, 16, 20]))
                shape = [int(rng.integers(1, 3)), c, int(rng.integers(1, 14)), int(rng.integers(1, 14))]
                out = [int(rng.integers(1, 40)), int(rng.integers(1, 40))]
                x = rng.standard_normal(shape).astype(f32)
                grid = make_grid(rng, [shape[0]] + out + [2], [shape[3], shape[2]], bool(ac))
                lace = rng.random(grid.shape) < 0.05
                grid[lace] = rng.choice(NONFINITE, lace.sum())
                ref = torch_grid_sample(x, grid, {'mode': mode, 'padding_mode': pad, 'align_corners': ac})
                got = client.grid_sample(x, grid, mode=mode, padding_mode=pad, align_corners=ac, backend=backend)
                exact, rel = compare(got, ref)
                ok = exact or rel <= tol(mode)
                stats.add('2D %s %s C>=8' % (mode, pad), exact, rel, ok)
                tap.check(ok, 'C=%d %s/%s/ac=%s %s grid %s: %s' % (c, mode, pad, ac, shape, list(grid.shape),
                                                                   'bit-exact' if exact else 'rel err %.3g' % rel))
    for i in range(6):
        mode, pad, ac = ('bilinear', 'bicubic')[i % 2], PADDINGS[i % 3], bool(i // 3)
        shape = [2, int(rng.choice([8, 11, 24])), int(rng.integers(2, 20)), int(rng.integers(2, 20))]
        out = [int(rng.integers(1, 30)), int(rng.integers(1, 30))]
        theta = (np.eye(2, 3) + 0.3 * rng.standard_normal((2, 2, 3))).astype(f32)
        x = rng.standard_normal(shape).astype(f32)
        grid = F.affine_grid(torch.from_numpy(theta), shape[:2] + out, align_corners=ac)
        ref = F.grid_sample(torch.from_numpy(x), grid, mode=mode, padding_mode=pad, align_corners=ac).numpy()
        got = client.affine_sample(x, theta, out, mode=mode, padding_mode=pad, align_corners=ac, backend=backend)
        exact, rel = compare(got, ref)
        tol_as = 0.0 if backend == 'cpu' else VULKAN_RTOL['affine_sample']
        tap.check(exact or rel <= tol_as, 'affine_sample C=%d %s/%s/ac=%s %s -> %s: %s' % (
            shape[1], mode, pad, ac, shape, out, 'bit-exact' if exact else 'rel err %.3g' % rel))


def run_affine(tap, client, backend, rng, n_cases, stats):
    sizes = [1, 2, 3, 7, 15, 16, 17, 33]
    for i in range(n_cases):
        three = rng.random() < 0.35
        n = int(rng.integers(1, 4))
        if three:
            size = [n, 2] + [int(rng.choice(sizes[:6])) for _ in range(3)]
            theta = rng.standard_normal((n, 3, 4)).astype(f32)
        else:
            size = [n, 2] + [int(rng.choice(sizes)) for _ in range(2)]
            theta = rng.standard_normal((n, 2, 3)).astype(f32)
        if rng.random() < 0.1:
            theta[:] = np.eye(theta.shape[1], theta.shape[2], dtype=f32)
        ac = [None, False, True][rng.integers(0, 3)]
        ref = F.affine_grid(torch.from_numpy(theta), size, align_corners=bool(ac)).numpy()
        got = client.affine_grid(theta, size, align_corners=ac, backend=backend)
        exact, rel = compare(got, ref)
        tol = 0.0 if backend == 'cpu' else VULKAN_RTOL['affine_grid']
        stats.add('affine_grid %dD' % (3 if three else 2), exact, rel, exact or rel <= tol)
        tap.check(exact or rel <= tol, 'affine_grid %d size %s ac=%s: %s' % (i, size, ac, 'bit-exact' if exact else 'rel %.3g' % rel))
    # linspace's vector-block boundary and the DEFAULT-capability value at n=7 (pytorch-semantics.md sec. 9)
    got = client.affine_grid(np.array([[[1, 0, 0], [0, 1, 0]]], f32), [1, 1, 1, 7], align_corners=True, backend=backend)
    tap.check(got[0, 0, 3, 0] == 0.0, 'identity affine_grid, n=7, align_corners: the centre is exactly 0 (got %r)' % float(got[0, 0, 3, 0]))


def run_affine_sample(tap, client, backend, rng, n_cases, stats):
    for i in range(n_cases):
        three = rng.random() < 0.3
        mode = MODES[rng.integers(0, 2 if three else 3)]
        pad = PADDINGS[rng.integers(0, 3)]
        ac = bool(rng.integers(0, 2))
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        if three:
            shape = [n, c] + [int(rng.integers(1, 7)) for _ in range(3)]
            out = [int(rng.integers(1, 6)) for _ in range(3)]
            theta = (np.eye(3, 4) + 0.3 * rng.standard_normal((n, 3, 4))).astype(f32)
        else:
            shape = [n, c] + [int(rng.integers(1, 20)) for _ in range(2)]
            out = [int(rng.integers(1, 20)) for _ in range(2)]
            theta = (np.eye(2, 3) + 0.3 * rng.standard_normal((n, 2, 3))).astype(f32)
        x = rng.standard_normal(shape).astype(f32)
        grid = F.affine_grid(torch.from_numpy(theta), shape[:2] + out, align_corners=ac)
        if three and mode == 'nearest':
            ref, _ = nearest3d_model(x, grid.numpy(), pad, ac)
        else:
            ref = F.grid_sample(torch.from_numpy(x), grid, mode=mode, padding_mode=pad, align_corners=ac).numpy()
        got = client.affine_sample(x, theta, out, mode=mode, padding_mode=pad, align_corners=ac, backend=backend)
        exact, rel = compare(got, ref)
        tol = 0.0 if backend == 'cpu' else VULKAN_RTOL['affine_sample']
        stats.add('affine_sample %dD %s' % (3 if three else 2, mode), exact, rel, exact or rel <= tol)
        tap.check(exact or rel <= tol, 'affine_sample %d %s %s/%s ac=%s -> %s: %s' % (i, shape, mode, pad, ac, out,
                                                                                      'bit-exact' if exact else 'rel %.3g' % rel))


# Shapes and arguments torch refuses; the daemon must refuse them with torch's message.
def refusals():
    x4, x5, x3 = [1, 2, 5, 6], [1, 2, 3, 4, 5], [1, 2, 5]
    gs = [
        (x4, [2, 3, 4, 2], {}), (x4, [1, 3, 2], {}), (x3, [1, 3, 2], {}), (x5, [1, 3, 4, 2], {}),
        (x4, [1, 2, 3, 4, 2], {}), ([1, 2, 5, 0], [1, 3, 4, 2], {}), (x5, [1, 2, 3, 4, 3], {'mode': 'bicubic'}),
        (x4, [1, 3, 4, 2], {'mode': 'linear'}), (x4, [1, 3, 4, 2], {'padding_mode': 'constant'}),
    ]
    ag = [([1, 3, 3], [1, 1, 4, 5], False), ([1, 3, 4], [1, 1, 4, 5], False), ([1, 2, 3], [1, 1, 3, 4, 5], False),
          ([1, 2, 3], [1, 4, 5], False), ([1, 2, 3], [1, 1, 0, 5], False), ([1, 2, 3], [1, -1, 4, 5], False),
          ([1, 2, 3], [2, 1, 4, 5], False), ([2, 3, 4], [1, 1, 2, 4, 5], False), ([1, 2, 3], [-1, 1, 1, 3], True)]
    return gs, ag


def check_refusals(tap, client, backend):
    gs, ag = refusals()
    for xs, gsh, kw in gs:
        x, g = np.zeros(xs, f32), np.zeros(gsh, f32)
        try:
            F.grid_sample(torch.from_numpy(x), torch.from_numpy(g), align_corners=False, **kw)
            tap.check(False, 'torch accepted grid_sample %s %s %s' % (xs, gsh, kw))
            continue
        except Exception as e:  # noqa: BLE001
            want = str(e)
        try:
            client.grid_sample(x, g, align_corners=False, backend=backend, **kw)
            tap.check(False, 'grid_sample %s %s %s accepted; torch says %s' % (xs, gsh, kw, want))
        except vkresample.VkresampleError as e:
            tap.check(e.message == want, 'grid_sample %s %s %s refused: "%s" (torch: "%s")' % (xs, gsh, kw, e.message, want))
    for ts, size, ac in ag:
        th = np.zeros(ts, f32)
        try:
            F.affine_grid(torch.from_numpy(th), size, align_corners=ac)
            tap.check(False, 'torch accepted affine_grid %s %s' % (ts, size))
            continue
        except Exception as e:  # noqa: BLE001
            want = str(e)
        try:
            client.affine_grid(th, size, align_corners=ac, backend=backend)
            tap.check(False, 'affine_grid %s %s accepted; torch says %s' % (ts, size, want))
        except vkresample.VkresampleError as e:
            tap.check(e.message == want, 'affine_grid %s %s refused: "%s" (torch: "%s")' % (ts, size, e.message, want))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--backend', choices=('cpu', 'vulkan'), required=True)
    ap.add_argument('--cases', type=int, default=2000)
    ap.add_argument('--affine-cases', type=int, default=300)
    ap.add_argument('--seed', type=int, default=4)
    ap.add_argument('--validation', action='store_true')
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    tap, stats = Tap(), Stats()
    with running_daemon(args.daemon, backend=args.backend, validation=args.validation) as daemon:
        with daemon.client() as client:
            run_grid_cases(tap, client, args.backend, rng, args.cases, stats)
            run_nonfinite(tap, client, args.backend, rng, stats)
            run_wide_channels(tap, client, args.backend, rng, stats)
            run_affine(tap, client, args.backend, rng, args.affine_cases, stats)
            run_affine_sample(tap, client, args.backend, rng, max(60, args.affine_cases // 3), stats)
            check_refusals(tap, client, args.backend)
        check_stopped(tap, daemon, 'daemon stopped cleanly%s' % (' with zero validation messages' if args.validation else ''))
    stats.print(args.backend)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
