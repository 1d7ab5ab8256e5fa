#!/usr/bin/python3
"""The Python module's interpolate arguments against torch.nn.functional.interpolate (issue 11:
"sizes torch refuses").

Before the fix the module turned whatever it was given into numbers: size=(3.0, 3.0),
(2.7, 2), (True, 3), float tensors and numpy arrays were accepted and truncated, where
PyTorch 1.13 raises TypeError; bfloat16 tensors failed with numpy's bare TypeError.

- Every combination of a pool of size and scale_factor values (Python ints, floats and bools,
  numpy scalars and arrays, torch tensors of either kind, None inside sequences, strings,
  complex numbers, 2**70, sequences of the wrong length, tuples and lists) with every mode, every
  rank a mode takes (and some it does not), recompute_scale_factor None/True, antialias off/on
  and align_corners None/False where they apply, is run through torch and through the module:
  - torch raises: the module raises an exception that is an instance of torch's exception type,
    with torch's message word for word;
  - torch answers: the module answers the same array, bit for bit (CPU backend).
- torch tensors as input: float32 ones are served; bfloat16 / float16 / float64 / int ones are
  refused with VKR_E_DTYPE naming the dtype; a tensor that requires grad with a message that
  says so (not a bare numpy TypeError).

usage: test_python_args.py DAEMON      (TAP output)"""
import itertools
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
os.environ.setdefault('ATEN_CPU_CAPABILITY', 'default')

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from vkr_testlib import Tap, running_daemon, vkresample  # noqa: E402


def t(v):
    return torch.tensor(v)


SIZES = [3, 3.0, 2.7, True, np.int64(3), np.int32(2), np.float32(3), np.float64(3), t(3), t(3.0),
         t([3, 3]), np.array(3), np.array([3, 3]), '3', 2 ** 70, 3 + 0j, None]
SCALES = [2, 1.5, True, np.float32(2), np.int64(2), np.float64(1.5), t(2.0), t(2), '2',
          np.array(2.0), np.array([2.0, 2.0]), 2 + 0j, None]
MODES = ['nearest', 'nearest-exact', 'linear', 'bilinear', 'trilinear', 'bicubic', 'area']


def sequences(pool, dim, rng):
    """Scalars, then lists and tuples of pool values (each position drawn), some of the wrong
    length."""
    out = [v for v in pool if v is not None]
    for _ in range(6):
        n = dim if rng.random() < 0.8 else int(rng.integers(0, 4))
        vals = [pool[int(rng.integers(len(pool)))] for _ in range(n)]
        good = [v for v in pool[:2]]
        if rng.random() < 0.5 and n:     # a valid first element, a bad one later
            vals[0] = good[0]
        out.append(vals if rng.random() < 0.5 else tuple(vals))
    return out


def outcome(fn):
    try:
        return 'ok', fn()
    except Exception as e:   # noqa: BLE001 - the exception is the outcome
        return 'raise', e


def main():
    daemon_bin = sys.argv[1]
    tap = Tap()
    rng = np.random.default_rng(20261203)
    shapes = {1: (1, 2, 4), 2: (1, 2, 4, 5), 3: (1, 2, 3, 4, 5)}
    n_cases = n_refused = 0
    bad = []
    kinds = {'accepted what torch refuses': 0, 'other words': 0, "not an instance of torch's type": 0}
    with running_daemon(daemon_bin, backend='cpu') as daemon, daemon.client() as client:
        for dim, mode in itertools.product((1, 2, 3), MODES):
            x = torch.from_numpy(rng.standard_normal(shapes[dim]).astype(np.float32))
            args = [{'size': v} for v in sequences(SIZES, dim, rng)]
            args += [{'scale_factor': v} for v in sequences(SCALES, dim, rng)]
            args += [{'size': 3, 'scale_factor': 2}, {}]
            for kw, rsf, aa, ac in itertools.product(args, (None, True), (False, True), (None, False)):
                if aa and mode not in ('bilinear', 'bicubic', 'nearest'):
                    continue
                if ac is not None and mode not in ('linear', 'bilinear', 'bicubic', 'trilinear', 'nearest'):
                    continue
                full = dict(kw, mode=mode, recompute_scale_factor=rsf, antialias=aa, align_corners=ac)
                want = outcome(lambda: F.interpolate(x, **full).numpy())
                got = outcome(lambda: client.interpolate(x.numpy(), backend='cpu', **full))
                n_cases += 1
                if want[0] == 'raise':
                    n_refused += 1
                    e, g = want[1], got[1]
                    same = (got[0] == 'raise' and isinstance(g, vkresample.VkresampleError)
                            and isinstance(g, type(e)) and g.message == str(e))
                    if got[0] == 'ok':
                        kinds['accepted what torch refuses'] += 1
                    elif not same:
                        kinds['other words' if getattr(g, 'message', None) != str(e)
                              else 'not an instance of torch\'s type'] += 1
                else:
                    same = got[0] == 'ok' and np.array_equal(got[1], want[1], equal_nan=True)
                if not same:
                    bad.append((x.shape, full, want, got))
    for shape, full, want, got in bad[:12]:
        print('# %s %s\n#   torch: %r\n#   vkresample: %r' % (tuple(shape), full, want[1] if want[0] == 'raise'
              else 'array', got[1] if got[0] == 'raise' else 'array'))
    tap.check(not bad, 'interpolate arguments: %d cases (%d refused by torch), %d where the module '
              'differs from torch (%s)' % (n_cases, n_refused, len(bad),
                                           ', '.join('%s: %d' % kv for kv in kinds.items())))

    with running_daemon(daemon_bin, backend='cpu') as daemon, daemon.client() as client:
        x = torch.rand(1, 3, 5, 6)
        y = client.interpolate(x, size=(3, 4), mode='bilinear')
        tap.check(np.array_equal(y, F.interpolate(x, size=(3, 4), mode='bilinear').numpy()),
                  'a float32 torch tensor is served as its numpy array')
        for dtype in (torch.bfloat16, torch.float16, torch.float64, torch.int32):
            try:
                client.interpolate(x.to(dtype), size=2)
                tap.check(False, '%s input refused' % dtype)
            except vkresample.VkresampleError as e:
                tap.check(e.code == vkresample.VKR_E_DTYPE and str(dtype) in e.message,
                          '%s input refused: %s' % (dtype, e))
            except Exception as e:   # noqa: BLE001
                tap.check(False, '%s input refused with a bare %s: %s' % (dtype, type(e).__name__, e))
        try:
            client.interpolate(x.clone().requires_grad_(), size=2)
            tap.check(False, 'a tensor that requires grad is refused')
        except vkresample.VkresampleError as e:
            tap.check('requires grad' in e.message, 'a tensor that requires grad is refused: %s' % e)
        except Exception as e:   # noqa: BLE001
            tap.check(False, 'a tensor that requires grad: bare %s: %s' % (type(e).__name__, e))
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
