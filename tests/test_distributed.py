"""Data-parallel training over torch.distributed (gloo, two CPU processes).

Two processes are spawned once for the module (a FileStore rendezvous in a temporary
directory); each runs every case on its part of the data and saves what it ends with.
The checks, against single-process training in this process:

- exact ML, full batch, float64, parts of unequal size (21 and 20 rows): the parameters
  and the history (training and validation NLL over all parts) equal single-process
  training on all rows, to rounding;
- a saturated RBM (every draw and mean deterministic) trained by fused CD and PCD, SGD
  with momentum and weight decay: the same parameters as one process holding every row
  and chain, so the weights of the statistics (batch rows over all ranks' rows, chains
  over all chains) are right;
- PCD, fused and generic (Adam) paths, a DBM: bitwise-identical parameters and
  histories on both ranks, chains split across ranks;
- errors: a method without data-parallel support, a rank with too few rows.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import saturated_rbm

import pgm_boltz as pb
from pgm_boltz.distributed import current_world, shard, split_counts
from pgm_boltz.training import register_objective

pytestmark = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32",
                                reason="needs torch.distributed with gloo")

WORLD = 2


def _data(n: int, n_v: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 2, size=(3, n_v))
    rows = protos[rng.integers(0, 3, size=n)]
    return np.where(rng.random(rows.shape) < 0.1, 1 - rows, rows).astype(np.float64)


def _params(model) -> list[torch.Tensor]:
    return [model.bias.detach().clone(), model.weight.detach().clone()]


# ---------------------------------------------------------------------------- cases
def case_exact(data_part, val_part, **kw):
    model = pb.compile(pb.graphs.rbm(6, 3), dtype=torch.float64, seed=0)
    h = model.fit(data_part, method="exact", epochs=8, lr=0.05, progress=False, seed=0,
                  validation_data=val_part, **kw)
    return _params(model), h


def case_saturated(data_part, method, **kw):
    model = saturated_rbm()
    extra = {"n_chains": 6} if method == "pcd" else {}
    h = model.fit(data_part, method=method, epochs=3, lr=0.01, batch_size=None,
                  momentum=0.9, weight_decay=0.05, init_bias="keep", progress=False,
                  seed=0, **extra, **kw)
    return _params(model), h


def case_pcd_fused(data_part):
    model = pb.compile(pb.graphs.rbm(8, 4), engine="block-gibbs", seed=0)
    h = model.fit(data_part, method="pcd", epochs=3, lr=0.1, batch_size=10, n_chains=15,
                  momentum=0.5, progress=False, seed=3)
    return _params(model), h, tuple(model.persistent_chains.shape)


def case_pcd_generic(data_part):
    model = pb.compile(pb.graphs.dbm([8, 4, 2]), engine="block-gibbs", seed=0)
    h = model.fit(data_part, method="pcd", epochs=2, lr=0.02, batch_size=10, n_chains=9,
                  optimizer="adam", progress=False, seed=1)
    return _params(model), h, tuple(model.persistent_chains.shape)


class _Plain:
    """A registered objective without data-parallel support."""

    def __init__(self, model, **kwargs):
        self.model = model


def case_errors(data_part):
    out = {}
    register_objective("plain-test", _Plain, replace=True)
    model = pb.compile(pb.graphs.rbm(8, 4), engine="block-gibbs", seed=0)
    try:
        model.fit(data_part, method="plain-test", epochs=1, progress=False)
    except pb.ArgumentError as err:
        out["plain"] = str(err)
    part = data_part if dist.get_rank() == 0 else data_part[:2]
    try:
        model.fit(part, method="cd", epochs=1, batch_size=5, progress=False)
    except pb.DataError as err:
        out["few_rows"] = str(err)
    try:
        model.fit(data_part, method="cd", epochs=1, batch_size=5, progress=False,
                  validation_data=data_part if dist.get_rank() == 0 else None)
    except pb.DataError as err:
        out["val_on_one_rank"] = str(err)
    # opting out: each rank trains alone on its own rows
    alone = pb.compile(pb.graphs.rbm(8, 4), seed=0, dtype=torch.float64)
    alone.fit(data_part, method="exact", epochs=2, progress=False, distributed=False)
    out["alone"] = _params(alone)
    return out


def _worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)
    os.environ["PGM_BOLTZ_PROGRESS"] = "0"
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank,
                            world_size=world)
    try:
        data41 = _data(41, 6, seed=0)
        val = _data(13, 6, seed=1)
        sat = _data(24, 5, seed=2)
        digits = _data(60, 8, seed=3)
        out = {
            "exact": case_exact(shard(data41), shard(val)),
            "sat_cd": case_saturated(shard(sat), "cd"),
            "sat_pcd": case_saturated(shard(sat), "pcd"),
            "pcd_fused": case_pcd_fused(shard(digits)),
            "pcd_generic": case_pcd_generic(shard(digits)),
            "errors": case_errors(shard(digits)),
            "rank": (pb.distributed.rank(), pb.distributed.world_size(),
                     pb.distributed.is_main()),
        }
        torch.save(out, f"{tmp}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(WORLD, str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


# ---------------------------------------------------------------------------- tests
def test_exact_training_on_parts_equals_training_on_all_rows(ranks):
    want_params, want_hist = case_exact(_data(41, 6, seed=0), _data(13, 6, seed=1))
    for out in ranks:
        got_params, got_hist = out["exact"]
        for g, w in zip(got_params, want_params):
            torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
        assert len(got_hist) == len(want_hist) == 8
        for g, w in zip(got_hist, want_hist):
            assert g["nll"] == pytest.approx(w["nll"], rel=1e-12)
            assert g["val_nll"] == pytest.approx(w["val_nll"], rel=1e-12)
    # and the training moved the parameters (the comparison is not of two starts)
    start = pb.compile(pb.graphs.rbm(6, 3), dtype=torch.float64, seed=0)
    assert not torch.allclose(want_params[1], start.weight.detach(), atol=1e-3)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_saturated_rbm_updates_equal_one_process(ranks, method):
    """Deterministic draws, full batches: the data-parallel fused updates (batch rows
    weighted by one over all ranks' rows, chains by one over all chains, summed by
    all_reduce) equal one process's updates on all rows with all chains, to rounding,
    momentum and weight decay included."""
    got = [out[f"sat_{method}"] for out in ranks]
    (p0, h0), (p1, h1) = got
    assert all(torch.equal(a, b) for a, b in zip(p0, p1)) and h0 == h1
    single, hist = case_saturated(_data(24, 5, seed=2), method, distributed=False)
    for g, w in zip(p0, single):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    assert h0[-1]["recon_error"] == pytest.approx(hist[-1]["recon_error"], rel=1e-12)
    start = saturated_rbm()
    assert (p0[1] - start.weight.detach()).abs().max() > 1e-3  # training moved W


def test_pcd_parameters_bitwise_identical_on_both_ranks(ranks):
    for case, chains in (("pcd_fused", (8, 12)), ("pcd_generic", None)):
        (p0, h0, c0), (p1, h1, c1) = (r[case] for r in ranks)
        assert all(torch.equal(a, b) for a, b in zip(p0, p1)), case
        assert h0 == h1, case
        assert np.isfinite(h0[-1]["recon_error"])
        if chains is not None:  # 15 chains split 8 + 7
            assert c0 == chains and c1 == (7, 12)
    # the two ranks drew different chains: their training differs from one rank alone
    (p0, _, _) = ranks[0]["pcd_fused"]
    alone = pb.compile(pb.graphs.rbm(8, 4), engine="block-gibbs", seed=0)
    alone.fit(shard(_data(60, 8, seed=3), 0, 2), method="pcd", epochs=3, lr=0.1,
              batch_size=10, n_chains=15, momentum=0.5, progress=False, seed=3)
    assert not torch.equal(alone.weight.detach(), p0[1])


def test_errors_and_opt_out(ranks):
    for r, out in enumerate(ranks):
        err = out["errors"]
        assert "does not support data-parallel" in err["plain"]
        assert "fewer than the" in err["few_rows"] and "rank 1" in err["few_rows"]
        assert "validation_data was given on ranks [0] only" in err["val_on_one_rank"]
        assert out["rank"] == (r, 2, r == 0)
    # distributed=False: each rank trained alone on its own part
    a0, a1 = ranks[0]["errors"]["alone"], ranks[1]["errors"]["alone"]
    assert not torch.equal(a0[1], a1[1])
    ref = pb.compile(pb.graphs.rbm(8, 4), seed=0, dtype=torch.float64)
    ref.fit(shard(_data(60, 8, seed=3), 0, 2), method="exact", epochs=2, progress=False)
    torch.testing.assert_close(a0[1], ref.weight.detach(), rtol=1e-12, atol=1e-12)


def test_shard_and_world_without_a_group():
    x = np.arange(14).reshape(7, 2)
    parts = [shard(x, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 2, 2]
    assert sorted(np.concatenate(parts)[:, 0].tolist()) == x[:, 0].tolist()
    assert torch.equal(shard(torch.arange(5), 1, 2), torch.tensor([1, 3]))
    assert shard([[1], [2], [3]], 0, 2) == [[1], [3]]
    assert split_counts(15, 2) == [8, 7]
    with pytest.raises(pb.ArgumentError, match="rank"):
        shard(x, 3, 3)
    with pytest.raises(pb.ArgumentError, match="world_size"):
        shard(x, 0, 0)
    with pytest.raises(pb.ArgumentError, match="cannot split"):
        shard(3.0, 0, 2)
    assert current_world(None, torch.device("cpu")) is None
    assert current_world(False, torch.device("cpu")) is None
    with pytest.raises(pb.ArgumentError, match="process group"):
        current_world(True, torch.device("cpu"))
    model = pb.compile(pb.graphs.rbm(3, 2), seed=0)
    with pytest.raises(pb.ArgumentError, match="process group"):
        model.fit([[0, 1, 1]], epochs=1, progress=False, distributed=True)
    with pytest.raises(pb.ArgumentError, match="distributed"):
        model.fit([[0, 1, 1]], epochs=1, progress=False, distributed="yes")
