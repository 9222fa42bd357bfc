"""The evaluation part of `performance.py`: the importance-weighted bound.

Images per second of `importance_bound` (m = 1000) on the test images of
an image data set (Fashion-MNIST by default, any directory that
`keras_gumbel.datasets.load` reads), the time for all 10,000 of them, and peak memory for several m.
"""

import time
from pathlib import Path

import numpy as np

from benchmarks.performance.perf_timing import interleaved
from benchmarks.performance.perf_timing import mib
from benchmarks.performance.perf_timing import ms
from benchmarks.performance.perf_timing import summarize
from benchmarks.performance.perf_training import training_images

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
EVALUATION_TARGET_S = 600.0


def evaluation_images(settings, data_dir, smoke):
    """The test images in `data_dir` (binarized), or random bits where there are none."""
    count = 10000
    if not smoke and data_dir is not None and Path(data_dir).is_dir():
        from keras_gumbel import datasets

        data = datasets.load(str(data_dir), binarization="static")
        images = data.x_test.reshape(len(data.x_test), -1).astype(np.float32)
        name = "Fashion-MNIST" if Path(data_dir) == FASHION_MNIST else Path(data_dir).name
        return images, f"{name} test set ({len(images)} images, static binarization)"
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


# Targets and report.


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
