"""The M2 speed benchmark runs end to end in its smoke mode (no timing checks)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "tensorflow", reason="the benchmark uses TensorFlow")

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_run_writes_results(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.paper.semisupervised_speed", "--smoke",
         "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "semisupervised_speed.json").read_text())
    assert [row["classes"] for row in results["rows"]] == [2, 3]
    for row in results["rows"]:
        for key in ("marginalize", "gumbel_softmax"):
            steps = row[f"{key}_steps_per_second"]
            assert math.isfinite(steps) and steps > 0
            settings = results["settings"]
            assert len(row[f"{key}_seconds"]) == settings["repetitions"] * settings["timed_steps"]
        ratio = row["gumbel_softmax_steps_per_second"] / row["marginalize_steps_per_second"]
        assert row["speedup"] == pytest.approx(ratio)
    assert "| K | marginalize" in (tmp_path / "semisupervised_speed.md").read_text()
    assert (tmp_path / "semisupervised_speed.png").read_bytes()[:4] == b"\x89PNG"
