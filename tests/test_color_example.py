"""examples/color_images.py --quick: runs end to end, writes its figure and table, and
its numbers are finite and consistent (AIS brackets ordered, baselines ordered, every
discrete model better than uniform)."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "color_images.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("color_images_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| model") and "---" not in line:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def test_color_example_quick(tmp_path):
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    ex = _load_example()
    fig = tmp_path / "colour.png"
    out = ex.main(["--quick", "--out", str(fig)])

    assert fig.stat().st_size > 5000
    table = fig.with_suffix(".md")
    assert out["table"] == table and table.exists()
    rows = _table_rows(table.read_text())

    base = out["baselines"]
    K = 16
    assert base["uniform"] == pytest.approx(math.log2(K))
    # real tiles: neighbouring pixels are correlated, so the tile Gaussian beats the
    # independent categorical, which beats the uniform model
    assert 0 < base["gaussian_bound"] < base["categorical"] < base["uniform"]
    for name in ("independent categorical (add-1)", "tile Gaussian (Ledoit-Wolf)",
                 "uniform", "*real test tiles (reference)*"):
        assert name in rows, name

    names = [r["name"] for r in out["rows"]]
    assert names == list(ex.MODEL_NAMES)
    for r in out["rows"]:
        lo, hi = r["bits_lower"], r["bits_upper"]
        assert math.isfinite(lo) and math.isfinite(hi), r["name"]
        # AIS (lower) and reverse AIS (upper) bracket log Z; at this tiny size they agree
        # to far better than 0.01 bits/dim
        assert lo <= hi + 0.01, (r["name"], lo, hi)
        assert 0 < lo < math.log2(K) + 2, (r["name"], lo)
        if r["name"] not in ex.DENSITY_MODELS:
            # data-initialised biases alone are about the independent model: far below
            # the uniform log2 K
            assert hi < base["uniform"] - 0.05, (r["name"], hi)
        # the table shows the same bracket
        cell = rows[r["name"]][5]
        m = re.match(r"([0-9.]+) … ([0-9.]+)", cell)
        assert m, cell
        assert float(m.group(1)) == pytest.approx(lo, abs=1e-4)
        assert float(m.group(2)) == pytest.approx(hi, abs=1e-4)
        d = r["diversity"]
        assert all(math.isfinite(v) for v in d.values())
        assert 0.0 <= d["aats_test"] <= 1.0
        assert r["samples"].shape == (ex.parse(["--quick"]).samples, 3 * 16 * 16)
        assert r["samples"].min() >= 0 and r["samples"].max() <= K - 1
        # the conditional means E[v | h] of the same chains, as fractional codes
        assert r["means"].shape == r["samples"].shape
        assert np.isfinite(r["means"]).all()
        if r["name"] not in ex.DENSITY_MODELS:    # discrete levels: means inside [0, K-1]
            assert r["means"].min() >= 0 and r["means"].max() <= K - 1
        assert ("centred" in r["method"]) == ex.RECIPES[r["name"]]["centering"]
    for name in ex.DENSITY_MODELS:
        assert "upper bound" in rows[name][5]
    # the whitened model starts as the tile Gaussian (near-zero couplings, precision 1,
    # zero biases over z = Σ^(-1/2)(k + u - μ)); two epochs at lr 1e-4 leave it there,
    # so its score (its own free energy, AIS log Z and the ½ log|Σ| Jacobian) must land
    # on the baseline's closed form, up to the Monte Carlo dequantisation
    white = next(r for r in out["rows"] if r["name"] == "whitened Gaussian")
    assert white["bits_upper"] == pytest.approx(base["gaussian_bound"], abs=0.005)
