"""Trained models to SavedModels in TensorFlow Serving's layout, verified.

`export_model(model, base_path, name)` writes `base_path/name/<version>/`,
the next integer version (a new version never overwrites an old one), with
these signatures (method `tensorflow/serving/predict`, batch dimension first
and unknown):

```
encode (serving_default)  images float32 [-1, D]  ->  codes int64 [-1, N],
                                                      one_hot float32 [-1, N, K]
encode_probs              images float32 [-1, D]  ->  probs float32 [-1, N, K]
decode                    codes int64 [-1, N]     ->  means float32 [-1, D_out]
reconstruct               images float32 [-1, D]  ->  means float32 [-1, D_out]
```

`D` is the flattened input size (784 for MNIST; the upper half, 392, for a
stochastic binary network, whose `D_out` is the lower half), `N` the number
of latent variables and `K` their number of classes (2 for binary units,
whose `one_hot` is `[1 - bit, bit]`). Every signature is deterministic: it
contains no random op, so a request always gets the same answer. Endpoints
are plain graphs (no XLA-only functions, only core TensorFlow ops), which
TensorFlow Serving of the exporting TensorFlow version or newer runs.

The version directory is written under a temporary name and renamed into
place, so a server polling the base path never sees half of it. Before
the rename it is verified: reloaded with `tf.saved_model.load` and run
through TensorFlow's `saved_model_cli`, each signature must reproduce the
Keras model's outputs (codes exactly).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

SIGNATURES = ("encode", "encode_probs", "decode", "reconstruct")
# Op types that would make a signature random or unservable by a stock
# TensorFlow Serving build.
_FORBIDDEN_OPS = ("Random", "PyFunc", "EagerPyFunc", "XlaCallModule")


class ExportError(Exception):
    """An export failed or did not verify; nothing was published."""


def _sizes(model):
    latent = model.latent
    num_classes = latent.num_classes
    output_dim = getattr(model, "output_dim", None) or model.input_dim
    return model.input_dim, latent.num_vars, num_classes, output_dim


def _probs(model, images):
    if hasattr(model, "latent_logits"):
        logits = model.latent_logits(images)
    else:
        # A stochastic binary network: the last layer's logits along the mode path.
        h = tf.cast(images, tf.float32)
        for i in range(model.num_layers):
            logits = model._layer_logits(i, h)
            h = model.latent.mode(logits)
    if model.latent.kind == "categorical":
        return tf.nn.softmax(logits, axis=-1)
    p = tf.sigmoid(logits)
    return tf.stack([1.0 - p, p], axis=-1)


def _endpoints(model):
    """The signature functions, traced with named, batch-first input specs."""
    d, n, k, _ = _sizes(model)
    images = tf.TensorSpec([None, d], tf.float32, name="images")
    codes_spec = tf.TensorSpec([None, n], tf.int64, name="codes")

    def encode(images):
        codes = tf.cast(model.encode(images), tf.int64)
        return {"codes": codes, "one_hot": tf.one_hot(codes, k, dtype=tf.float32)}

    def encode_probs(images):
        return {"probs": _probs(model, images)}

    def decode(codes):
        return {"means": model.decode(codes)}

    def reconstruct(images):
        return {"means": model.reconstruct(images)}

    return {
        "encode": (encode, images),
        "encode_probs": (encode_probs, images),
        "decode": (decode, codes_spec),
        "reconstruct": (reconstruct, images),
    }


def next_version(model_dir):
    """1 + the largest integer version under `model_dir` (1 if none)."""
    model_dir = Path(model_dir)
    versions = (
        [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        if model_dir.is_dir()
        else []
    )
    return max(versions, default=0) + 1


def _signature_ops(loaded, name):
    graph = loaded.signatures[name].graph
    ops = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
        ops.update(node.op for node in function.node_def)
    return ops


def _run_saved_model_cli(directory, signature, input_name, array, workdir):
    """Runs a signature with TensorFlow's saved_model_cli; returns its outputs."""
    inputs = Path(workdir) / f"{signature}_in.npy"
    outdir = Path(workdir) / f"{signature}_out"
    np.save(inputs, array)
    command = [
        sys.executable, "-c", "from tensorflow.python.tools.saved_model_cli import main; main()",
        "run", "--dir", str(directory), "--tag_set", "serve", "--signature_def", signature,
        "--inputs", f"{input_name}={inputs}", "--outdir", str(outdir), "--overwrite",
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    if result.returncode != 0:
        raise ExportError(
            f"saved_model_cli failed on signature {signature!r}: {result.stderr.strip()[-800:]}"
        )
    return {p.stem: np.load(p) for p in outdir.glob("*.npy")}


def verify(directory, model, sample_images, use_cli=True):
    """Checks a SavedModel against the Keras model; raises ExportError.

    Returns:
        A dict describing the checks, written next to the export as
        `assets.extra/verification.json`.
    """
    loaded = tf.saved_model.load(str(directory))
    names = set(loaded.signatures.keys())
    missing = set(SIGNATURES) - names
    if missing or "serving_default" not in names:
        raise ExportError(
            f"signatures missing from the export: {sorted(missing | ({'serving_default'} - names))}"
        )
    images = tf.constant(sample_images, tf.float32)
    codes = tf.cast(model.encode(images), tf.int64).numpy()
    expected = {
        "encode": {"codes": codes},
        "encode_probs": {"probs": _probs(model, images).numpy()},
        "decode": {"means": model.decode(codes).numpy()},
        "reconstruct": {"means": model.reconstruct(images).numpy()},
    }
    inputs = {"encode": ("images", sample_images), "encode_probs": ("images", sample_images),
              "decode": ("codes", codes), "reconstruct": ("images", sample_images)}  # fmt: skip
    cli_outputs = {}
    if use_cli:
        # Each saved_model_cli run is a fresh TensorFlow process: run the
        # four at once.
        with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(len(SIGNATURES)) as pool:
            futures = {
                name: pool.submit(_run_saved_model_cli, directory, name, *inputs[name], workdir)
                for name in SIGNATURES
            }
            cli_outputs = {name: future.result() for name, future in futures.items()}
    checks = {}
    for name in SIGNATURES:
        forbidden = sorted(
            op for op in _signature_ops(loaded, name) if op.startswith(_FORBIDDEN_OPS)
        )
        if forbidden:
            raise ExportError(
                f"signature {name!r} contains ops that a deterministic TF Serving endpoint "
                f"must not: {forbidden}"
            )
        input_name, array = inputs[name]
        outputs = {
            k: v.numpy()
            for k, v in loaded.signatures[name](**{input_name: tf.constant(array)}).items()
        }
        runs = {"tf.saved_model.load": outputs}
        if use_cli:
            runs["saved_model_cli"] = cli_outputs[name]
        for how, got in runs.items():
            for key, want in expected[name].items():
                if key not in got:
                    raise ExportError(f"{how}: signature {name!r} has no output {key!r}")
                if want.dtype.kind in "iu":
                    ok = got[key].dtype == np.int64 and np.array_equal(got[key], want)
                else:
                    ok = np.allclose(got[key], want, rtol=1e-5, atol=1e-6)
                if not ok:
                    raise ExportError(
                        f"{how}: output {key!r} of signature {name!r} differs from the Keras model"
                    )
        checks[name] = sorted(runs)
    return {
        "examples": int(len(sample_images)),
        "checked_with": checks,
        "tensorflow": tf.__version__,
    }


def export_model(model, base_path, name, sample_images, version=None, verify_with_cli=True):
    """Exports `model` as `base_path/name/<version>`, verified before it appears.

    Args:
        model: A trained `CategoricalVAE`, `BernoulliVAE` or
            `StochasticBinaryNetwork`.
        base_path: The model base path a server watches.
        name: The model name (a directory under `base_path`).
        sample_images: Float array `[n, D]` of real inputs used to verify.
        version: Optional integer version; default the next free one. An
            existing version is never replaced.
        verify_with_cli: Whether to also run TensorFlow's `saved_model_cli`.

    Returns:
        The path of the new version directory.
    """
    model_dir = Path(base_path) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = version or next_version(model_dir)
    final = model_dir / str(version)
    if final.exists():
        raise ExportError(
            f"version {version} of model {name!r} already exists at {final}; "
            "versions are never overwritten"
        )
    archive = keras.export.ExportArchive()
    archive.track(model)
    # The first endpoint becomes serving_default.
    for endpoint, (fn, spec) in _endpoints(model).items():
        archive.add_endpoint(endpoint, tf.function(fn, input_signature=[spec], autograph=False))
    tmp = Path(tempfile.mkdtemp(dir=model_dir, prefix=".export-"))
    try:
        archive.write_out(str(tmp), verbose=False)
        report = verify(tmp, model, np.asarray(sample_images, np.float32), use_cli=verify_with_cli)
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        d, n, k, d_out = _sizes(model)
        report["contract"] = {
            "D": d,
            "N": n,
            "K": k,
            "D_out": d_out,
            "signatures": list(SIGNATURES),
        }
        (extra / "verification.json").write_text(json.dumps(report, indent=2))
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
