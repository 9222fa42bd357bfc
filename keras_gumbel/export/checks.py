"""Checks of a written SavedModel against the Keras model it came from."""

import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_gumbel.export.errors import ExportError

# Op type prefixes that would make a signature random (`keras.random` lowers
# to StatelessRandom* ops; tf.random to Random*, StatefulUniform*, Rng*...) or
# unservable by a stock TensorFlow Serving build.
FORBIDDEN_OPS = (
    "Random", "StatelessRandom", "StatelessTruncatedNormal", "StatelessMultinomial",
    "StatelessParameterizedTruncatedNormal", "StatefulUniform", "StatefulStandardNormal",
    "StatefulTruncatedNormal", "StatefulRandom", "Rng", "TruncatedNormal",
    "Multinomial", "ParameterizedTruncatedNormal",
    "PyFunc", "EagerPyFunc", "XlaCallModule",
)  # fmt: skip


def signature_ops(loaded, name):
    """The op types of a loaded signature's graph, its functions included."""
    graph = loaded.signatures[name].graph
    ops = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
        ops.update(node.op for node in function.node_def)
    return ops


def run_saved_model_cli(directory, signature, inputs, workdir):
    """Runs a signature with TensorFlow's saved_model_cli; returns its outputs.

    Args:
        directory: The SavedModel directory.
        signature: The signature name.
        inputs: dict of input alias to NumPy array.
        workdir: A scratch directory.
    """
    files = []
    for i, (alias, array) in enumerate(inputs.items()):
        path = Path(workdir) / f"{signature}_in_{i}.npy"
        np.save(path, array)
        files.append(f"{alias}={path}")
    outdir = Path(workdir) / f"{signature}_out"
    command = [
        sys.executable, "-c", "from tensorflow.python.tools.saved_model_cli import main; main()",
        "run", "--dir", str(directory), "--tag_set", "serve", "--signature_def", signature,
        "--inputs", ";".join(files), "--outdir", str(outdir), "--overwrite",
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    if result.returncode != 0:
        raise ExportError(
            f"saved_model_cli failed on signature {signature!r}: {result.stderr.strip()[-800:]}"
        )
    return {p.stem: np.load(p) for p in outdir.glob("*.npy")}


def _same(got, want):
    if want.dtype.kind in "iu":
        return got.dtype == np.int64 and np.array_equal(got, want)
    return got.shape == want.shape and np.allclose(got, want, rtol=1e-5, atol=1e-6)


def verify_export(directory, plan, use_cli=True):
    """Checks the SavedModel in `directory` against `plan`; raises ExportError.

    Every signature of the plan must exist, hold no random or non-core op,
    and reproduce the Keras model's outputs on the sample inputs (integer
    outputs exactly, as int64), through `tf.saved_model.load` and, with
    `use_cli`, through TensorFlow's `saved_model_cli`.

    Returns:
        A dict describing the checks, written next to the export as
        `assets.extra/verification.json`.
    """
    loaded = tf.saved_model.load(str(directory))
    names = set(loaded.signatures.keys())
    missing = (set(plan.signatures) | {"serving_default"}) - names
    if missing:
        raise ExportError(f"signatures missing from the export: {sorted(missing)}")
    cases = plan.cases()
    cli_outputs = {}
    if use_cli:
        # Each saved_model_cli run is a fresh TensorFlow process: run them at once.
        with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(len(cases)) as pool:
            futures = {
                name: pool.submit(run_saved_model_cli, directory, name, inputs, workdir)
                for name, (inputs, _) in cases.items()
            }
            cli_outputs = {name: future.result() for name, future in futures.items()}
    checks = {}
    for name, (inputs, expected) in cases.items():
        forbidden = sorted(op for op in signature_ops(loaded, name) if op.startswith(FORBIDDEN_OPS))
        if forbidden:
            raise ExportError(
                f"signature {name!r} contains ops that a deterministic TF Serving endpoint "
                f"must not: {forbidden}"
            )
        tensors = {alias: tf.constant(array) for alias, array in inputs.items()}
        outputs = {k: v.numpy() for k, v in loaded.signatures[name](**tensors).items()}
        runs = {"tf.saved_model.load": outputs}
        if use_cli:
            runs["saved_model_cli"] = cli_outputs[name]
        for how, got in runs.items():
            for key, want in expected.items():
                if key not in got:
                    raise ExportError(f"{how}: signature {name!r} has no output {key!r}")
                if not _same(got[key], want):
                    raise ExportError(
                        f"{how}: output {key!r} of signature {name!r} differs from the Keras model"
                    )
        checks[name] = sorted(runs)
    return {
        "examples": int(plan.num_examples),
        "checked_with": checks,
        "tensorflow": tf.__version__,
    }
