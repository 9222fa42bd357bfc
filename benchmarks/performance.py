"""Speed and memory of keras_gumbel against hand-written floors, TFP and PyTorch.

Three sub-benchmarks, each selectable with `--only`:

- `layer`: the `GumbelSoftmax` layer (soft and hard, sampling), forward and
  backward (the gradient of `sum(y * w)`, `w` a fixed random tensor, with
  respect to the logits) under `tf.function`, for batch x 20 variables x K
  classes, against a minimal hand-written TensorFlow expression (the floor),
  TFP's `RelaxedOneHotCategorical`, and `torch.nn.functional.gumbel_softmax`;
  both with and without XLA for TensorFlow. The JAX backend (the layer under
  `jax.jit` against a `jax.numpy` floor) runs in a subprocess, since the Keras
  backend is fixed per process.
- `training`: steady-state steps per second of `CategoricalVAE.fit` with a
  `TemperatureScheduler` attached, against a hand-written `tf.function` loop
  and a PyTorch loop of the same network and loss.
- `evaluation`: images per second of `importance_bound` (m = 1000) on
  Fashion-MNIST test images, the time for all 10,000 of them, and peak memory
  for several m.

Rules shared by every comparison: all sides run in the same process, warmed up
(traced, compiled) first, then timed in interleaved rounds, every side once
per round in a fresh random order after a 0.1 s pause, so that a slow spell of
the machine or threads left spinning by the previous side hit every side
alike; medians over rounds; ratios are ratios of medians. Thread counts are
pinned and recorded. The peak resident set size (RSS) is recorded next to
every time.

Usage:
    python benchmarks/performance.py                        # the committed results
    python benchmarks/performance.py --smoke --out /tmp/perf
    python benchmarks/performance.py --only layer,training
"""

import argparse
import dataclasses
import functools
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from common import cpu_model

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SUB_BENCHMARKS = ("layer", "training", "evaluation")
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
TINY = float(np.finfo(np.float32).tiny)
MIB = 2.0**20
# Untimed pause before every timed sample (see `interleaved`).
SETTLE_S = 0.1

# Targets: (name, description, threshold).
LAYER_FLOOR_TARGET = 1.10
FIT_HAND_TARGET = 0.95
FIT_TORCH_TARGET = 1.0
EVALUATION_TARGET_S = 600.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and repetitions of one run."""

    layer_ks: tuple = (10, 100, 1000, 10000)
    layer_batch: int = 1024
    layer_vars: int = 20
    layer_reps: tuple = (15, 11, 5, 5)  # per K
    min_sample_s: float = 0.2  # each timed sample repeats calls up to this long
    temperature: float = 0.5
    train_batches: tuple = (100, 1000)
    train_steps: tuple = (40, 8)  # timed steps per round, per batch size
    # Untimed steps at the start of every sample: a `fit` call starts a new
    # tf.data iterator, and its first ~8 steps at batch 100 measured 0.5-1 ms
    # slower than the rest; the timed steps are the steady state.
    train_warm_steps: int = 10
    train_reps: tuple = (15, 5)
    train_images: int = 10000
    eval_images: int = 500
    eval_reps: int = 3
    eval_samples: int = 1000
    eval_chunk: int = 100
    eval_batch: int = 100
    eval_memory_samples: tuple = (100, 1000, 5000)
    eval_memory_images: int = 100
    eval_full_limit_s: float = 360.0
    eval_full: bool = True


SMOKE = Settings(
    layer_ks=(10, 100),
    layer_batch=8,
    layer_reps=(2, 2),
    min_sample_s=0.0,
    train_batches=(16, 32),
    train_steps=(2, 2),
    train_warm_steps=1,
    train_reps=(2, 2),
    train_images=256,
    eval_images=4,
    eval_reps=2,
    eval_samples=20,
    eval_chunk=10,
    eval_batch=4,
    eval_memory_samples=(10, 20, 40),
    eval_memory_images=4,
    eval_full=False,
)


# Environment: optional libraries, threads, machine.


def installed(module):
    """Whether `module` can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def not_installed(module):
    return {"status": "not installed", "reason": f"{module} is not installed"}


def pin_tensorflow_threads(threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return {
        "tensorflow_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "tensorflow_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def pin_torch_threads(threads):
    if not installed("torch"):
        return {"torch": "not installed"}
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # Already set, or inter-op work already started.
        pass
    return {
        "torch_intra_op": torch.get_num_threads(),
        "torch_inter_op": torch.get_num_interop_threads(),
    }


def total_memory_gib():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def available_memory_bytes():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def version_of(module):
    if not installed(module):
        return "not installed"
    try:
        from importlib.metadata import version

        return version({"tensorflow_probability": "tensorflow-probability"}.get(module, module))
    except Exception:  # A module without distribution metadata.
        return getattr(__import__(module), "__version__", "unknown")


def machine():
    import keras_gumbel

    env = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS")
    return {
        "cpu": cpu_model(default=platform.processor() or platform.machine()),
        "cores": os.cpu_count(),
        "memory_gib": total_memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "keras_gumbel": keras_gumbel.__version__,
            **{
                m: version_of(m)
                for m in (
                    "tensorflow",
                    "keras",
                    "tensorflow_probability",
                    "numpy",
                    "torch",
                    "jax",
                    "jaxlib",
                    "psutil",
                )
            },
        },
        "environment": {name: os.environ.get(name) for name in env},
    }


# Measurement.


def _proc_status_bytes(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"{field} not in /proc/self/status")


def _reset_high_water_mark():
    # Writing 5 to clear_refs resets the kernel's peak RSS (VmHWM) to the
    # current RSS (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def _high_water_mark_resettable():
    try:
        _reset_high_water_mark()
        return _proc_status_bytes("VmHWM") <= _proc_status_bytes("VmRSS") * 1.01 + 2**20
    except OSError:
        return False


class PeakRss:
    """Peak resident set size of this process while a function runs.

    Uses, in order of preference: the kernel's high-water mark (`VmHWM`),
    reset before the call (exact, Linux); RSS sampled every millisecond by a
    `psutil` thread; or `ru_maxrss`, the lifetime peak, which only rises.
    """

    def __init__(self):
        if _high_water_mark_resettable():
            self.method = "VmHWM (kernel peak RSS), reset before every timed sample"
            self._measure = self._measure_hwm
        elif installed("psutil"):
            import psutil

            self._process = psutil.Process()
            self.method = "RSS sampled every 1 ms by a psutil thread"
            self._measure = self._measure_psutil
        else:
            self.method = "ru_maxrss (lifetime peak of the process; can only rise)"
            self._measure = self._measure_rusage

    def __call__(self, fn):
        """Runs `fn()`; returns its result, the RSS before it and the peak, in bytes."""
        return self._measure(fn)

    def _measure_hwm(self, fn):
        _reset_high_water_mark()
        start = _proc_status_bytes("VmRSS")
        result = fn()
        return result, start, _proc_status_bytes("VmHWM")

    def _measure_psutil(self, fn):
        start = self._process.memory_info().rss
        peak = [start]
        done = threading.Event()

        def sample():
            while not done.wait(0.001):
                peak[0] = max(peak[0], self._process.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            result = fn()
        finally:
            done.set()
            sampler.join()
        return result, start, max(peak[0], self._process.memory_info().rss)

    def _measure_rusage(self, fn):
        scale = 1 if sys.platform == "darwin" else 1024
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        result = fn()
        return result, start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def time_calls(fn, calls):
    """Seconds per call of `fn` (which waits for its own result), over `calls` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def calls_per_sample(fn, min_seconds):
    """Warms `fn` up (tracing, compiling) and returns how many calls fill `min_seconds`."""
    if time_calls(fn, 1) >= min_seconds:  # even with tracing, one call is long enough
        return 1
    seconds = time_calls(fn, 1)
    return max(1, math.ceil(min_seconds / max(seconds, 1e-9)))


def interleaved(samplers, reps, peak_rss):
    """Runs every sampler once per round, in a new random order each round.

    A side's time can depend on which side ran just before it (threads of
    another framework still spinning, caches, memory just freed), so the
    order is shuffled (seeded) rather than rotated, and a short pause lets
    the previous side's threads go idle before the next one is timed.

    Args:
        samplers: Dict name -> callable returning seconds (per call or step).
        reps: Number of rounds.
        peak_rss: A `PeakRss`.

    Returns:
        Dict name -> summary (median, all times, peak RSS).
    """
    names = list(samplers)
    records = {name: [] for name in names}
    order = np.random.default_rng(len(names) * 1000 + reps)
    for _ in range(reps):
        for name in order.permutation(names):
            time.sleep(SETTLE_S)
            records[name].append(peak_rss(samplers[name]))
    return {name: summarize(records[name]) for name in names}


def summarize(records):
    seconds = [r[0] for r in records]
    return {
        "status": "ok",
        "median_s": statistics.median(seconds),
        "times_s": seconds,
        "rss_start_mib": statistics.median(r[1] for r in records) / MIB,
        "peak_rss_mib": max(r[2] for r in records) / MIB,
        "peak_over_start_mib": max(r[2] - r[1] for r in records) / MIB,
    }


def add_ratios(sides, reference):
    """Adds `ratio` (median time / the reference's) to every measured side."""
    ref = sides.get(reference, {})
    for side in sides.values():
        if side.get("status") == "ok" and ref.get("status") == "ok":
            side["reference"] = reference
            side["ratio"] = side["median_s"] / ref["median_s"]
    return sides


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


def run_layer(settings, peak_rss):
    rows, notes = [], []
    # In repeated runs the first row timed in a process came out 1.1x to
    # 2.2x slower for the layer alone (not for the floor), and 1.02x to
    # 1.03x when the same row was timed again later in the process. So the
    # first K is run once as a warm-up of every side, its times discarded.
    warm_up = dataclasses.replace(settings, layer_ks=settings.layer_ks[:1], layer_reps=(3,))
    layer_rows(warm_up, peak_rss, [], [], report=False)
    layer_rows(settings, peak_rss, rows, notes)
    return {"rows": rows, "notes": notes, "jax": run_jax_worker(settings)}


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


def run_jax_worker(settings):
    if not installed("jax"):
        return not_installed("jax")
    spec = {
        "ks": list(settings.layer_ks),
        "batches": [layer_batch(k, settings)[0] for k in settings.layer_ks],
        "reps": list(settings.layer_reps),
        "variables": settings.layer_vars,
        "temperature": settings.temperature,
        "min_sample_s": settings.min_sample_s,
        "threads": THREADS["requested"],
    }
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, str(Path(__file__).resolve()), "--jax-worker", json.dumps(spec)]
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


# Training benchmark.


def training_images(count, seed):
    """Synthetic binarized images: random bits, 784 pixels each."""
    rng = np.random.default_rng(seed)
    return (rng.random((count, 784)) < 0.3).astype(np.float32)


def temperature_schedule():
    from keras_gumbel import schedules

    return schedules.ExponentialDecay(initial=1.0, rate=1e-4, minimum=0.5, interval=500)


def fit_sampler(images, batch, steps, warm, jit_compile="auto"):
    """`CategoricalVAE.fit` with a `TemperatureScheduler`: seconds per step."""
    import keras

    from keras_gumbel import datasets
    from keras_gumbel.callbacks import TemperatureScheduler
    from keras_gumbel.models import CategoricalVAE

    keras.utils.set_random_seed(0)
    model = CategoricalVAE(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    dataset = datasets.make_dataset(
        images, batch_size=batch, seed=0, repeat=True, drop_remainder=True
    )
    scheduler = TemperatureScheduler(temperature_schedule())
    clock = FitClock(model, warm, steps)

    def sample():
        model.fit(
            dataset,
            epochs=1,
            steps_per_epoch=warm + steps,
            callbacks=[scheduler, clock.callback],
            verbose=0,
            shuffle=False,  # the pipeline shuffles; Keras would warn that it ignores this
        )
        return clock.seconds() / steps

    sample.model = model
    return sample


class FitClock:
    """Times `fit` from the start of step `warm` to the end of step `warm + steps - 1`.

    The end of a step is its batch-end callback, where Keras has already
    converted the step's logs to Python numbers (so the step has finished);
    the epoch-end work after the last step is not timed. On the TensorFlow
    backend Keras calls batch-end callbacks on the main thread.
    """

    def __init__(self, model, warm, steps):
        import keras

        clock = self

        class Clock(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                if batch == warm:
                    int(model.optimizer.iterations.numpy())  # the warm-up steps are done
                    clock.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                if batch == warm + steps - 1:
                    clock.end = time.perf_counter()

        self.callback = Clock()
        self.start = self.end = None

    def seconds(self):
        return self.end - self.start


def dense_parameters(sizes, seed):
    """Glorot-uniform kernels and zero biases, as Keras `Dense` initializes them."""
    import keras
    import tensorflow as tf

    params = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        kernel = keras.initializers.GlorotUniform(seed=seed + i)((n_in, n_out))
        params += [tf.Variable(kernel), tf.Variable(tf.zeros([n_out]))]
    return params


def tf_mlp(h, params):
    """ReLU MLP with a linear last layer."""
    import tensorflow as tf

    layers = len(params) // 2
    for i in range(layers):
        h = tf.matmul(h, params[2 * i]) + params[2 * i + 1]
        if i < layers - 1:
            h = tf.nn.relu(h)
    return h


def tf_hand_sampler(images, batch, steps, warm, num_vars=20, num_classes=10):
    """A minimal hand-written `tf.function` training loop: seconds per step."""
    import keras
    import tensorflow as tf

    from keras_gumbel import datasets

    encoder = dense_parameters([784, 512, 256, num_vars * num_classes], seed=0)
    decoder = dense_parameters([num_vars * num_classes, 256, 512, 784], seed=10)
    params = encoder + decoder
    tau = tf.Variable(1.0, trainable=False)
    optimizer = keras.optimizers.Adam(1e-3)
    log_k = math.log(num_classes)

    @tf.function
    def train_step(x):
        with tf.GradientTape() as tape:
            logits = tf.reshape(tf_mlp(x, encoder), [-1, num_vars, num_classes])
            u = tf.random.uniform(tf.shape(logits), minval=TINY, maxval=1.0)
            y = tf.nn.softmax((logits - tf.math.log(-tf.math.log(u))) / tau)
            x_logits = tf_mlp(tf.reshape(y, [-1, num_vars * num_classes]), decoder)
            nll = tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=x_logits)
            log_q = tf.nn.log_softmax(logits)
            kl = tf.reduce_sum(tf.exp(log_q) * (log_q + log_k), axis=[1, 2])
            loss = tf.reduce_mean(tf.reduce_sum(nll, axis=1) + kl)
        optimizer.apply_gradients(zip(tape.gradient(loss, params), params, strict=True))
        return loss

    dataset = datasets.make_dataset(
        images, batch_size=batch, seed=0, repeat=True, drop_remainder=True
    )
    iterator = iter(dataset)
    schedule = temperature_schedule()
    state = {"step": 0, "tau": None}

    def run(count):
        for _ in range(count):
            value = schedule(state["step"])
            if value != state["tau"]:
                tau.assign(value)
                state["tau"] = value
            loss = train_step(next(iterator))
            state["step"] += 1
        return float(loss)

    def sample():
        run(warm)
        start = time.perf_counter()
        run(steps)
        return (time.perf_counter() - start) / steps

    return sample


def train_step_sampler(model, images, batch, steps, warm):
    """Diagnostic: the model's own `train_step` driven like the hand loop (no `fit`)."""
    import tensorflow as tf

    from keras_gumbel import datasets

    train_step = tf.function(model.train_step)
    dataset = datasets.make_dataset(
        images, batch_size=batch, seed=1, repeat=True, drop_remainder=True
    )
    iterator = iter(dataset)

    def run(count):
        for _ in range(count):
            logs = train_step(next(iterator))
        return float(logs["loss"])

    def sample():
        run(warm)
        start = time.perf_counter()
        run(steps)
        return (time.perf_counter() - start) / steps

    return sample


def torch_sampler(images, batch, steps, warm, num_vars=20, num_classes=10):
    """The same network and loss in PyTorch (eager): seconds per step."""
    import torch
    from torch import nn
    from torch.nn import functional

    torch.manual_seed(0)
    encoder = nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
        nn.Linear(256, num_vars * num_classes),
    )  # fmt: skip
    decoder = nn.Sequential(
        nn.Linear(num_vars * num_classes, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(),
        nn.Linear(512, 784),
    )  # fmt: skip
    params = list(encoder.parameters()) + list(decoder.parameters())
    # Keras's Adam epsilon, so both take the same steps.
    optimizer = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
    log_k = math.log(num_classes)
    count = len(images) // batch
    batches = [torch.from_numpy(images[i * batch : (i + 1) * batch]) for i in range(count)]
    schedule = temperature_schedule()
    state = {"step": 0}

    def train_step(x):
        logits = encoder(x).view(-1, num_vars, num_classes)
        y = functional.gumbel_softmax(logits, tau=schedule(state["step"]), dim=-1)
        x_logits = decoder(y.view(-1, num_vars * num_classes))
        nll = functional.binary_cross_entropy_with_logits(x_logits, x, reduction="none")
        log_q = functional.log_softmax(logits, dim=-1)
        kl = (log_q.exp() * (log_q + log_k)).sum(dim=(1, 2))
        loss = (nll.sum(dim=1) + kl).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state["step"] += 1
        return loss

    def run(n):
        for _ in range(n):
            loss = train_step(batches[state["step"] % count])
        return loss.item()

    def sample():
        run(warm)
        start = time.perf_counter()
        run(steps)
        return (time.perf_counter() - start) / steps

    return sample


def run_training(settings, peak_rss):
    images = training_images(settings.train_images, seed=0)
    rows = []
    for batch, steps, reps in zip(
        settings.train_batches, settings.train_steps, settings.train_reps, strict=True
    ):
        warm = settings.train_warm_steps
        fit = fit_sampler(images, batch, steps, warm)
        samplers = {
            "keras_gumbel_fit": fit,
            # Keras's "auto" leaves XLA off on CPUs, where the models compile
            # only the optimizer update; the same fit with XLA on and off.
            "keras_gumbel_fit_xla": fit_sampler(images, batch, steps, warm, jit_compile=True),
            "keras_gumbel_fit_no_xla": fit_sampler(images, batch, steps, warm, jit_compile=False),
            "tf_hand_loop": tf_hand_sampler(images, batch, steps, warm),
            "keras_gumbel_train_step": train_step_sampler(fit.model, images, batch, steps, warm),
        }
        skipped = {}
        if installed("torch"):
            samplers["torch"] = torch_sampler(images, batch, steps, warm)
        else:
            skipped["torch"] = not_installed("torch")
        jit_compile = fit.model.jit_compile
        for sample in samplers.values():  # trace and warm up every side
            sample()
        sides = interleaved(samplers, reps, peak_rss)
        sides.update(skipped)
        add_ratios(sides, "tf_hand_loop")
        for side in sides.values():
            if side.get("status") == "ok":
                side["steps_per_s"] = 1.0 / side["median_s"]
        row = {
            "batch": batch,
            "timed_steps": steps,
            "warm_steps_per_round": warm,
            "fit_jit_compile": bool(jit_compile),
            "sides": sides,
            "fit_speed_vs_hand": speed_ratio(sides, "keras_gumbel_fit", "tf_hand_loop"),
            "fit_speed_vs_torch": speed_ratio(sides, "keras_gumbel_fit", "torch"),
            "fit_xla_speed_vs_hand": speed_ratio(sides, "keras_gumbel_fit_xla", "tf_hand_loop"),
            "fit_xla_speed_vs_torch": speed_ratio(sides, "keras_gumbel_fit_xla", "torch"),
            "fit_no_xla_speed_vs_hand": speed_ratio(
                sides, "keras_gumbel_fit_no_xla", "tf_hand_loop"
            ),
        }
        rows.append(row)
        print(training_progress(row), flush=True)
    return {"rows": rows, "data": f"{len(images)} synthetic images of 784 random bits (p = 0.3)"}


def speed_ratio(sides, name, reference):
    """Steps per second of `name` over those of `reference`, or None."""
    a, b = sides.get(name, {}), sides.get(reference, {})
    if a.get("status") != "ok" or b.get("status") != "ok":
        return None
    return b["median_s"] / a["median_s"]


def training_progress(row):
    parts = [
        f"{name} {side['steps_per_s']:.1f} steps/s"
        for name, side in row["sides"].items()
        if side.get("status") == "ok"
    ]
    return f"training batch {row['batch']}: " + ", ".join(parts)


# Evaluation benchmark.


def evaluation_images(settings, data_dir, smoke):
    """Fashion-MNIST test images (binarized), or random bits where unavailable."""
    count = 10000
    if not smoke and data_dir is not None and Path(data_dir).is_dir():
        from keras_gumbel import datasets

        data = datasets.load(str(data_dir), binarization="static")
        images = data.x_test.reshape(len(data.x_test), -1).astype(np.float32)
        return images, f"Fashion-MNIST test set ({len(images)} images, static binarization)"
    images = training_images(max(settings.eval_images, settings.eval_memory_images), seed=1)
    return images, f"synthetic random bits ({len(images)} images; extrapolated to {count})"


def evaluation_model(images):
    import keras

    from keras_gumbel.models import CategoricalVAE

    keras.utils.set_random_seed(0)
    model = CategoricalVAE(seed=0)
    model(images[:1])
    return model


def bound_sampler(model, images, num_samples, chunk, batch):
    """Seconds per image of `importance_bound` over `images`."""
    import tensorflow as tf

    from keras_gumbel.models import importance_bound

    dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch)

    def sample():
        start = time.perf_counter()
        bounds = importance_bound(model, dataset, num_samples=num_samples, chunk_size=chunk)
        seconds = time.perf_counter() - start
        sample.mean_bound = float(np.mean(bounds))
        return seconds / len(images)

    return sample


def run_evaluation(settings, peak_rss, data_dir, smoke):
    images, source = evaluation_images(settings, data_dir, smoke)
    model = evaluation_model(images)
    m, chunk, batch = settings.eval_samples, settings.eval_chunk, settings.eval_batch
    subset = images[: settings.eval_images]
    throughput = bound_sampler(model, subset, m, chunk, batch)
    bound_sampler(model, subset[:batch], m, chunk, batch)()  # warm-up
    sides = interleaved({"importance_bound": throughput}, settings.eval_reps, peak_rss)
    side = sides["importance_bound"]
    side["images_per_s"] = 1.0 / side["median_s"]
    side["extrapolated_10000_s"] = 10000 * side["median_s"]
    print(f"evaluation: {side['images_per_s']:.1f} images/s at m={m}", flush=True)
    result = {
        "data": source,
        "model": "CategoricalVAE (untrained; speed does not depend on the weights)",
        "num_samples": m,
        "chunk_size": chunk,
        "batch": batch,
        "images": len(subset),
        "throughput": side,
        "full_run": full_run(model, images, settings, peak_rss, side, source),
        "memory": memory_by_samples(model, images, settings, peak_rss),
    }
    return result


def full_run(model, images, settings, peak_rss, throughput, source):
    if not settings.eval_full:
        return {"status": "skipped", "reason": "smoke mode"}
    if len(images) < 10000:
        return {"status": "skipped", "reason": f"only {len(images)} images: {source}"}
    if throughput["extrapolated_10000_s"] > settings.eval_full_limit_s:
        return {
            "status": "skipped",
            "reason": f"extrapolated time over {settings.eval_full_limit_s:.0f} s",
        }
    sample = bound_sampler(
        model, images[:10000], settings.eval_samples, settings.eval_chunk, settings.eval_batch
    )
    summary = summarize([peak_rss(sample)])
    summary["seconds"] = summary["median_s"] * 10000
    summary["images_per_s"] = 1.0 / summary["median_s"]
    summary["mean_bound_nats"] = sample.mean_bound
    print(f"evaluation: all 10,000 images in {summary['seconds']:.0f} s", flush=True)
    return summary


def memory_by_samples(model, images, settings, peak_rss):
    """Peak RSS of `importance_bound` for each m, on the same images."""
    subset = images[: settings.eval_memory_images]
    batch = min(settings.eval_batch, len(subset))
    samplers = {
        str(m): bound_sampler(model, subset, m, settings.eval_chunk, batch)
        for m in settings.eval_memory_samples
    }
    samplers[str(settings.eval_memory_samples[0])]()  # warm-up
    rows = interleaved(samplers, 1, peak_rss)
    for m, row in rows.items():
        row["num_samples"] = int(m)
        row["images"] = len(subset)
        row["images_per_s"] = 1.0 / row["median_s"]
    return list(rows.values())


# Targets.


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


def per_batch_target(name, rows, key, threshold, digits):
    """A target met when `row[key] >= threshold` for every training row."""
    return {
        "name": name,
        "measured": ", ".join(f"batch {r['batch']}: {r[key]:.{digits}f}x" for r in rows),
        "met": min(r[key] for r in rows) >= threshold,
    }


def training_targets(training):
    rows = training["rows"]
    targets = [
        per_batch_target(
            "fit steps/s >= 0.95x the hand-written tf.function loop",
            rows,
            "fit_speed_vs_hand",
            FIT_HAND_TARGET,
            digits=3,
        )
    ]
    if all(r["fit_speed_vs_torch"] is not None for r in rows):
        targets.append(
            per_batch_target(
                "fit steps/s >= 1.0x PyTorch",
                rows,
                "fit_speed_vs_torch",
                FIT_TORCH_TARGET,
                digits=2,
            )
        )
    else:
        targets.append(untested("fit steps/s >= 1.0x PyTorch", "torch"))
    return targets


def evaluation_targets(evaluation):
    full = evaluation["full_run"]
    if full.get("status") == "ok":
        seconds, how = full["seconds"], "measured"
    else:
        seconds, how = evaluation["throughput"]["extrapolated_10000_s"], "extrapolated"
    return [
        {
            "name": f"importance_bound, m={evaluation['num_samples']}, 10,000 images < 10 minutes",
            "measured": f"{seconds / 60:.1f} min ({how})",
            "met": seconds < EVALUATION_TARGET_S,
        }
    ]


def untested(name, module):
    return {"name": name, "measured": f"not measured: {module} is not installed", "met": None}


def targets(results):
    found = []
    for name, fn in (
        ("layer", layer_targets),
        ("training", training_targets),
        ("evaluation", evaluation_targets),
    ):
        if name in results:
            found += fn(results[name])
    return found


# Report.


def ms(seconds):
    return f"{1000 * seconds:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def mib(value):
    return f"{round(value):,}"  # round(-0.2) is 0, where format() would write -0


def side_cell(side):
    if side.get("status") != "ok":
        return side.get("status", "-")
    return ms(side["median_s"])


def ratio_cell(side, key="ratio"):
    return f"{side[key]:.3f}x" if side.get("status") == "ok" and key in side else "-"


LAYER_SIDES = ("keras_gumbel", "tf_floor", "keras_gumbel_xla", "tf_floor_xla", "tfp", "torch")


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


def training_markdown(training, settings):
    lines = [
        "## Training: CategoricalVAE, steps per second",
        "",
        "784-512-256 encoder, 20 x 10 categorical latents, 256-512-784 decoder, Adam (lr 1e-3), "
        "Gumbel-Softmax estimator, Bernoulli reconstruction + analytic KL to the uniform prior. "
        "`keras_gumbel_fit` is `CategoricalVAE.fit` (verbose=0) on a `tf.data` pipeline "
        "(`keras_gumbel.datasets.make_dataset`) with `TemperatureScheduler(ExponentialDecay)`, "
        'compiled with Keras\'s default `jit_compile="auto"` (on a CPU: no XLA for the '
        "step, the optimizer update compiled with XLA by the model); "
        "`keras_gumbel_fit_xla` is the same with `compile(jit_compile=True)` (the whole step "
        "in XLA), `keras_gumbel_fit_no_xla` with `compile(jit_compile=False)` (no XLA at all); "
        "`tf_hand_loop` is a hand-written `tf.function` step of the same network and loss "
        "(`tf.matmul`, `tf.nn.sigmoid_cross_entropy_with_logits`, Keras Adam) iterating over "
        "the same pipeline; `torch` is the same network and loss in eager PyTorch "
        "(`F.gumbel_softmax`, `torch.optim.Adam`, batches already in memory). "
        "`keras_gumbel_train_step` is a diagnostic, not a user path: the same model's "
        "`train_step` called from the hand loop's plumbing (`tf.function`, `next(iterator)`), "
        "without `fit`; fit minus it is the per-step cost of Keras's `fit` loop, it minus "
        "the hand loop that of the library's step. "
        f"Data: {training['data']}. Each round times the steps after "
        f"{settings.train_warm_steps} untimed warm-up steps (for `fit`, each sample is one "
        "`fit` call, whose new tf.data iterator slows its first steps; the clock runs from "
        "the start of the first timed step to the batch-end callback of the last); medians "
        "over rounds.",
        "",
        "| batch | side | steps/s | time/step | speed vs hand loop | peak RSS (MiB) | "
        "peak over start (MiB) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in training["rows"]:
        for name, side in row["sides"].items():
            if side.get("status") != "ok":
                lines.append(f"| {row['batch']} | {name} | {side['status']} | | | | |")
                continue
            lines.append(
                f"| {row['batch']} | {name} | {side['steps_per_s']:.2f} | {ms(side['median_s'])} | "
                f"{1 / side['ratio']:.3f}x | {mib(side['peak_rss_mib'])} | "
                f"{mib(side['peak_over_start_mib'])} |"
            )
    lines += [""]
    for row in training["rows"]:
        lines.append(
            f"- batch {row['batch']}: fit / hand loop = {row['fit_speed_vs_hand']:.3f}x, "
            f"fit / torch = {torch_ratio_text(row['fit_speed_vs_torch'])}; with "
            f"jit_compile=True: {row['fit_xla_speed_vs_hand']:.3f}x and "
            f"{torch_ratio_text(row['fit_xla_speed_vs_torch'])}; with jit_compile=False: "
            f"{row['fit_no_xla_speed_vs_hand']:.3f}x the hand loop (steps/s ratios; "
            f'{row["timed_steps"]} timed steps per round; Keras\'s "auto" chose '
            f"jit_compile={row['fit_jit_compile']})."
        )
    return lines + [""]


def torch_ratio_text(ratio):
    """A speed ratio against torch, or why there is none."""
    return f"{ratio:.2f}x" if ratio is not None else "not measured"


def evaluation_markdown(evaluation):
    t = evaluation["throughput"]
    full = evaluation["full_run"]
    lines = [
        "## Evaluation: importance-weighted bound",
        "",
        f"`importance_bound(model, dataset, num_samples={evaluation['num_samples']}, "
        f"chunk_size={evaluation['chunk_size']})` on batches of {evaluation['batch']} images. "
        f"Data: {evaluation['data']}. Model: {evaluation['model']}.",
        "",
        "| measurement | images | time | images/s | peak RSS (MiB) | peak over start (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| throughput (median of {len(t['times_s'])} runs) | {evaluation['images']} | "
        f"{ms(t['median_s'] * evaluation['images'])} | {t['images_per_s']:.1f} | "
        f"{mib(t['peak_rss_mib'])} | {mib(t['peak_over_start_mib'])} |",
        f"| 10,000 images, extrapolated | 10000 | {t['extrapolated_10000_s']:.0f} s | | | |",
    ]
    if full.get("status") == "ok":
        lines.append(
            f"| 10,000 images, measured | 10000 | {full['seconds']:.0f} s | "
            f"{full['images_per_s']:.1f} | {mib(full['peak_rss_mib'])} | "
            f"{mib(full['peak_over_start_mib'])} |"
        )
    else:
        lines.append(f"| 10,000 images, measured | | {full['status']}: {full['reason']} | | | |")
    lines += [
        "",
        "Peak memory against m (chunks of "
        f"{evaluation['chunk_size']} samples, so memory should not grow with m):",
        "",
        "| m | images | time | images/s | peak RSS (MiB) | peak over start (MiB) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in evaluation["memory"]:
        lines.append(
            f"| {row['num_samples']} | {row['images']} | {ms(row['median_s'] * row['images'])} | "
            f"{row['images_per_s']:.1f} | {mib(row['peak_rss_mib'])} | "
            f"{mib(row['peak_over_start_mib'])} |"
        )
    return lines + [""]


def markdown(results, settings):
    m = results["machine"]
    v = m["versions"]
    threads = results["threads"]
    lines = [
        "# keras_gumbel performance",
        "",
        f"Command: `{results['command']}`"
        + (" (smoke mode: tiny sizes)" if results["smoke"] else ""),
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']:.1f} GiB; {m['platform']}; "
        f"load average {results['load_average']['start']} at the start, "
        f"{results['load_average']['end']} at the end (the machine is shared).",
        "",
        f"Versions: keras_gumbel {v['keras_gumbel']}, TensorFlow {v['tensorflow']}, Keras "
        f"{v['keras']}, TFP {v['tensorflow_probability']}, NumPy {v['numpy']}, PyTorch "
        f"{v['torch']}, JAX {v['jax']}, Python {m['python']}.",
        "",
        f"Threads: {threads_text(threads)}. Peak RSS: {results['memory_method']}. "
        f"Wall time of the run: {results['wall_s'] / 60:.1f} min.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for target in results["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[target["met"]]
        lines.append(f"| {target['name']} | {target['measured']} | {met} |")
    lines.append("")
    if "layer" in results:
        lines += layer_markdown(results["layer"], settings)
    if "training" in results:
        lines += training_markdown(results["training"], settings)
    if "evaluation" in results:
        lines += evaluation_markdown(results["evaluation"])
    return "\n".join(lines)


def threads_text(threads):
    parts = [
        f"TensorFlow intra-op {threads['tensorflow_intra_op']}, "
        f"inter-op {threads['tensorflow_inter_op']}"
    ]
    if "torch_intra_op" in threads:
        parts.append(f"torch {threads['torch_intra_op']} (inter-op {threads['torch_inter_op']})")
    else:
        parts.append("torch not installed")
    parts.append(f"JAX: {threads['jax']}")
    return "; ".join(parts)


def write(results, settings, out):
    out.mkdir(parents=True, exist_ok=True)
    (out / "performance.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "performance.md").write_text(markdown(results, settings))


# Main.

THREADS = {"requested": None}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(SUB_BENCHMARKS),
        help="comma-separated sub-benchmarks: layer, training, evaluation",
    )
    parser.add_argument("--smoke", action="store_true", help="seconds-long run, tiny sizes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="threads of every framework"
    )
    parser.add_argument("--fashion-mnist", type=Path, default=FASHION_MNIST)
    parser.add_argument("--jax-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SUB_BENCHMARKS))
    if unknown:
        parser.error(f"unknown sub-benchmarks {unknown}; choose from {SUB_BENCHMARKS}")
    args.only = only
    return args


def command_args(argv=None):
    """The command-line arguments that shape the results (all but `--out`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    kept = []
    while argv:
        arg = argv.pop(0)
        if arg == "--out":
            argv = argv[1:]
        elif not arg.startswith("--out="):
            kept.append(arg)
    return kept


def run(args):
    settings = SMOKE if args.smoke else Settings()
    THREADS["requested"] = args.threads
    threads = {**pin_tensorflow_threads(args.threads), **pin_torch_threads(args.threads)}
    threads["jax"] = "XLA CPU default (all cores the process may use)"
    peak_rss = PeakRss()
    command = "python benchmarks/performance.py" + "".join(f" {a}" for a in command_args())
    start = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    results = {"command": command, "smoke": args.smoke, "settings": dataclasses.asdict(settings)}
    if "layer" in args.only:
        results["layer"] = run_layer(settings, peak_rss)
        if results["layer"]["jax"].get("status") == "ok":
            threads["jax"] = results["layer"]["jax"]["threads"]
    if "training" in args.only:
        results["training"] = run_training(settings, peak_rss)
    if "evaluation" in args.only:
        results["evaluation"] = run_evaluation(settings, peak_rss, args.fashion_mnist, args.smoke)
    results.update(
        {
            "machine": machine(),
            "threads": threads,
            "memory_method": peak_rss.method,
            "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
            "wall_s": time.perf_counter() - start,
        }
    )
    results["targets"] = targets(results)
    return results, settings


def main(argv=None):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    args = parse_args(argv)
    if args.jax_worker:
        jax_worker(json.loads(args.jax_worker))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    results, settings = run(args)
    write(results, settings, args.out)
    print((args.out / "performance.md").read_text())


if __name__ == "__main__":
    main()
