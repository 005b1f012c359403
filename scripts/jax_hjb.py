#!/usr/bin/env python3
"""A JAX baseline of the HJB-LIN training step (issue #30), for a side-by-side on one machine.

Our own JAX program, written from the spec (shared/spec/equations.md §9.1) the way the reference
code computes it: u(x, t) = MLP([x, t]) with 4 × 128 tanh layers in f32, 100 interior points a
step with x ~ N(0, I_d) and t ~ U(0, 1), the residual

    u_t + Δu − (1/d) Σ_i |∂_i u|^1.75 + 2,

∇u and u_t by ``jax.grad``, Δu by dense STDE (R Rademacher probes shared by the batch, each
vᵀ∇²u v by forward-over-reverse ``jax.jvp`` of the gradient), plus the terminal penalty
20 · mean (u(x, 1) − Σ x_i)² on 100 points; loss gradient by ``jax.value_and_grad`` and one optax
Adam step, all inside one ``jax.jit``-compiled step (sampling included).

    python3 scripts/jax_hjb.py --dim 1000 [--steps 50] [--rand-batch 16] [--json]

Prints the median step time, steps/s and the peak RSS of the process. Install as for
``scripts/jax_baseline.py``; ``scripts/gradient_terms.sh jax`` runs both programs in turn.
"""
import argparse
import json
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from jax_baseline import init, mlp  # noqa: E402  (same network and initialisation)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rand-batch", type=int, default=16)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    d, n, r = a.dim, a.batch, a.rand_batch
    params = init(jax.random.PRNGKey(0), d + 1)
    opt = optax.adam(optax.linear_schedule(1e-3, 0.0, 10_000))
    state = opt.init(params)

    def grad_u(p, z):
        return jax.grad(mlp, argnums=1)(p, z)

    def residual(p, x, t, probes):
        z = jnp.concatenate([x, t[None]])
        g = grad_u(p, z)

        def quad(v):
            vz = jnp.concatenate([v, jnp.zeros(1, v.dtype)])
            return jnp.dot(vz, jax.jvp(lambda y: grad_u(p, y), (z,), (vz,))[1])

        lap = jnp.mean(jax.vmap(quad)(probes))
        return g[-1] + lap - jnp.sum(jnp.abs(g[:-1]) ** 1.75) / d + 2.0

    def loss(p, key):
        kx, kt, kv, kb = jax.random.split(key, 4)
        x = jax.random.normal(kx, (n, d), jnp.float32)
        t = jax.random.uniform(kt, (n,), jnp.float32)
        probes = jax.random.rademacher(kv, (r, d), jnp.float32)
        res = jax.vmap(residual, in_axes=(None, 0, 0, None))(p, x, t, probes)
        xb = jax.random.normal(kb, (n, d), jnp.float32)
        ub = jax.vmap(lambda y: mlp(p, jnp.concatenate([y, jnp.ones(1, y.dtype)])))(xb)
        return jnp.mean(res**2) + 20.0 * jnp.mean((ub - jnp.sum(xb, axis=1)) ** 2)

    @jax.jit
    def step(p, s, key):
        value, g = jax.value_and_grad(loss)(p, key)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, value

    key = jax.random.PRNGKey(1)
    times = []
    for k in range(a.warmup + a.steps):
        key, sub = jax.random.split(key)
        t0 = time.perf_counter()
        params, state, value = step(params, state, sub)
        value.block_until_ready()
        if k >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"dim": d, "median_s": med, "steps_per_s": 1 / med, "peak_rss_mb": rss, "loss": float(value)}
    print(json.dumps(row) if a.json else f"jax hjb-lin d = {d}: {1 / med:.2f} steps/s ({med * 1e3:.1f} ms), peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
