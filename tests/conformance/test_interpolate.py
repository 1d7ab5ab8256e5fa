#!/usr/bin/python3
"""Conformance of F.interpolate through a real daemon over its socket, against torch 1.13.

Draws random cases (mode, rank, shape, size or scale_factor, align_corners,
recompute_scale_factor; size-1 inputs and outputs; the scales of the spec's checklist), runs each
through `vkresampled --backend B` with the Python client, and compares with
torch.nn.functional.interpolate under the contract of pytorch-semantics.md:
ATEN_CPU_CAPABILITY=default, inputs made with numpy, on every shape (C == 1 and all-spatial-1
tensors take torch's channels-last kernels; --cl-cases adds a set of them).  CPU backend: bit-exact.  Vulkan: nearest modes bit-exact, the linear
family within 1e-6 relative (max |got - ref| / max |ref|).  Also checks that every argument
combination torch refuses is refused with torch's message.

usage: test_interpolate.py DAEMON --backend cpu|vulkan [--cases N] [--cl-cases N] [--seed S] [--validation]
Prints TAP; the last comment lines summarise counts, bit-exact counts and the largest error per mode."""
import argparse
import json
import math
import os
import sys

os.environ['ATEN_CPU_CAPABILITY'] = 'default'   # the contract: torch's portable kernels
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import check_stopped, Tap, running_daemon, vkresample  # noqa: E402

SCALES = [1 / 3, 0.5, 0.7, 0.9, 1.0, 1.001, 1.05, 1.1, 4 / 3, 1.5, 5 / 3, 2.0, 2.09, 7 / 3, 2.5, 2.9, 3.0, 4.1]
MODE_RANKS = {'nearest': (3, 4, 5), 'nearest-exact': (3, 4, 5), 'linear': (3,), 'bilinear': (4,), 'trilinear': (5,),
              'bicubic': (4,), 'area': (3, 4, 5)}
INTERPOLATING = ('linear', 'bilinear', 'trilinear', 'bicubic')
# Vulkan tolerance per kind (relative), from the contract; the CPU backend must be bit-exact.
VULKAN_RTOL = {'nearest': 0.0, 'nearest-exact': 0.0, 'linear': 1e-6, 'bilinear': 1e-6, 'trilinear': 1e-6, 'area': 1e-6,
               'bicubic': 1e-5, 'bilinear-antialias': 1e-5, 'bicubic-antialias': 1e-5}
CL_MODES = ('nearest', 'nearest-exact', 'bilinear', 'trilinear')   # modes with a channels-last kernel in 1.13
ALL_KINDS = 'nearest,nearest-exact,linear,bilinear,trilinear,bicubic,area,bilinear-antialias,bicubic-antialias'


def kind_of(case):
    return case['mode'] + ('-antialias' if case.get('antialias') else '')


def random_case(rng, mode_weights):
    modes = list(mode_weights)
    p = np.array([mode_weights[m] for m in modes], float)
    mode = modes[rng.choice(len(modes), p=p / p.sum())]
    rank = int(rng.choice(MODE_RANKS[mode]))
    dim = rank - 2
    max_extent = {1: 40, 2: 24, 3: 9}[dim]
    spatial = [1 if rng.random() < 0.1 else int(rng.integers(1, max_extent + 1)) for _ in range(dim)]
    channels = 1 if rng.random() < 0.08 else int(rng.integers(2, 5))
    shape = [int(rng.integers(1, 3)), channels] + spatial
    case = {'mode': mode, 'shape': shape}
    if mode in INTERPOLATING:
        case['align_corners'] = [None, False, True][rng.integers(0, 3)]
    if mode in ('bilinear', 'bicubic') and rng.random() < 0.35:
        case['antialias'] = True
    if rng.random() < 0.5:
        low = 0 if mode == 'area' else 1       # area allows an empty output
        sizes = [1 if rng.random() < 0.1 else int(rng.integers(low, 3 * n + 2)) for n in spatial]
        case['size'] = sizes[0] if (dim == 1 or rng.random() < 0.3) and len(set(sizes)) == 1 else sizes
        if rng.random() < 0.2:
            case['recompute_scale_factor'] = False
    else:
        while True:
            scales = [float(rng.choice(SCALES)) for _ in range(dim)]
            if rng.random() < 0.4:
                scales = [scales[0]] * dim
            if all(math.floor(n * s) >= 1 for n, s in zip(spatial, scales)) or (mode == 'area' and rng.random() < 0.1):
                break
            spatial = [max(n, 3) for n in spatial]
            case['shape'] = shape[:2] + spatial
        case['scale_factor'] = scales[0] if len(set(scales)) == 1 and rng.random() < 0.5 else scales
        r = rng.random()
        if r < 0.3:
            case['recompute_scale_factor'] = True
        elif r < 0.45:
            case['recompute_scale_factor'] = False
    if rng.random() < 0.03:
        case['specials'] = True    # NaN and inf in the input
    return case


def checklist_cases():
    """Fixed cases from §17 of pytorch-semantics.md that random draws may miss."""
    out = []
    for n, s in [(30, 4.1), (90, 0.7), (27, 7 / 3), (5, 1.1), (10, 2.09), (5, 7 / 3), (7, 7 / 3), (11, 7 / 3)]:
        for mode in ('nearest', 'nearest-exact', 'linear'):
            for rc in (None, True):
                c = {'mode': mode, 'shape': [1, 2, n], 'scale_factor': s, 'recompute_scale_factor': rc}
                if mode == 'linear':
                    c['align_corners'] = False
                out.append(c)
    for n, o in [(1, 1), (1, 5), (5, 1), (2, 7), (7, 2), (3, 3)]:
        for ac in (False, True):
            out.append({'mode': 'bilinear', 'shape': [1, 3, n, n], 'size': o, 'align_corners': ac})
        out.append({'mode': 'nearest', 'shape': [2, 2, n, n, n], 'size': o})
    # align_corners=True ignores the scale: same output size, same map, different scales
    out.append({'mode': 'bilinear', 'shape': [1, 2, 6, 6], 'scale_factor': 2.09, 'align_corners': True})
    out.append({'mode': 'trilinear', 'shape': [1, 2, 3, 4, 5], 'scale_factor': [2.5, 1.0, 0.7], 'align_corners': True})
    # C == 1 and [N, C, 1, 1]: torch's channels-last kernels (nearest's o == 2n shortcut at s = 2.09)
    out.append({'mode': 'nearest', 'shape': [1, 1, 10, 10], 'scale_factor': 2.09})
    out.append({'mode': 'bilinear', 'shape': [1, 1, 9, 13], 'size': [17, 5], 'align_corners': False})
    out.append({'mode': 'bilinear', 'shape': [3, 4, 1, 1], 'size': [3, 5], 'align_corners': False})
    out.append({'mode': 'trilinear', 'shape': [2, 11, 1, 1, 1], 'size': [2, 3, 4], 'align_corners': True})
    # bicubic: negative source coordinates (no clamp), taps beyond both borders (n = 1, 2, 3), overshoot
    for n in (1, 2, 3, 4):
        for ac in (False, True):
            out.append({'mode': 'bicubic', 'shape': [1, 2, n, n + 1], 'size': [2 * n + 1, 3 * n], 'align_corners': ac})
    # antialias: down by 1/2, 1/3, 0.7, non-integer ratios, up, align_corners=True
    for s_ in (0.5, 1 / 3, 0.7, 0.37, 1.6):
        for mode in ('bilinear', 'bicubic'):
            out.append({'mode': mode, 'shape': [1, 3, 19, 23], 'scale_factor': s_, 'antialias': True, 'align_corners': False})
    out.append({'mode': 'bicubic', 'shape': [2, 2, 12, 9], 'size': [5, 9], 'antialias': True, 'align_corners': True})
    out.append({'mode': 'bilinear', 'shape': [1, 2, 9, 9], 'size': 9, 'antialias': True, 'specials': True})
    # area: overlapping windows (n % o != 0), o > n, o = 0
    for n, o in [(7, 3), (10, 4), (5, 8), (9, 9), (6, 0)]:
        out.append({'mode': 'area', 'shape': [1, 2, n], 'size': o})
        out.append({'mode': 'area', 'shape': [1, 2, n, n + 2], 'size': [o, o + 1]})
        out.append({'mode': 'area', 'shape': [1, 2, 3, n, 4], 'size': [2, o, 3]})
    out.append({'mode': 'area', 'shape': [1, 1, 10, 12], 'scale_factor': 0.5})
    # inf / NaN inputs: nearest copies them, linear turns inf into NaN (x*0 terms)
    out.append({'mode': 'bilinear', 'shape': [1, 2, 5, 5], 'size': 5, 'align_corners': False, 'specials': True})
    out.append({'mode': 'nearest', 'shape': [1, 2, 5, 5], 'size': 8, 'specials': True})
    out.append({'mode': 'linear', 'shape': [1, 2, 6], 'size': 11, 'align_corners': True, 'specials': True})
    out.append({'mode': 'bicubic', 'shape': [1, 2, 5, 5], 'size': 5, 'align_corners': False, 'specials': True})
    out.append({'mode': 'area', 'shape': [1, 2, 6, 6], 'size': 4, 'specials': True})
    return out


def make_input(case, rng):
    x = rng.standard_normal(case['shape']).astype(np.float32)
    if case.get('specials'):
        flat = x.reshape(-1)
        idx = rng.choice(flat.size, size=min(3, flat.size), replace=False)
        flat[idx[0]] = np.nan
        if len(idx) > 1:
            flat[idx[1]] = np.inf
        if len(idx) > 2:
            flat[idx[2]] = -np.inf
    return x


def torch_kwargs(case):
    keys = ('size', 'scale_factor', 'mode', 'align_corners', 'recompute_scale_factor', 'antialias')
    return {k: case[k] for k in keys if k in case}


def takes_channels_last_kernel(x):
    """Whether torch 1.13 runs its channels-last interpolate kernels (nearest, bilinear, trilinear)
    on this contiguous tensor: they are chosen by input.is_contiguous(channels_last[_3d]), true for
    C == 1 or all spatial extents 1 (axis_tables.h, vkr_spec_channels_last_kernel)."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.dim() == 4:
        return t.is_contiguous(memory_format=torch.channels_last)
    return t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d)


def torch_reference(case, x):
    return F.interpolate(torch.from_numpy(x), **torch_kwargs(case)).numpy()


def channels_last_case(rng):
    """A case torch 1.13 sends to its channels-last kernels (when its mode has one): C == 1 with
    random spatial extents, or [N, C, 1, 1] / [N, C, 1, 1, 1] with C up to 19 (8-float vector lanes
    and the scalar tail); sizes and scales that hit o == n and o == 2n with a scale other than 1
    and 2 (nearest's shortcuts).  Some 3-D (N, C, L) and mixed shapes as controls."""
    mode = str(rng.choice(['nearest', 'nearest-exact', 'bilinear', 'trilinear', 'bicubic', 'area', 'linear']))
    rank = {'bilinear': 4, 'bicubic': 4, 'trilinear': 5, 'linear': 3}.get(mode, int(rng.choice([3, 4, 5])))
    dim = rank - 2
    r = rng.random()
    if r < 0.6:
        channels, spatial = 1, [int(rng.integers(1, {1: 40, 2: 24, 3: 9}[dim] + 1)) for _ in range(dim)]
    elif r < 0.9:
        channels, spatial = int(rng.integers(1, 20)), [1] * dim
    else:
        channels, spatial = int(rng.integers(1, 12)), [int(rng.integers(1, 4)) for _ in range(dim)]
    case = {'mode': mode, 'shape': [int(rng.integers(1, 3)), channels] + spatial}
    if mode in INTERPOLATING:
        case['align_corners'] = bool(rng.random() < 0.5)
    if mode in ('bilinear', 'bicubic') and rng.random() < 0.2:
        case['antialias'] = True
    if rng.random() < 0.5:
        case['size'] = [int(rng.choice([n, 2 * n, rng.integers(1, 3 * n + 3)])) for n in spatial]
    else:
        picks = [1.0, 2.0, 1.05, 2.05, 2.09, 1.1, 0.5, 0.7, 1.5, 7 / 3, 3.0]
        case['scale_factor'] = [float(rng.choice(picks)) for _ in spatial]
        case['scale_factor'] = [s if math.floor(n * s) >= 1 else 1.0 for n, s in zip(spatial, case['scale_factor'])]
        if rng.random() < 0.3:
            case['recompute_scale_factor'] = True
    return case


def compare(got, ref):
    """(bit_exact, relative error): NaN must match NaN; relative = max|d| / max|ref| over finite."""
    if got.shape != ref.shape:
        return False, math.inf
    nan_ok = np.array_equal(np.isnan(got), np.isnan(ref))
    same_bits = (got.view(np.uint32) == ref.view(np.uint32)) | (np.isnan(got) & np.isnan(ref))
    if not nan_ok:
        return False, math.inf
    if same_bits.all():
        return True, 0.0
    finite = np.isfinite(ref)
    if not np.array_equal(finite, np.isfinite(got)) or not np.array_equal(got[~finite & ~np.isnan(ref)], ref[~finite & ~np.isnan(ref)]):
        return False, math.inf
    scale = float(np.max(np.abs(ref[finite]))) if finite.any() else 0.0
    diff = float(np.max(np.abs(got[finite].astype(np.float64) - ref[finite].astype(np.float64))))
    return False, diff / scale if scale > 0 else math.inf


# Argument combinations torch refuses; each must be refused by the daemon with torch's message.
REFUSED = [
    ({'shape': [1, 2, 5, 6]}, {'size': 3, 'scale_factor': 2.0}),
    ({'shape': [1, 2, 5, 6]}, {}),
    ({'shape': [1, 2, 5, 6]}, {'size': [3, 3, 3]}),   # lists: torch quotes the object as given
    ({'shape': [1, 2, 5, 6]}, {'scale_factor': [2.0, 2.0, 7 / 3]}),
    ({'shape': [1, 2, 5, 6]}, {'size': 3, 'mode': 'nearest', 'align_corners': True}),
    ({'shape': [1, 2, 5, 6]}, {'size': 3, 'mode': 'nearest-exact', 'align_corners': False}),
    ({'shape': [1, 2, 5]}, {'size': 3, 'mode': 'bilinear'}),
    ({'shape': [1, 2, 5, 6]}, {'size': 3, 'mode': 'linear'}),
    ({'shape': [1, 2, 5, 6]}, {'size': 3, 'mode': 'trilinear'}),
    ({'shape': [1, 2, 3, 4, 5]}, {'size': 3, 'mode': 'bilinear'}),
    ({'shape': [1, 2, 3, 4, 5]}, {'size': 3, 'mode': 'bicubic'}),
    ({'shape': [2, 5]}, {'size': 3}),
    ({'shape': [1, 1, 2, 2, 2, 2]}, {'size': 3}),
    ({'shape': [1, 2, 5, 6]}, {'size': 0}),
    ({'shape': [1, 2, 5, 6]}, {'size': -1, 'mode': 'bilinear'}),
    ({'shape': [1, 2, 5]}, {'size': -2, 'mode': 'linear'}),
    ({'shape': [1, 2, 3, 4, 5]}, {'size': (1, 0, 2), 'mode': 'trilinear'}),
    ({'shape': [1, 2, 5, 6]}, {'scale_factor': 0.1}),
    ({'shape': [1, 2, 5, 6]}, {'scale_factor': -2.0}),
    ({'shape': [1, 2, 5, 6]}, {'size': 3, 'recompute_scale_factor': True}),
    ({'shape': [1, 2, 5, 6]}, {'size': 3, 'mode': 'nearest', 'antialias': True}),
    ({'shape': [1, 2, 5]}, {'size': 3, 'mode': 'linear', 'antialias': True}),
    ({'shape': [1, 0, 5, 6]}, {'size': 3, 'mode': 'bilinear'}),
    ({'shape': [1, 2, 0, 6]}, {'size': 3}),
    ({'shape': [1, 2, 5, 6]}, {'size': 3, 'mode': 'area', 'align_corners': False}),
    ({'shape': [1, 2, 5, 6]}, {'size': 3, 'mode': 'area', 'antialias': True}),
    ({'shape': [1, 2, 5, 6]}, {'size': (-1, 3), 'mode': 'area'}),
    ({'shape': [1, 2, 5]}, {'size': -1, 'mode': 'area'}),
    ({'shape': [1, 2, 3, 4, 5]}, {'size': (-1, 2, 3), 'mode': 'area'}),
    ({'shape': [1, 2, 5, 6]}, {'scale_factor': -1.0, 'mode': 'area'}),
    ({'shape': [1, 2, 0, 6]}, {'size': 3, 'mode': 'area'}),
    ({'shape': [1, 2, 0]}, {'size': 2, 'mode': 'area'}),
    ({'shape': [1, 0, 3, 4, 5]}, {'size': 2, 'mode': 'area'}),
    ({'shape': [1, 2, 5, 6]}, {'size': 0, 'mode': 'bicubic'}),
    ({'shape': [1, 0, 5, 6]}, {'size': 3, 'mode': 'bicubic', 'antialias': True}),
    ({'shape': [1, 2, 5, 6]}, {'size': 0, 'mode': 'bilinear', 'antialias': True}),
    ({'shape': [1, 2, 3, 4, 5]}, {'size': 3, 'mode': 'trilinear', 'antialias': True}),
]


def check_refusals(tap, client, backend):
    for base, kw in REFUSED:
        x = np.zeros(base['shape'], np.float32)
        try:
            F.interpolate(torch.from_numpy(x), **kw)
            tap.check(False, 'torch accepted %s %s (test list is wrong)' % (base['shape'], kw))
            continue
        except Exception as e:   # noqa: BLE001 - torch raises ValueError/NotImplementedError/RuntimeError
            torch_msg = str(e)
        try:
            client.interpolate(x, backend=backend, **kw)
            tap.check(False, 'refusal %s %s: daemon accepted what torch refuses (%s)' % (base['shape'], kw, torch_msg))
        except vkresample.VkresampleError as e:
            tap.check(e.message == torch_msg, 'refusal %s %s: "%s" (torch: "%s")' % (base['shape'], kw, e.message, torch_msg))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--backend', choices=('cpu', 'vulkan'), required=True)
    ap.add_argument('--cases', type=int, default=400)
    ap.add_argument('--seed', type=int, default=20261121)
    ap.add_argument('--validation', action='store_true')
    ap.add_argument('--summary', help='write the per-mode summary as JSON here')
    ap.add_argument('--kinds', default=ALL_KINDS, help='comma-separated modes (and mode-antialias) to draw (default: all)')
    ap.add_argument('--cl-cases', type=int, default=0,
                    help='add N cases of the shapes torch sends to its channels-last kernels (C == 1, spatial all 1)')
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    kinds = args.kinds.split(',')
    weights = {m: w for m, w in {'nearest': 0.2, 'bilinear': 0.25, 'nearest-exact': 0.1, 'linear': 0.1, 'trilinear': 0.1,
                                 'bicubic': 0.15, 'area': 0.1}.items() if m in kinds or m + '-antialias' in kinds}
    cases = [c for c in checklist_cases() if kind_of(c) in kinds]
    target = len(cases) + args.cases
    while len(cases) < target:
        c = random_case(rng, weights)
        if kind_of(c) in kinds:
            cases.append(c)
    tap = Tap()
    cl_rng = np.random.default_rng(args.seed + 1)
    cl = [c for c in (channels_last_case(cl_rng) for _ in range(args.cl_cases)) if kind_of(c) in kinds]
    cl_kernel = sum(takes_channels_last_kernel(np.empty(c['shape'], np.float32)) and c['mode'] in CL_MODES
                    and not c.get('antialias') for c in cl)
    if cl:
        # the set must exercise the channels-last kernels, not just name them
        tap.check(cl_kernel >= len(cl) // 3, 'channels-last set: %d of %d cases take a torch channels-last kernel' %
                  (cl_kernel, len(cl)))
    for c in cl:
        c['set'] = 'cl'
    cases += cl
    stats = {}
    with running_daemon(args.daemon, backend=args.backend, validation=args.validation) as daemon:
        with daemon.client() as client:
            for i, case in enumerate(cases):
                x = make_input(case, rng)
                ref = torch_reference(case, x)
                kw = torch_kwargs(case)
                try:
                    got = client.interpolate(x, backend=args.backend, **kw)
                except vkresample.VkresampleError as e:
                    tap.check(False, 'case %d %s %s: daemon refused: %s' % (i, case['shape'], kw, e))
                    continue
                if not tap.check(client.last_backend == args.backend, 'case %d ran on %s' % (i, client.last_backend)):
                    continue
                exact, rel = compare(got, ref)
                mode = kind_of(case) + (' (cl set)' if case.get('set') == 'cl' else '')
                rtol = 0.0 if args.backend == 'cpu' else VULKAN_RTOL[kind_of(case)]
                ok = exact or rel <= rtol
                s = stats.setdefault(mode, {'cases': 0, 'bit_exact': 0, 'max_rel_err': 0.0, 'failed': 0})
                s['cases'] += 1
                s['bit_exact'] += int(exact)
                s['max_rel_err'] = max(s['max_rel_err'], rel)
                s['failed'] += int(not ok)
                tap.check(ok, 'case %d %s %s %s: %s' % (i, mode, case['shape'], kw,
                                                         'bit-exact' if exact else 'rel err %.3g (limit %g)' % (rel, rtol)))
            check_refusals(tap, client, args.backend)
        check_stopped(tap, daemon, 'daemon stopped cleanly%s' % (' with zero validation messages' if args.validation else ''))
    print('# backend %s: %d cases' % (args.backend, sum(s['cases'] for s in stats.values())))
    for mode, s in sorted(stats.items()):
        print('# %-14s cases %4d  bit-exact %4d  max rel err %.3g  failed %d' %
              (mode, s['cases'], s['bit_exact'], s['max_rel_err'], s['failed']))
    if args.summary:
        with open(args.summary, 'w') as f:
            json.dump({'backend': args.backend, 'modes': stats}, f, indent=1)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
