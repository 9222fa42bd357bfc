"""What the parts of `performance.py` share: settings, the machine, timing, reporting.

Every comparison runs its sides in one process, warmed up (traced,
compiled) first, then timed in interleaved rounds: every side once per round
in a fresh random order after a short pause (`interleaved`), with the peak
resident set size recorded next to every time (`PeakRss`). Medians over
rounds; ratios are ratios of medians.
"""

import dataclasses
import importlib.util
import math
import os
import platform
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import cpu_model

TINY = float(np.finfo(np.float32).tiny)
MIB = 2.0**20
# Untimed pause before every timed sample (see `interleaved`).
SETTLE_S = 0.1


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
    # Rounds per batch size: eight sides on a machine shared with other work.
    train_reps: tuple = (25, 11)
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


# One K and one batch size: each is a row of the same code, and every side of
# a row compiles its own graphs, which is most of a smoke run's time.
SMOKE = Settings(
    layer_ks=(10,),
    layer_batch=8,
    layer_reps=(2,),
    min_sample_s=0.0,
    train_batches=(16,),
    train_steps=(2,),
    train_warm_steps=1,
    train_reps=(2,),
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


# Reporting.


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


def untested(name, module):
    """A target that could not be measured because `module` is not installed."""
    return {"name": name, "measured": f"not measured: {module} is not installed", "met": None}
