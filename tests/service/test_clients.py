#!/usr/bin/python3
"""The two scripting clients agree: one conformance subset (interpolate in every mode, grid_sample,
affine_grid, affine_sample, and arguments torch refuses) runs through the vkresample CLI (.npy
files in and out) and through the Python module (client/python/vkresample.py, raw protocol),
and each case must pass the same way in both: bit-exact against torch on the CPU backend, or
refused with torch's own message (on stderr with exit status 1 for the CLI; in
VkresampleError.message for the module).

usage: test_clients.py DAEMON CLI     (TAP output)"""
import argparse
import os
import subprocess
import sys
import tempfile
import warnings

os.environ['ATEN_CPU_CAPABILITY'] = 'default'   # the contract: torch's portable kernels
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import Tap, running_daemon, vkresample  # noqa: E402

warnings.filterwarnings('ignore')


def cases(rng):
    """(name, op, arrays, kwargs): kwargs as the Python module takes them."""
    x4 = rng.standard_normal((2, 3, 7, 9)).astype(np.float32)
    x3 = rng.standard_normal((2, 3, 11)).astype(np.float32)
    x5 = rng.standard_normal((1, 2, 4, 5, 6)).astype(np.float32)
    grid = rng.uniform(-1.1, 1.1, (2, 5, 4, 2)).astype(np.float32)
    theta = rng.uniform(-1, 1, (2, 2, 3)).astype(np.float32)
    theta3 = rng.uniform(-1, 1, (1, 3, 4)).astype(np.float32)
    out = []
    for mode in ('nearest', 'nearest-exact', 'bilinear', 'bicubic', 'area'):
        out.append(('interpolate %s size (5, 13)' % mode, 'interpolate', [x4], {'size': [5, 13], 'mode': mode}))
    out.append(('interpolate bilinear x1.7 align_corners', 'interpolate', [x4], {'scale_factor': 1.7, 'mode': 'bilinear', 'align_corners': True}))
    out.append(('interpolate bilinear antialias x0.4', 'interpolate', [x4], {'scale_factor': 0.4, 'mode': 'bilinear', 'antialias': True}))
    out.append(('interpolate linear 1-D', 'interpolate', [x3], {'size': 17, 'mode': 'linear'}))
    out.append(('interpolate trilinear', 'interpolate', [x5], {'size': [3, 7, 5], 'mode': 'trilinear'}))
    out.append(('interpolate refused: nearest with align_corners', 'interpolate', [x4], {'size': 3, 'mode': 'nearest', 'align_corners': True}))
    out.append(('interpolate refused: bilinear on 3-D', 'interpolate', [x3], {'size': 4, 'mode': 'bilinear'}))
    out.append(('interpolate refused: size and scale_factor', 'interpolate', [x4], {'size': 4, 'scale_factor': 2.0, 'mode': 'nearest'}))
    for mode, pad, ac in (('bilinear', 'zeros', False), ('bicubic', 'border', True), ('nearest', 'reflection', False)):
        out.append(('grid_sample %s/%s align_corners=%s' % (mode, pad, ac), 'grid_sample', [x4, grid],
                    {'mode': mode, 'padding_mode': pad, 'align_corners': ac}))
    out.append(('grid_sample refused: batch sizes differ', 'grid_sample', [x5, grid], {}))
    out.append(('affine_grid 2-D', 'affine_grid', [theta], {'size': [2, 3, 6, 5], 'align_corners': False}))
    out.append(('affine_grid 3-D align_corners', 'affine_grid', [theta3], {'size': [1, 2, 3, 4, 5], 'align_corners': True}))
    out.append(('affine_grid refused: zero extent', 'affine_grid', [theta], {'size': [2, 3, 0, 5], 'align_corners': False}))
    out.append(('affine_grid refused: theta batch', 'affine_grid', [theta3], {'size': [2, 2, 3, 4, 5], 'align_corners': False}))
    out.append(('affine_sample bilinear', 'affine_sample', [x4, theta], {'size': [6, 8]}))
    out.append(('affine_sample bicubic border', 'affine_sample', [x4, theta], {'size': [5, 5], 'mode': 'bicubic', 'padding_mode': 'border',
                                                                                'align_corners': True}))
    return out


def torch_ref(op, arrays, kw):
    """torch's output, or ('refused', message)."""
    t = [torch.from_numpy(a) for a in arrays]
    try:
        if op == 'interpolate':
            return F.interpolate(t[0], **kw).numpy()
        if op == 'grid_sample':
            return F.grid_sample(t[0], t[1], **kw).numpy()
        if op == 'affine_grid':
            return F.affine_grid(t[0], kw['size'], align_corners=kw['align_corners']).numpy()
        ac = kw.get('align_corners', False)
        g = F.affine_grid(t[1], list(arrays[0].shape[:2]) + list(kw['size']), align_corners=ac)
        return F.grid_sample(t[0], g, mode=kw.get('mode', 'bilinear'), padding_mode=kw.get('padding_mode', 'zeros'),
                             align_corners=ac).numpy()
    except Exception as e:  # noqa: BLE001
        return ('refused', str(e))


def through_module(client, op, arrays, kw):
    try:
        return getattr(client, op)(*arrays, **dict(kw, backend='cpu'))
    except vkresample.VkresampleError as e:
        return ('refused', e.message)


def cli_args(op, kw):
    args = []
    for key, value in kw.items():
        if key == 'align_corners':
            args.append('--align-corners' if value else '--no-align-corners')
        elif key == 'antialias':
            args += ['--antialias'] if value else []
        elif isinstance(value, (list, tuple)):
            args += ['--' + key.replace('_', '-'), ','.join(str(int(v)) for v in value)]
        else:
            args += ['--' + key.replace('_', '-'), str(value)]
    if op == 'interpolate' and 'mode' not in kw:
        args += ['--mode', 'nearest']
    return args + ['--backend', 'cpu']


def through_cli(cli, socket, tmp, op, arrays, kw):
    files = []
    for k, a in enumerate(arrays):
        path = os.path.join(tmp, 'in%d.npy' % k)
        np.save(path, a)
        files.append(path)
    out = os.path.join(tmp, 'out.npy')
    if os.path.exists(out):
        os.unlink(out)
    r = subprocess.run([cli, '--socket', socket, op.replace('_', '-'), *files, out, *cli_args(op, kw)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode == 0 and os.path.exists(out):
        return np.load(out)
    if r.returncode == 1 and not os.path.exists(out):
        return ('refused', r.stderr.strip())
    return ('failed', 'exit %d: %s' % (r.returncode, ' | '.join(r.stderr.strip().splitlines())))


def verdict(got, ref):
    """'ok' or what is wrong: the same array bit for bit, or a refusal carrying torch's message."""
    if isinstance(ref, tuple):
        if isinstance(got, tuple) and got[0] == 'refused' and ref[1] in got[1]:
            return 'ok'
        return 'expected refusal "%s", got %s' % (ref[1], got if isinstance(got, tuple) else 'an array')
    if isinstance(got, tuple):
        return 'expected an array, got %s' % (got,)
    if got.shape != ref.shape or not np.array_equal(got, ref):
        return 'not bit-exact (shape %s vs %s)' % (got.shape, ref.shape)
    return 'ok'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('cli')
    args = ap.parse_args()
    tap = Tap()
    rng = np.random.default_rng(23)
    tmp = tempfile.mkdtemp(prefix='vkr-clients-')
    with running_daemon(args.daemon, backend='cpu') as d:
        with d.client() as client:
            for name, op, arrays, kw in cases(rng):
                ref = torch_ref(op, arrays, kw)
                py = verdict(through_module(client, op, arrays, kw), ref)
                cl = verdict(through_cli(args.cli, d.socket, tmp, op, arrays, kw), ref)
                tap.check(py == 'ok' and cl == 'ok', '%s: Python module %s, CLI %s' % (name, py, cl))
        d.stop()
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
