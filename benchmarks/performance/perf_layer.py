"""The layer part of `performance.py`: `GumbelSoftmax` forward and backward.

The layer (soft and hard, sampling) under `tf.function`, with and without
XLA, against a hand-written TensorFlow expression (the floor), TFP's
`RelaxedOneHotCategorical` and `torch.nn.functional.gumbel_softmax`; on the
JAX backend, in a subprocess (the Keras backend is fixed per process), the
layer under `jax.jit` against a `jax.numpy` floor.
"""

import dataclasses
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.performance.perf_timing import TINY
from benchmarks.performance.perf_timing import PeakRss
from benchmarks.performance.perf_timing import add_ratios
from benchmarks.performance.perf_timing import available_memory_bytes
from benchmarks.performance.perf_timing import calls_per_sample
from benchmarks.performance.perf_timing import installed
from benchmarks.performance.perf_timing import interleaved
from benchmarks.performance.perf_timing import mib
from benchmarks.performance.perf_timing import ms
from benchmarks.performance.perf_timing import not_installed
from benchmarks.performance.perf_timing import ratio_cell
from benchmarks.performance.perf_timing import side_cell
from benchmarks.performance.perf_timing import time_calls
from benchmarks.performance.perf_timing import untested

ROOT = Path(__file__).resolve().parents[2]
# The runner, which starts the JAX worker with `--jax-worker`.
RUNNER = "benchmarks.performance.performance"
LAYER_SIDES = ("keras_gumbel", "tf_floor", "keras_gumbel_xla", "tf_floor_xla", "tfp", "torch")
LAYER_FLOOR_TARGET = 1.10


# Layer benchmark: TensorFlow, TFP and PyTorch in this process.


def layer_batch(k, settings):
    """The batch for K classes, halved while four tensors would not fit in memory."""
    batch = settings.layer_batch
    available = available_memory_bytes()
    if available is None:
        return batch, None
    # The inputs as NumPy and TensorFlow arrays (torch shares NumPy's memory)
    # and about six live tensors inside a call.
    while batch > 1 and 10 * batch * settings.layer_vars * k * 4 > 0.7 * available:
        batch //= 2
    if batch == settings.layer_batch:
        return batch, None
    note = (
        f"batch reduced from {settings.layer_batch} to {batch}: MemAvailable was "
        f"{available / 2**30:.1f} GiB"
    )
    return batch, note


def tf_layer_step(hard, temperature, jit_compile):
    import tensorflow as tf

    from keras_gumbel.layers import GumbelSoftmax

    layer = GumbelSoftmax(temperature=temperature, hard=hard, seed=0)

    @tf.function(jit_compile=jit_compile)
    def step(logits, weights, tau):
        del tau  # The layer reads its own temperature variable.
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = tf.reduce_sum(layer(logits, training=True) * weights)
        return loss, tape.gradient(loss, logits)

    return step


def tf_floor_step(hard, jit_compile):
    """The same computation written directly in TensorFlow: the floor."""
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def step(logits, weights, tau):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            u = tf.random.uniform(tf.shape(logits), minval=TINY, maxval=1.0)
            g = -tf.math.log(-tf.math.log(u))
            y = tf.nn.softmax((logits + g) / tau)
            if hard:
                one_hot = tf.one_hot(tf.argmax(y, axis=-1), logits.shape[-1])
                y = tf.stop_gradient(one_hot - y) + y
            loss = tf.reduce_sum(y * weights)
        return loss, tape.gradient(loss, logits)

    return step


def tfp_step(hard):
    import tensorflow as tf
    import tensorflow_probability as tfp

    @tf.function
    def step(logits, weights, tau):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            y = tfp.distributions.RelaxedOneHotCategorical(tau, logits=logits).sample()
            if hard:
                one_hot = tf.one_hot(tf.argmax(y, axis=-1), logits.shape[-1])
                y = tf.stop_gradient(one_hot - y) + y
            loss = tf.reduce_sum(y * weights)
        return loss, tape.gradient(loss, logits)

    return step


def tf_caller(step, logits, weights, tau):
    def call():
        loss, gradient = step(logits, weights, tau)
        loss.numpy()  # Waits for the step (and its gradient) to finish.
        del gradient

    return call


def torch_caller(hard, logits, weights, tau):
    import torch

    def call():
        x = logits.detach().requires_grad_(True)
        y = torch.nn.functional.gumbel_softmax(x, tau=tau, hard=hard, dim=-1)
        loss = (y * weights).sum()
        loss.backward()
        loss.item()

    return call


def layer_inputs(shape, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape, dtype=np.float32)
    weights = rng.standard_normal(shape, dtype=np.float32)
    return logits, weights


def tf_layer_callers(hard, arrays, temperature):
    import tensorflow as tf

    logits, weights = (tf.constant(a) for a in arrays)
    tau = tf.constant(temperature)
    steps = {
        "keras_gumbel": tf_layer_step(hard, temperature, False),
        "tf_floor": tf_floor_step(hard, False),
        "keras_gumbel_xla": tf_layer_step(hard, temperature, True),
        "tf_floor_xla": tf_floor_step(hard, True),
        "tfp": tfp_step(hard),
    }
    return {name: tf_caller(step, logits, weights, tau) for name, step in steps.items()}


def layer_row(k, mode, callers, skipped, settings, reps, peak_rss):
    samplers = {}
    for name, call in callers.items():
        calls = calls_per_sample(call, settings.min_sample_s)  # also the warm-up
        samplers[name] = lambda call=call, calls=calls: time_calls(call, calls)
    sides = interleaved(samplers, reps, peak_rss)
    sides.update(skipped)
    add_ratios(sides, "tf_floor")
    if sides["tf_floor_xla"].get("status") == "ok":
        xla = sides["keras_gumbel_xla"]
        xla["ratio_to_tf_floor_xla"] = xla["median_s"] / sides["tf_floor_xla"]["median_s"]
    return {"classes": k, "mode": mode, "sides": sides}


def run_layer(settings, peak_rss, threads):
    """Times every side at every K; `threads` is what the JAX worker may use."""
    rows, notes = [], []
    # In repeated runs the first row timed in a process came out 1.1x to
    # 2.2x slower for the layer alone (not for the floor), and 1.02x to
    # 1.03x when the same row was timed again later in the process. So the
    # first K is run once as a warm-up of every side, its times discarded.
    warm_up = dataclasses.replace(settings, layer_ks=settings.layer_ks[:1], layer_reps=(3,))
    layer_rows(warm_up, peak_rss, [], [], report=False)
    layer_rows(settings, peak_rss, rows, notes)
    return {"rows": rows, "notes": notes, "jax": run_jax_worker(settings, threads)}


def layer_rows(settings, peak_rss, rows, notes, report=True):
    """Times every side for each K of `settings`, soft and hard; appends to `rows`."""
    for k, reps in zip(settings.layer_ks, settings.layer_reps, strict=True):
        batch, note = layer_batch(k, settings)
        if note:
            notes.append(f"K={k}: {note}")
        shape = (batch, settings.layer_vars, k)
        arrays = layer_inputs(shape, seed=k)
        for hard in (False, True):
            callers = tf_layer_callers(hard, arrays, settings.temperature)
            skipped = {}
            if installed("torch"):
                import torch

                tensors = [torch.from_numpy(a) for a in arrays]
                callers["torch"] = torch_caller(hard, *tensors, settings.temperature)
            else:
                skipped["torch"] = not_installed("torch")
            mode = "hard" if hard else "soft"
            row = layer_row(k, mode, callers, skipped, settings, reps, peak_rss)
            row["batch"] = batch
            row["variables"] = settings.layer_vars
            rows.append(row)
            if report:
                print(layer_progress(row), flush=True)
            del callers


def layer_progress(row):
    sides = row["sides"]
    parts = [
        f"{name} {1000 * side['median_s']:.2f} ms"
        for name, side in sides.items()
        if side.get("status") == "ok"
    ]
    return f"layer K={row['classes']} {row['mode']}: " + ", ".join(parts)


# Layer benchmark, JAX backend: a subprocess with KERAS_BACKEND=jax.


def run_jax_worker(settings, threads):
    if not installed("jax"):
        return not_installed("jax")
    spec = {
        "ks": list(settings.layer_ks),
        "batches": [layer_batch(k, settings)[0] for k in settings.layer_ks],
        "reps": list(settings.layer_reps),
        "variables": settings.layer_vars,
        "temperature": settings.temperature,
        "min_sample_s": settings.min_sample_s,
        "threads": threads,
    }
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", RUNNER, "--jax-worker", json.dumps(spec)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"status": "error", "reason": done.stderr[-2000:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for row in result["rows"]:
        print(layer_progress(row), "(JAX)", flush=True)
    return result


def jax_layer_step(hard, shape, temperature):
    import jax
    import jax.numpy as jnp

    from keras_gumbel.layers import GumbelSoftmax

    layer = GumbelSoftmax(temperature=temperature, hard=hard, seed=0)
    layer.build(shape)
    trainable = [v.value for v in layer.trainable_variables]

    def loss_fn(logits, weights, state):
        y, state = layer.stateless_call(trainable, state, logits, training=True)
        return jnp.sum(y * weights), state

    grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    state = [[v.value for v in layer.non_trainable_variables]]

    def call(logits, weights):
        (loss, state[0]), gradient = grad_fn(logits, weights, state[0])
        jax.block_until_ready((loss, gradient))

    return call


def jax_floor_step(hard, temperature):
    import jax
    import jax.numpy as jnp

    def loss_fn(logits, weights, key):
        u = jax.random.uniform(key, logits.shape, minval=TINY, maxval=1.0)
        g = -jnp.log(-jnp.log(u))
        y = jax.nn.softmax((logits + g) / temperature, axis=-1)
        if hard:
            one_hot = jax.nn.one_hot(jnp.argmax(y, axis=-1), logits.shape[-1])
            y = jax.lax.stop_gradient(one_hot - y) + y
        return jnp.sum(y * weights)

    @jax.jit
    def grad_fn(logits, weights, key):
        key, subkey = jax.random.split(key)
        return jax.value_and_grad(loss_fn)(logits, weights, subkey), key

    key = [jax.random.PRNGKey(0)]

    def call(logits, weights):
        (loss, gradient), key[0] = grad_fn(logits, weights, key[0])
        jax.block_until_ready((loss, gradient))

    return call


def jax_worker(spec):
    """Runs the JAX layer comparison; prints one JSON line."""
    cores = sorted(os.sched_getaffinity(0))
    if spec["threads"] < len(cores):
        # XLA's CPU thread pool has no public size setting: restrict the process instead.
        os.sched_setaffinity(0, cores[: spec["threads"]])
    import jax.numpy as jnp

    peak_rss = PeakRss()
    rows = []
    for k, batch, reps in zip(spec["ks"], spec["batches"], spec["reps"], strict=True):
        shape = (batch, spec["variables"], k)
        logits, weights = (jnp.asarray(a) for a in layer_inputs(shape, seed=k))
        for hard in (False, True):
            steps = {
                "keras_gumbel": jax_layer_step(hard, shape, spec["temperature"]),
                "jax_floor": jax_floor_step(hard, spec["temperature"]),
            }
            samplers = {}
            for name, step in steps.items():
                call = functools.partial(step, logits, weights)
                calls = calls_per_sample(call, spec["min_sample_s"])
                samplers[name] = lambda call=call, calls=calls: time_calls(call, calls)
            sides = add_ratios(interleaved(samplers, reps, peak_rss), "jax_floor")
            mode = "hard" if hard else "soft"
            rows.append(
                {
                    "classes": k,
                    "mode": mode,
                    "batch": batch,
                    "variables": spec["variables"],
                    "sides": sides,
                }
            )
    threads = f"XLA CPU default: all cores the process may use ({len(os.sched_getaffinity(0))})"
    print(json.dumps({"status": "ok", "rows": rows, "threads": threads, "memory": peak_rss.method}))


# Targets and report.


def layer_targets(layer):
    rows = layer["rows"]
    floor = [r["sides"]["keras_gumbel"]["ratio"] for r in rows]
    targets = [
        {
            "name": "layer time <= 1.10x the TensorFlow floor at every K (soft and hard)",
            "measured": f"worst ratio {max(floor):.3f}",
            "met": max(floor) <= LAYER_FLOOR_TARGET,
        }
    ]
    if all(r["sides"]["torch"].get("status") == "ok" for r in rows):
        speed = [
            r["sides"]["torch"]["median_s"] / r["sides"]["keras_gumbel"]["median_s"] for r in rows
        ]
        targets.append(
            {
                "name": "layer faster than torch.nn.functional.gumbel_softmax at every K",
                "measured": f"slowest speed-up {min(speed):.2f}x",
                "met": min(speed) > 1.0,
            }
        )
    else:
        targets.append(untested("layer faster than torch gumbel_softmax", "torch"))
    return targets


def layer_summary_table(layer):
    lines = [
        "| K | batch | mode | keras_gumbel | TF floor | ratio | torch | keras_gumbel speed-up "
        "over torch | XLA: keras_gumbel / floor |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in layer["rows"]:
        s = row["sides"]
        torch_side = s["torch"]
        speedup = (
            f"{torch_side['median_s'] / s['keras_gumbel']['median_s']:.1f}x"
            if torch_side.get("status") == "ok"
            else torch_side.get("status")
        )
        lines.append(
            f"| {row['classes']} | {row['batch']} | {row['mode']} | "
            f"{side_cell(s['keras_gumbel'])} | {side_cell(s['tf_floor'])} | "
            f"{ratio_cell(s['keras_gumbel'])} | "
            f"{side_cell(torch_side)} | {speedup} | "
            f"{ratio_cell(s['keras_gumbel_xla'], 'ratio_to_tf_floor_xla')} |"
        )
    return lines


def layer_detail_table(rows, names):
    lines = [
        "| K | mode | side | median | ratio to floor | peak RSS (MiB) | peak over start (MiB) |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        for name in names:
            side = row["sides"].get(name)
            if side is None:
                continue
            if side.get("status") != "ok":
                lines.append(
                    f"| {row['classes']} | {row['mode']} | {name} | {side['status']} | | | |"
                )
                continue
            lines.append(
                f"| {row['classes']} | {row['mode']} | {name} | {ms(side['median_s'])} | "
                f"{ratio_cell(side)} | {mib(side['peak_rss_mib'])} | "
                f"{mib(side['peak_over_start_mib'])} |"
            )
    return lines


def layer_markdown(layer, settings):
    lines = [
        "## Layer: GumbelSoftmax forward + backward",
        "",
        f"Logits of shape batch x {settings.layer_vars} variables x K classes, tau = "
        f"{settings.temperature}, training=True (sampling). Each call computes "
        "`loss = sum(y * w)` (w a fixed random tensor) and its gradient with respect to the "
        "logits, and waits for both. TensorFlow sides run under `tf.function` (`_xla`: "
        "`jit_compile=True`); the floor is the hand-written expression "
        "`softmax((logits - log(-log(u))) / tau)`, u ~ U[tiny, 1), and, for hard, "
        "`stop_gradient(one_hot(argmax) - y) + y`, with tau passed as a tensor (the layer "
        "reads a variable), so neither side constant-folds it. TFP is "
        "`RelaxedOneHotCategorical(tau, logits).sample()` (+ the same straight-through for "
        "hard); torch is `torch.nn.functional.gumbel_softmax` in eager mode (torch.compile "
        "was not measured). Ratio = median time / the TF floor's median time (lower is "
        "better). The first K is run once as a process warm-up before it is timed (the "
        "first row timed in a process was slow for the layer alone).",
        "",
        *layer_summary_table(layer),
        "",
    ]
    lines += [f"- {note}" for note in layer["notes"]]
    lines += ["", "All sides:", "", *layer_detail_table(layer["rows"], LAYER_SIDES), ""]
    jax = layer["jax"]
    lines += ["### JAX backend (separate process, `KERAS_BACKEND=jax`)", ""]
    if jax.get("status") != "ok":
        lines += [f"JAX: {jax.get('status')} ({jax.get('reason', '')[-300:]})", ""]
        return lines
    lines += [
        "The layer through `layer.stateless_call` under `jax.jit(jax.value_and_grad(...))` "
        "against the same computation in `jax.numpy` (jitted, key split inside). "
        f"Threads: {jax['threads']}. Ratio = median / the JAX floor's median.",
        "",
        *layer_detail_table(jax["rows"], ("keras_gumbel", "jax_floor")),
        "",
    ]
    return lines
