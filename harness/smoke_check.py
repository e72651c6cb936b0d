"""`harness check`'s model check: one training step, one evaluation and one sample of every
distinct model configuration, on a few examples, on CPU, in seconds, writing nothing.

A bug in a user's model (an ``evaluate`` that returns a scalar, a ``loss`` that returns a
vector, a ``sample`` of the wrong shape) is caught here, before registration, and located at
the user's file and line, instead of failing later inside ``harness run`` as an IndexError
in ``harness/engine.py`` that reads as the harness's fault.

Two passes: once per model, its contract called directly on one unstacked model (the shapes
checked, each error naming the method's ``file:line``); then, per distinct configuration, the
real path, a one-step ``engine.train_block`` (stacked, vmapped), whose exceptions are located
by :func:`harness.failures.user_frame`. A diffusion model's sampler runs its declared number of
steps: a 256-step sampler costs a few seconds on CPU.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time

import torch

from harness.collect import Collected
from harness.errors import RunError

N_EXAMPLES = 8  # test examples evaluated; training minibatch of the same size
N_SAMPLES = 4


def check_models(col: Collected) -> tuple[int, float]:
    """Check every distinct (model, config) of ``col``'s variants. Returns (configurations
    checked, seconds). Raises RunError (exit 2) naming the user's file:line on a broken model.

    Example::

        n, seconds = check_models(collect("iaf_tightens_bound"))
    """
    from harness import data, engine
    from harness.failures import user_frame
    from harness.registry import MODELS

    t0 = time.perf_counter()
    hyp = col.hypothesis
    full = data.load(hyp.dataset)
    ds = dataclasses.replace(full, train=full.train[: 8 * N_EXAMPLES], test=full.test[:N_EXAMPLES])
    seen: set[tuple] = set()
    contracted: set[type] = set()
    for v in hyp.variants:
        model_cls = MODELS[v.model]
        key = (v.model, repr(v.model_config))
        if key in seen:  # one step per distinct model configuration: strata of data settings repeat it
            continue
        seen.add(key)
        t = v.training
        # evaluate_at=(): one step has no earlier budgets (a declared (10,) is above steps=1)
        training = dataclasses.replace(t, steps=1, evaluate_at=(), batch_size=min(t.batch_size, N_EXAMPLES), log_every=1,
                                       eval_samples=min(t.eval_samples, 2), n_samples=min(t.n_samples, N_SAMPLES))
        what = f"variant {v.id!r} (model {v.model!r})"
        with torch.random.fork_rng(devices=[]):  # the check never moves the caller's random state
            torch.manual_seed(0)
            if model_cls not in contracted:  # the shapes, once per model: they do not depend on values
                contracted.add(model_cls)
                _contract(model_cls, v.model_config, ds, training, what)
            try:
                engine.train_block(model_cls, v.model_config, training, ds, [0], "cpu")
            except Exception as exc:  # noqa: BLE001  (any failure of the user's model is located)
                raise RunError(
                    f"{user_frame(exc, col.path)}: one training step of {what} on {N_EXAMPLES} examples raised "
                    f"{type(exc).__name__}: {str(exc)[:500]}\n"
                    "  hint: `harness check` trains one step of each model before anything is registered; "
                    "fix the model code and check again"
                ) from None
    return len(seen), time.perf_counter() - t0


def _where(model_cls: type, method: str) -> str:
    """``file:line`` of ``model_cls.method``'s definition (the user's code)."""
    fn = getattr(model_cls, method)
    try:
        return f"{inspect.getsourcefile(fn)}:{inspect.getsourcelines(fn)[1]}"
    except (OSError, TypeError):
        return f"{model_cls.__module__}.{model_cls.__name__}.{method}"


def _call(model_cls: type, method: str, what: str, fn, *args):
    from harness.failures import user_frame

    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        frame = user_frame(exc, _source_path(model_cls))
        raise RunError(
            f"{frame}: {model_cls.__name__}.{method}() of {what} raised {type(exc).__name__}: {str(exc)[:500]}\n"
            "  hint: fix the model code, then `harness check` again"
        ) from None


def _source_path(model_cls: type):
    from pathlib import Path

    try:
        return Path(inspect.getsourcefile(model_cls) or ".")
    except TypeError:
        return Path(".")


def _bad(model_cls: type, method: str, what: str, got: str, expected: str) -> RunError:
    return RunError(
        f"{_where(model_cls, method)}: {model_cls.__name__}.{method}() of {what} returned {got}; expected {expected}\n"
        "  hint: see the model contract in `harness catalog models` / docs/architecture.md; the harness stacks "
        "seeds with vmap, so shapes must be exactly these"
    )


def _shape(x) -> str:
    return f"a tensor of shape {list(x.shape)}" if isinstance(x, torch.Tensor) else f"a {type(x).__name__}"


def _contract(model_cls: type, config, ds, training, what: str) -> None:
    """The model's methods called once, unstacked, with the shapes the engine relies on."""
    from harness.models.base import can_sample

    dev = torch.device("cpu")
    model = _call(model_cls, "__init__", what, model_cls, config, ds.shape, ds.levels)
    g = torch.Generator(device=dev).manual_seed(0)
    n = min(N_EXAMPLES, ds.train.shape[0])
    x = ds.train[:n].reshape(n, -1).float()
    from harness.models.groups import is_grouped, loss_methods

    for method in loss_methods(model_cls, config):  # "loss", or each update of a grouped model's first stage
        noise = _call(model_cls, "noise", what, model.noise, "loss", n, 1, g, dev)
        out = _call(model_cls, method, what, getattr(model, method), x, noise)
        sizes = (2, 3) if is_grouped(model_cls) else (2,)  # a grouped update may return new buffers
        if not (isinstance(out, tuple) and len(out) in sizes and isinstance(out[1], dict)):
            raise _bad(model_cls, method, what, f"a {type(out).__name__}", "(scalar loss, dict of logged terms)")
        loss = out[0]
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise _bad(model_cls, method, what, _shape(loss),
                       "a scalar tensor (shape []): the mean over the minibatch")
    with torch.no_grad():
        k = training.eval_samples
        noise = _call(model_cls, "noise", what, model.noise, "evaluate", n, k, g, dev)
        metrics = _call(model_cls, "evaluate", what, model.evaluate, x, noise)
        if not isinstance(metrics, dict):
            raise _bad(model_cls, "evaluate", what, _shape(metrics), f"a dict metric -> tensor of shape [{n}]")
        for name in model_cls.metrics:
            m = metrics.get(name)
            if m is None:
                raise _bad(model_cls, "evaluate", what, f"no {name!r} (keys {sorted(metrics)})",
                           f"every metric the model declares: {list(model_cls.metrics)}")
            if not isinstance(m, torch.Tensor) or tuple(m.shape) != (n,):
                raise _bad(model_cls, "evaluate", what, f"{name!r} as {_shape(m)}",
                           f"one value per example: shape [{n}] for {n} examples")
            if torch.isinf(m).any():
                raise _bad(model_cls, "evaluate", what, f"{name!r} with infinite values",
                           "finite values (or NaN for a diverged example)")
        if can_sample(model_cls):
            noise = _call(model_cls, "noise", what, model.noise, "sample", N_SAMPLES, 1, g, dev)
            s = _call(model_cls, "sample", what, model.sample, noise)
            dim = math.prod(ds.shape)
            if not isinstance(s, torch.Tensor) or s.dim() < 2 or s.shape[0] != N_SAMPLES or \
                    math.prod(s.shape[1:]) != dim:
                raise _bad(model_cls, "sample", what, _shape(s),
                           f"shape [{N_SAMPLES}, {dim}] (or [{N_SAMPLES}, {', '.join(map(str, ds.shape))}]) "
                           f"for {N_SAMPLES} samples of data shaped {list(ds.shape)}")
