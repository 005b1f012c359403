#!/usr/bin/env python3
"""A JAX baseline of the issue #10 reference step, for a side-by-side on one machine.

The published JAX code is not available on our machines, so this is our own JAX program of the
same step, written from the spec (shared/spec/equations.md §1, §2, §4, §5) the way the paper
computes it: two-body Allen–Cahn on the unit ball, u = (1 − ‖x‖²)·MLP(x) with 4 × 128 tanh layers
in f32, 100 fresh radius-uniform points a step, the exact source per point, and either

* ``sparse``: sparse STDE, one R-subset of coordinates per step shared by all points, each
  u_ii from a 2-jet (x; e_i, 0) pushed by ``jax.experimental.jet`` (dense one-hot tangents, as
  jet needs), Laplacian estimate (d/R)·Σ u_ii; or
* ``exact``: the full Laplacian by folx's forward Laplacian;

loss = mean residual², its gradient by ``jax.value_and_grad``, one optax Adam update with the
linear-decay schedule — all inside one ``jax.jit``-compiled step (sampling included).

    python3 scripts/jax_baseline.py --dim 1000 [--method sparse|exact] [--steps 50] [--json]
    python3 scripts/jax_baseline.py --check      # the derivatives against jax.hessian at small d

It prints the median step time, steps/s and the peak RSS of the process. Install (not needed by
the Rust build or its tests): ``python3 -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install
jax==0.10.2 optax==0.2.8 folx``; ``scripts/jax_side_by_side.sh`` runs both programs in turn.
"""
import argparse
import json
import math
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import optax
from jax.experimental import jet


def init(key, d, width=128):
    """Spec §1.2: W ~ U(±1/√n_in), b ~ U(±1/√n_out)."""
    sizes = [d, width, width, width, 1]
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        key, kw, kb = jax.random.split(key, 3)
        sw, sb = 1 / math.sqrt(n_in), 1 / math.sqrt(n_out)
        params.append(
            (
                jax.random.uniform(kw, (n_in, n_out), jnp.float32, -sw, sw),
                jax.random.uniform(kb, (n_out,), jnp.float32, -sb, sb),
            )
        )
    return params


def mlp(params, x):
    h = x
    for w, b in params[:-1]:
        h = jnp.tanh(h @ w + b)
    w, b = params[-1]
    return (h @ w + b)[0]


def u(params, x):
    return (1 - x @ x) * mlp(params, x)


def source(c, x):
    """Two-body Allen–Cahn source f = Δu* + u* − u*³ (spec §5.3)."""
    d = x.shape[0]
    xi, xn = x[:-1], x[1:]
    z = xi + jnp.cos(xn) + xn * jnp.cos(xi)
    a, b = 1 - xn * jnp.sin(xi), jnp.cos(xi) - jnp.sin(xn)
    ap, bp = -xn * jnp.cos(xi), -jnp.cos(xn)
    psi = 1 - x @ x
    sz, cz = jnp.sin(z), jnp.cos(z)
    lap = jnp.sum(
        c[:-1] * (psi * (-sz * (a * a + b * b) + cz * (ap + bp)) - 4 * cz * (xi * a + xn * b) - 2 * d * sz)
    )
    us = psi * jnp.sum(c[:-1] * sz)
    return lap + us - us**3


def sample(key, n, d):
    """Radius-uniform points in the unit ball (spec §4)."""
    kr, kg = jax.random.split(key)
    rho = jax.random.uniform(kr, (n, 1))
    g = jax.random.normal(kg, (n, d))
    return rho * g / jnp.linalg.norm(g, axis=1, keepdims=True)


def sparse_value_and_laplacian(params, x, idx):
    """u(x) and (d/R)·Σ_{i∈idx} u_ii from 2-jets (x; e_i, 0)."""
    d = x.shape[0]
    f = lambda y: u(params, y)

    def one(i):
        v = jax.nn.one_hot(i, d, dtype=x.dtype)
        primal, (_, second) = jet.jet(f, (x,), ((v, jnp.zeros_like(v)),))
        return primal, second

    primal, second = jax.vmap(one)(idx)
    return primal[0], d / idx.shape[0] * jnp.sum(second)


def exact_value_and_laplacian(params, x):
    import folx

    out = folx.forward_laplacian(lambda y: u(params, y))(x)
    return out.x, out.laplacian


def make_step(d, method, rand_batch, batch, steps):
    c = jax.random.normal(jax.random.PRNGKey(12345), (d,))
    schedule = optax.linear_schedule(1e-3, 0.0, steps)
    opt = optax.adam(schedule, b1=0.9, b2=0.999, eps=1e-8)

    @jax.jit
    def step(params, opt_state, key):
        kx, ki = jax.random.split(key)
        x = sample(kx, batch, d)
        f = jax.vmap(lambda y: source(c, y))(x)
        if method == "sparse":
            idx = jax.random.choice(ki, d, (rand_batch,), replace=False)
            value_lap = lambda p, y: sparse_value_and_laplacian(p, y, idx)
        else:
            value_lap = exact_value_and_laplacian

        def loss(p):
            uu, lap = jax.vmap(lambda y: value_lap(p, y))(x)
            r = lap + uu - uu**3 - f
            return jnp.mean(r**2)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return opt, step


def check():
    """The jet and folx Laplacians against the trace of jax.hessian at d = 7 (f64)."""
    jax.config.update("jax_enable_x64", True)
    d = 7
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), init(jax.random.PRNGKey(0), d))
    x = 0.3 * jax.random.normal(jax.random.PRNGKey(1), (d,), jnp.float64)
    hess = jnp.trace(jax.hessian(lambda y: u(params, y))(x))
    _, lap_jet = sparse_value_and_laplacian(params, x, jnp.arange(d))
    _, lap_folx = exact_value_and_laplacian(params, x)
    err = max(abs(float(lap_jet - hess)), abs(float(lap_folx - hess)))
    print(f"hessian trace {float(hess):.12e}, jet {float(lap_jet):.12e}, folx {float(lap_folx):.12e}")
    if err > 1e-10 * max(1.0, abs(float(hess))):
        sys.exit(f"mismatch {err:.3e}")
    # the source: f − u* + u*³ must be the Laplacian of u* (spec §5.3)
    c = jax.random.normal(jax.random.PRNGKey(2), (d,), jnp.float64)

    def exact(y):
        z = y[:-1] + jnp.cos(y[1:]) + y[1:] * jnp.cos(y[:-1])
        return (1 - y @ y) * jnp.sum(c[:-1] * jnp.sin(z))

    us = exact(x)
    lap_exact = jnp.trace(jax.hessian(exact)(x))
    err_f = abs(float(source(c, x) - us + us**3 - lap_exact))
    print(f"source: Laplacian of u* {float(lap_exact):.12e}, error {err_f:.1e}")
    if err_f > 1e-10 * max(1.0, abs(float(lap_exact))):
        sys.exit(f"source mismatch {err_f:.3e}")
    print("ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, default=1000)
    ap.add_argument("--method", choices=["sparse", "exact"], default="sparse")
    ap.add_argument("--rand-batch", type=int, default=16)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=50, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps (the first compiles)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.check:
        return check()
    params = init(jax.random.PRNGKey(0), a.dim)
    opt, step = make_step(a.dim, a.method, a.rand_batch, a.batch, 10_000)
    opt_state = opt.init(params)
    times = []
    t_compile = time.perf_counter()
    for k in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        params, opt_state, value = step(params, opt_state, jax.random.PRNGKey(k))
        value.block_until_ready()
        if k == 0:
            t_compile = time.perf_counter() - t_compile
        if k >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {
        "program": f"jax {jax.__version__}",
        "dim": a.dim,
        "method": a.method,
        "rand_batch": a.rand_batch,
        "batch": a.batch,
        "timed_steps": a.steps,
        "step_ms_median": med * 1e3,
        "steps_per_s": 1 / med,
        "first_step_s": t_compile,
        "peak_rss_mib": rss_mib,
        "last_loss": float(value),
    }
    if a.json:
        print(json.dumps(row))
    else:
        print(
            f"jax d = {a.dim} {a.method}: {1 / med:.2f} steps/s ({med * 1e3:.2f} ms median of {a.steps}), "
            f"first step {t_compile:.1f} s, peak RSS {rss_mib:.0f} MiB, loss {float(value):.3e}"
        )


if __name__ == "__main__":
    main()
