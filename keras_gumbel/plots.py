"""Figures of a training run, written as PNG files.

Figures are drawn on `matplotlib.figure.Figure` objects, never through
pyplot, so importing this module leaves the process's matplotlib backend
alone (figures in a notebook keep showing inline).
"""

import math

import numpy as np

from keras_gumbel._extras import require_extra

require_extra("keras_gumbel.plots", "paper", modules=("matplotlib",))

from matplotlib.figure import Figure  # noqa: E402


def _subplots(rows=1, columns=1, figsize=None, squeeze=True):
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, columns, squeeze=squeeze)


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return str(path)


def plot_training(history, path, title=""):
    """Loss curves (train and validation) and the temperature, per epoch.

    Args:
        history: Dict of metric name to per-epoch values (Keras `History`).
        path: Output PNG path.
        title: Figure title.
    """
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    has_tau = bool(history.get("temperature"))
    has_accuracy = bool(history.get("val_accuracy"))
    panels = 1 + has_tau + has_accuracy
    fig, axes = _subplots(1, panels, figsize=(4.5 * panels + 1, 3.6))
    axes = np.atleast_1d(axes)
    for key, label in (
        ("loss", "train (training objective)"),
        ("val_loss", "validation (exact samples)"),
    ):
        if history.get(key):
            axes[0].plot(epochs, history[key], label=label)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss (nats per example)")
    axes[0].legend()
    axes[0].grid(alpha=0.3)
    if has_accuracy:
        axes[1].plot(epochs, 100 * np.asarray(history["val_accuracy"]), color="tab:green")
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("validation accuracy (%)")
        axes[1].grid(alpha=0.3)
    if has_tau:
        axes[-1].plot(epochs, history["temperature"], color="tab:red")
        axes[-1].set_xlabel("epoch")
        axes[-1].set_ylabel("temperature at epoch end")
        axes[-1].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_image_rows(rows, labels, image_shape, path, title=""):
    """A grid with one row per array of images, labelled on the left.

    Args:
        rows: List of arrays `[n, prod(image_shape)]` (or `[n, *image_shape]`)
            with values in [0, 1].
        labels: One label per row.
        image_shape: `(height, width)`.
        path: Output PNG path.
        title: Figure title.
    """
    n = min(len(r) for r in rows)
    fig, axes = _subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 1.0 + 0.4), squeeze=False)
    for r, (images, label) in enumerate(zip(rows, labels, strict=False)):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.reshape(images[c], image_shape), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_image_grid(images, image_shape, path, title="", columns=10):
    """Images in a grid of `columns` columns."""
    rows = math.ceil(len(images) / columns)
    fig, axes = _subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9 + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(images):
            ax.imshow(np.reshape(images[i], image_shape), cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_code_usage(codes, num_classes, path, title=""):
    """Heat map of how often each latent variable takes each value.

    Args:
        codes: Integer array `[n, num_vars]`.
        num_classes: Values a variable can take (2 for binary units).
        path: Output PNG path.
        title: Figure title.
    """
    codes = np.asarray(codes)
    num_vars = codes.shape[1]
    usage = np.stack([np.bincount(codes[:, v], minlength=num_classes) for v in range(num_vars)])
    usage = usage / max(len(codes), 1)
    if num_classes == 2:
        # Binary units: one row of P(unit = 1), wrapped into a square-ish grid.
        columns = math.ceil(math.sqrt(num_vars))
        grid = np.full(math.ceil(num_vars / columns) * columns, np.nan)
        grid[:num_vars] = usage[:, 1]
        data, xlabel, ylabel = grid.reshape(-1, columns), "unit (column)", "unit (row)"
        label = "fraction of images with the unit on"
    else:
        data, xlabel, ylabel = usage, "class", "latent variable"
        label = "fraction of images"
    fig, ax = _subplots(
        figsize=(max(4, data.shape[1] * 0.35 + 1.5), max(3, data.shape[0] * 0.25 + 1))
    )
    im = ax.imshow(
        data, cmap="viridis", vmin=0, vmax=max(float(np.nanmax(data)), 1e-9), aspect="auto"
    )
    if num_classes > 2:
        ax.set_yticks(range(num_vars))
        ax.set_xticks(range(num_classes))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(im, ax=ax, label=label)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_confusion(labels, predicted, num_classes, path, title=""):
    """Confusion matrix: row = true class, column = predicted, as fractions of the row.

    Args:
        labels: Integer array `[n]` of true classes.
        predicted: Integer array `[n]` of predicted classes.
        num_classes: Number of classes.
        path: Output PNG path.
        title: Figure title.
    """
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (np.asarray(labels), np.asarray(predicted)), 1)
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(3.5, num_classes * 0.4 + 1.5)
    fig, ax = _subplots(figsize=(size + 1, size))
    im = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    if num_classes <= 20:
        ax.set_xticks(range(num_classes))
        ax.set_yticks(range(num_classes))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)
