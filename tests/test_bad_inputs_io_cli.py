"""Bad inputs to save / load and to the ``pgm-boltz`` command (issue 16: files and CLI).

Every case asserts the error class and that the message names the culprit: the file
path, the field of the file, or the command-line option.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
import torch

import pgm_boltz as pb
from pgm_boltz import cli
from pgm_boltz.errors import ArgumentError, FileError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model() -> pb.BoltzmannMachine:
    """A small trained model (so the file has a history and visible_init)."""
    m = pb.compile(pb.graphs.rbm(3, 2), dtype=torch.float64, seed=0)
    m.fit([[0, 1, 1], [1, 1, 0]], method="exact", epochs=2, progress=False, seed=0)
    return m


@pytest.fixture()
def saved(tmp_path, model) -> Path:
    path = tmp_path / "model.pt"
    pb.save(model, path)
    return path


def quoted(path: object) -> str:
    """The path as messages show it (its repr), escaped for ``pytest.raises(match=)``."""
    return re.escape(repr(str(path)))


def same_params(a: pb.BoltzmannMachine, b: pb.BoltzmannMachine) -> bool:
    return a.nodes == b.nodes and torch.equal(a.bias, b.bias) and torch.equal(a.weight, b.weight)


# ------------------------------------------------------------------ save: paths


def test_hierarchy() -> None:
    assert issubclass(FileError, pb.DataError) and issubclass(FileError, pb.PgmBoltzError)
    assert issubclass(ArgumentError, pb.PgmBoltzError)
    assert not issubclass(ArgumentError, pb.DataError)


def test_save_to_a_directory(tmp_path, model) -> None:
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(FileError, match=quoted(tmp_path) + ".*is a directory.*model.pt"):
        pb.save(model, tmp_path)
    assert sorted(os.listdir(tmp_path)) == before and tmp_path.is_dir()


def test_save_to_a_path_ending_with_a_separator(tmp_path, model) -> None:
    target = str(tmp_path / "newdir") + os.sep
    with pytest.raises(FileError, match=re.escape(repr(target)) + ".*ends with a separator"):
        pb.save(model, target)
    assert not os.path.exists(target)


def test_save_into_a_missing_directory(tmp_path, model) -> None:
    target = tmp_path / "no" / "m.pt"
    with pytest.raises(FileError, match=quoted(tmp_path / "no") + " does not exist"):
        pb.save(model, target)


def test_save_below_a_regular_file(tmp_path, model) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileError, match=quoted(tmp_path / "file") + " is not a directory"):
        pb.save(model, tmp_path / "file" / "m.pt")
    assert (tmp_path / "file").read_text() == "x"


def test_save_to_a_named_pipe_is_refused(tmp_path, model) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FileError, match=quoted(fifo) + ".*a named pipe, not a regular file"):
        pb.save(model, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_save_to_a_socket_is_refused(tmp_path, model) -> None:
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.bind(str(path))
        except OSError as err:  # a too long socket path on some systems
            pytest.skip(f"cannot make a socket here: {err}")
        with pytest.raises(FileError, match=quoted(path) + ".*a socket"):
            pb.save(model, path)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_save_to_a_device_is_refused(model) -> None:
    with pytest.raises(FileError, match=r"'/dev/null'.*a character device"):
        pb.save(model, "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_save_into_an_unwritable_directory(model) -> None:
    # /sys refuses new files even to root
    with pytest.raises(FileError, match=r"'/sys/m\.pt'.*cannot create a file in directory "
                                        r"'/sys' \(permission denied\)"):
        pb.save(model, "/sys/m.pt")


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root writes into read-only directories")
def test_save_into_a_read_only_directory(tmp_path, model) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(FileError, match=quoted(ro) + r" \(permission denied\)"):
            pb.save(model, ro / "m.pt")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("bad", [42, None, 3.5, ["m.pt"], object()])
def test_save_with_a_path_that_is_not_a_path(model, bad) -> None:
    with pytest.raises(ArgumentError, match=r"save: path must be a str or os\.PathLike.*got "
                                            + type(bad).__name__):
        pb.save(model, bad)


def test_save_with_an_empty_path(model) -> None:
    with pytest.raises(ArgumentError, match="save: path is empty"):
        pb.save(model, "")


def test_save_with_a_nul_in_the_path(model, tmp_path) -> None:
    with pytest.raises(ArgumentError, match=r"save: path .* contains a NUL character"):
        pb.save(model, str(tmp_path / "a\0b.pt"))


def test_save_and_load_expand_the_home_folder(tmp_path, model, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    pb.save(model, "~/home.pt")
    assert (tmp_path / "home.pt").is_file() and not (tmp_path / "~").exists()
    assert same_params(pb.load("~/home.pt"), model)
    assert same_params(pb.load(Path("~") / "home.pt"), model)
    with pytest.raises(FileError, match=quoted(tmp_path / "absent.pt")):
        pb.load("~/absent.pt")  # messages show the expanded path


def test_bytes_paths_work(tmp_path, model) -> None:
    pb.save(model, os.fsencode(tmp_path / "b.pt"))
    assert same_params(pb.load(os.fsencode(tmp_path / "b.pt")), model)


# ------------------------------------------------------------------ save: mode, links, failure


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664),
                                        (0o077, 0o600)])
def test_new_file_mode_follows_the_umask(tmp_path, model, mask, mode) -> None:
    old = os.umask(mask)
    try:
        pb.save(model, tmp_path / "m.pt")
        with open(tmp_path / "plain", "wb"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m.pt").st_mode) == mode
    assert stat.S_IMODE(os.stat(tmp_path / "plain").st_mode) == mode


def test_overwritten_file_keeps_its_mode(tmp_path, model) -> None:
    path = tmp_path / "m.pt"
    pb.save(model, path)
    path.chmod(0o640)
    pb.save(pb.compile(pb.graphs.rbm(2, 2), seed=1), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert pb.load(path).nodes == ["v0", "v1", "h0", "h1"]


def test_save_over_a_read_only_file_is_refused(tmp_path, model, monkeypatch) -> None:
    path = tmp_path / "frozen.pt"
    pb.save(pb.compile(pb.graphs.rbm(2, 2), seed=1), path)
    path.chmod(0o444)
    before = path.read_bytes()
    if os.geteuid() == 0:  # root may write anything: act as a user who may not
        real_access = os.access
        monkeypatch.setattr(pb.io.os, "access", lambda p, m: (
            False if str(p) == str(path) and m == os.W_OK else real_access(p, m)))
    with pytest.raises(FileError, match=quoted(path) + r": the file is read-only \(mode 444\)"):
        pb.save(model, path)
    assert path.read_bytes() == before and stat.S_IMODE(os.stat(path).st_mode) == 0o444


def test_save_through_a_symlink_writes_its_target_and_keeps_the_link(tmp_path, model) -> None:
    target = tmp_path / "runs" / "model.pt"
    target.parent.mkdir()
    pb.save(pb.compile(pb.graphs.rbm(2, 2), seed=1), target)
    link = tmp_path / "latest.pt"
    link.symlink_to(target)
    chain = tmp_path / "chain.pt"  # a link to a link
    chain.symlink_to(link)
    pb.save(model, chain)
    assert link.is_symlink() and chain.is_symlink()
    assert os.readlink(chain) == str(link) and os.readlink(link) == str(target)
    assert same_params(pb.load(target), model)
    assert sorted(os.listdir(target.parent)) == ["model.pt"]  # no temporary file left


def test_save_to_a_dangling_symlink_is_refused(tmp_path, model) -> None:
    link = tmp_path / "dangling.pt"
    link.symlink_to(tmp_path / "nowhere" / "m.pt")
    with pytest.raises(FileError, match=quoted(link) + ".*symbolic link to "
                                        + quoted(tmp_path / "nowhere" / "m.pt")
                                        + ", which does not exist"):
        pb.save(model, link)
    assert link.is_symlink()


def test_save_to_a_symlink_loop_is_refused(tmp_path, model) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(FileError, match=quoted(a) + ".*cannot be followed"):
        pb.save(model, a)
    assert a.is_symlink() and b.is_symlink()


def test_save_to_a_symlink_to_a_directory_is_refused(tmp_path, model) -> None:
    (tmp_path / "d").mkdir()
    link = tmp_path / "dlink"
    link.symlink_to(tmp_path / "d")
    with pytest.raises(FileError, match=quoted(link) + r" \(a link to "
                                        + quoted(tmp_path / "d") + r"\): it is a directory"):
        pb.save(model, link)
    assert link.is_symlink()


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, model, monkeypatch):
    path = tmp_path / "m.pt"
    pb.save(model, path)
    before = path.read_bytes()

    def full_disk(obj, fh, *a, **k):
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pb.io.torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        pb.save(pb.compile(pb.graphs.rbm(2, 2)), path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.pt"]


# ------------------------------------------------------------------ load: paths and devices


def test_load_a_missing_file(tmp_path) -> None:
    with pytest.raises(FileError, match="no model file at " + quoted(tmp_path / "x.pt")):
        pb.load(tmp_path / "x.pt")


def test_load_a_directory(tmp_path) -> None:
    with pytest.raises(FileError, match=quoted(tmp_path) + ": it is a directory"):
        pb.load(tmp_path)


def test_load_a_named_pipe_does_not_block(tmp_path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FileError, match=quoted(fifo) + ": it is a named pipe"):
        pb.load(fifo)


def test_load_a_device(tmp_path) -> None:
    with pytest.raises(FileError, match="'/dev/null': it is a character device"):
        pb.load("/dev/null")


def test_load_a_dangling_symlink(tmp_path) -> None:
    link = tmp_path / "l.pt"
    link.symlink_to(tmp_path / "gone.pt")
    with pytest.raises(FileError, match=quoted(link) + ".*symbolic link to "
                                        + quoted(tmp_path / "gone.pt")):
        pb.load(link)


def test_load_through_a_symlink(saved, model, tmp_path) -> None:
    link = tmp_path / "link.pt"
    link.symlink_to(saved)
    assert same_params(pb.load(link), model)


def test_load_a_text_file(tmp_path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("weights: 0.1 0.2 0.3\n")
    with pytest.raises(FileError, match=quoted(path) + " is not a readable pgm_boltz model "
                                        "file: it is a text file .*'weights: 0.1"):
        pb.load(path)


def test_load_an_empty_file(tmp_path) -> None:
    path = tmp_path / "empty.pt"
    path.touch()
    with pytest.raises(FileError, match=quoted(path) + ".*it is empty"):
        pb.load(path)


def test_load_binary_garbage(tmp_path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(FileError, match=quoted(path) + r".*torch.load cannot read it as plain "
                                        r"data \(.+\)$"):
        pb.load(path)


def test_load_a_torch_file_holding_objects(tmp_path) -> None:
    path = tmp_path / "obj.pt"
    torch.save({"format": "pgm_boltz/1", "g": nx.Graph()}, path)
    with pytest.raises(FileError, match=quoted(path) + r".*Python objects \(networkx\.classes"
                                        r"\.graph\.Graph\) .* refuses to unpickle"):
        pb.load(path)


@pytest.mark.parametrize("bad", [7, None, b"", 1.0])
def test_load_with_a_path_that_is_not_a_path(bad) -> None:
    if bad is None or isinstance(bad, (int, float)):
        with pytest.raises(ArgumentError, match="load: path must be a str or os.PathLike.*got "
                                                + type(bad).__name__):
            pb.load(bad)
    else:
        with pytest.raises(ArgumentError, match="load: path is empty"):
            pb.load(bad)


def test_load_on_cuda_without_cuda(saved, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", torch.device("cuda:0")):
        with pytest.raises(ArgumentError, match=r"load: device='cuda(:0)?'.*no CUDA device"):
            pb.load(saved, device=device)


def test_load_on_a_cuda_index_that_does_not_exist(saved, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ArgumentError, match=r"load: device='cuda:3' does not exist.*1 CUDA"):
        pb.load(saved, device="cuda:3")


@pytest.mark.parametrize("device, match", [
    ("gpu", r"device='gpu' is not a device torch knows"),
    ("cuda:x", r"device='cuda:x' is not a device torch knows"),
    ("meta", r"device type 'meta' is not supported"),
    (0, r"device must be None, a str .* got int 0"),
    (["cpu"], r"device must be None, a str .* got list"),
])
def test_load_with_a_bad_device(saved, device, match) -> None:
    with pytest.raises(ArgumentError, match=match):
        pb.load(saved, device=device)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_load_on_cuda(saved, model) -> None:
    loaded = pb.load(saved, device="cuda")
    assert loaded.bias.device.type == "cuda" and loaded.visible_init.device.type == "cuda"
    assert torch.equal(loaded.bias.cpu(), model.bias) and loaded.history == model.history
    with pytest.raises(ArgumentError, match="does not exist"):
        pb.load(saved, device=f"cuda:{torch.cuda.device_count()}")


def test_load_on_cpu_explicitly(saved, model) -> None:
    assert same_params(pb.load(saved, device=torch.device("cpu")), model)


# ------------------------------------------------------------------ load: fields


def tamper(saved: Path, tmp_path: Path, change) -> Path:
    state = torch.load(saved, weights_only=True)
    change(state)
    out = tmp_path / "tampered.pt"
    torch.save(state, out)
    return out


def setter(key, value):
    def change(state):
        state[key] = value(state) if callable(value) else value
    return change


def deleter(*keys):
    def change(state):
        for k in keys:
            del state[k]
    return change


FIELD_CASES = [
    ("missing bias", deleter("bias"), r"lacks field 'bias'"),
    ("missing two", deleter("nodes", "dtype"), r"lacks fields 'nodes', 'dtype'"),
    ("bias short", setter("bias", lambda s: s["bias"][:-1]),
     r"field 'bias' has shape \(4,\); the file's 5 nodes need shape \(5,\)"),
    ("bias 2-D", setter("bias", lambda s: s["bias"][None]), r"field 'bias' has shape \(1, 5\)"),
    ("bias ints", setter("bias", lambda s: s["bias"].long()),
     r"field 'bias' must be a floating-point tensor, got dtype torch.int64"),
    ("bias list", setter("bias", lambda s: s["bias"].tolist()),
     r"field 'bias' must be a floating-point tensor, got list"),
    ("bias nan", setter("bias", lambda s: s["bias"].index_fill(0, torch.tensor([2]), float("nan"))),
     r"field 'bias' holds non-finite values .* entries \[2\]"),
    ("weight long", setter("weight", lambda s: torch.cat([s["weight"], s["weight"]])),
     r"field 'weight' has shape \(12,\); the file's 6 edges need shape \(6,\)"),
    ("weight inf", setter("weight", lambda s: s["weight"] / 0), r"field 'weight' holds non-finite"),
    ("edges float", setter("edges", lambda s: s["edges"].double()),
     r"field 'edges' must be an integer tensor, got dtype torch.float64"),
    ("edges list", setter("edges", lambda s: s["edges"].tolist()),
     r"field 'edges' must be an integer tensor of shape \(n_edges, 2\), got list"),
    ("edges shape", setter("edges", lambda s: s["edges"].t()),
     r"field 'edges' must have shape \(n_edges, 2\), got \(2, 6\)"),
    ("edges range", setter("edges", lambda s: s["edges"].index_fill(0, torch.tensor([1]), 9)),
     r"field 'edges' row 1 is \(9, 9\), outside the file's 5 nodes"),
    ("edges loop", setter("edges", lambda s: torch.cat([s["edges"][:, :1]] * 2, 1)),
     r"field 'edges' row 0 joins node 'v0' to itself"),
    ("edges twice", setter("edges", lambda s: s["edges"][[0, 0, 1, 2, 3, 4]]),
     r"field 'edges' rows 0 and 1 both join"),
    ("edge_attrs short", setter("edge_attrs", lambda s: s["edge_attrs"][:2]),
     r"field 'edge_attrs' has 2 entries for the file's 6 edges"),
    ("node_attrs short", setter("node_attrs", lambda s: s["node_attrs"][:4]),
     r"field 'node_attrs' has 4 entries for the file's 5 nodes"),
    ("node_attrs entry", setter("node_attrs", lambda s: [*s["node_attrs"][:4], "visible"]),
     r"field 'node_attrs' entry 4 is str 'visible', not a dict"),
    ("node_attrs value", setter("node_attrs", lambda s: [{"role": ["visible"]}] * 5),
     r"field 'node_attrs' entry 0: 'role' is list"),
    ("nodes not list", setter("nodes", "v0 v1"), r"field 'nodes' must be a non-empty list"),
    ("nodes empty", setter("nodes", []), r"field 'nodes' must be a non-empty list"),
    ("nodes twice", setter("nodes", ["a", "b", "a", "c", "d"]),
     r"field 'nodes' names node 'a' twice \(entries 0 and 2\)"),
    ("nodes encoding", setter("nodes", lambda s: [{"set": [1]}, *s["nodes"][1:]]),
     r"field 'nodes' entry 0: \{'set': \[1\]\} is not an encoded node name"),
    ("dtype unknown", setter("dtype", "float128"), r"field 'dtype' is 'float128', not a torch"),
    ("dtype int", setter("dtype", "int64"), r"field 'dtype' is 'int64', not a torch floating"),
    ("dtype attr", setter("dtype", "nn"), r"field 'dtype' is 'nn'"),
    ("dtype type", setter("dtype", 64), r"field 'dtype' must be a string .* got int 64"),
    ("max states", setter("max_exact_states", 0), r"field 'max_exact_states' must be a posi"),
    ("max states bool", setter("max_exact_states", True), r"field 'max_exact_states'.*bool"),
    ("max states str", setter("max_exact_states", "4096"), r"field 'max_exact_states'.*str"),
    ("storage type", setter("storage", 3), r"field 'storage' must be a str, got int 3"),
    ("engine type", setter("requested_engine", None), r"field 'requested_engine' must be a str"),
    ("engine value", setter("requested_engine", "warp"),
     r"no longer compiles: unknown engine 'warp'.*requested_engine='warp'"),
    ("storage value", setter("storage", "holographic"),
     r"no longer compiles: unknown storage 'holographic'.*storage='holographic'"),
    ("history", setter("history", {"epoch": 1}), r"field 'history' must be a list of dicts"),
    ("history entry", setter("history", [{"nll": [1.0]}]), r"field 'history' entry 0: 'nll'"),
    ("visible_init", setter("visible_init", lambda s: s["visible_init"][:2]),
     r"field 'visible_init' has shape \(2,\); the model's 3 visible nodes need shape \(3,\)"),
    ("visible_init ints", setter("visible_init", lambda s: s["visible_init"].long()),
     r"field 'visible_init' must be a floating-point tensor"),
    ("role", setter("node_attrs", lambda s: [{**a, "role": "x"} for a in s["node_attrs"]]),
     r"no longer compiles: node 'v0' has unknown role 'x'"),
]


@pytest.mark.parametrize("change, match", [c[1:] for c in FIELD_CASES],
                         ids=[c[0] for c in FIELD_CASES])
def test_load_a_file_with_a_bad_field(saved, tmp_path, change, match) -> None:
    path = tamper(saved, tmp_path, change)
    with pytest.raises(FileError, match=quoted(path) + ".*" + match):
        pb.load(path)


def test_tamper_helper_round_trips(saved, tmp_path, model) -> None:
    """The untouched state reloads: the failures above come from the change alone."""
    assert same_params(pb.load(tamper(saved, tmp_path, lambda s: None)), model)


@pytest.mark.parametrize("state, match", [
    ([1, 2, 3], r"not a pgm_boltz model file: it holds list"),
    ({"format": "other"}, r"not a pgm_boltz model file \(format 'other'\)"),
    ({"bias": torch.zeros(3)}, r"not a pgm_boltz model file \(format None\)"),
    ({"format": "pgm_boltz/2"}, r"format 'pgm_boltz/2', which this version cannot read"),
])
def test_load_plain_data_that_is_not_a_model(tmp_path, state, match) -> None:
    path = tmp_path / "x.pt"
    torch.save(state, path)
    with pytest.raises(FileError, match=quoted(path) + ".*" + match):
        pb.load(path)


# ------------------------------------------------------------------ CLI, in-process


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_cli_version(capsys) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"pgm-boltz {pb.__version__}"


@pytest.mark.parametrize("argv, match", [
    (["seed", "--epochs", "-5"], r"argument --epochs: must be at least 1, got -5"),
    (["seed", "--epochs", "0"], r"argument --epochs: must be at least 1, got 0"),
    (["seed", "--epochs", "2.5"], r"argument --epochs: expected a positive whole number, "
                                  r"got '2.5'"),
    (["demo", "--epochs", "abc"], r"argument --epochs: expected a positive whole number"),
    (["demo", "--epochs", "0"], r"argument --epochs: must be at least 1, got 0"),
    (["demo", "--out", ""], r"argument --out: is empty"),
    (["demo", "--bogus"], r"unrecognized arguments: --bogus"),
    (["plan"], r"the following arguments are required: GRAPH"),
    (["plan", "missing.graphml"], r"argument GRAPH: no such file 'missing.graphml'"),
    (["fly"], r"argument COMMAND: invalid choice: 'fly'"),
    ([], r"the following arguments are required: COMMAND"),
])
def test_cli_usage_errors_exit_2(capsys, argv, match) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert re.search(match, err), err
    assert err.startswith("usage: pgm-boltz")


def test_cli_out_that_is_a_file(capsys, tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    code, _, err = run_cli(capsys, "demo", "--out", str(tmp_path / "f"))
    assert code == 2
    assert f"argument --out: {str(tmp_path / 'f')!r} exists and is not a folder" in err


def test_cli_plan_of_a_folder(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "plan", str(tmp_path))
    assert code == 2 and f"argument GRAPH: {str(tmp_path)!r} is a folder" in err


@pytest.fixture()
def graph_file(tmp_path) -> Path:
    path = tmp_path / "g.graphml"
    nx.write_graphml(pb.graphs.rbm(3, 2), path)
    return path


def test_cli_plan_with_a_bad_engine(capsys, graph_file) -> None:
    code, _, err = run_cli(capsys, "plan", str(graph_file), "--engine", "warp")
    assert code == 2 and "argument --engine: invalid choice: 'warp'" in err


def test_cli_plan_of_a_good_file(capsys, graph_file) -> None:
    code, out, err = run_cli(capsys, "plan", str(graph_file), "--engine", "block-gibbs")
    assert code == 0 and err == ""
    assert out.startswith("Plan: engine=block-gibbs")


def test_cli_plan_of_a_text_file(capsys, tmp_path) -> None:
    path = tmp_path / "g.graphml"
    path.write_text("not xml at all")
    code, _, err = run_cli(capsys, "plan", str(path))
    assert code == 2
    assert err.startswith(f"pgm-boltz plan: error: cannot read {str(path)!r} as a GraphML")
    assert len(err.strip().splitlines()) == 1


def test_cli_plan_of_a_graph_that_does_not_compile(capsys, tmp_path) -> None:
    G = pb.graphs.rbm(2, 1)
    G.nodes["v1"]["role"] = "observer"
    path = tmp_path / "bad.graphml"
    nx.write_graphml(G, path)
    code, _, err = run_cli(capsys, "plan", str(path))
    assert code == 2
    assert f"the graph in {str(path)!r} does not compile" in err
    assert "node 'v1' has unknown role 'observer'" in err


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root reads unreadable files")
def test_cli_plan_of_an_unreadable_file(capsys, graph_file) -> None:
    graph_file.chmod(0)
    try:
        code, _, err = run_cli(capsys, "plan", str(graph_file))
    finally:
        graph_file.chmod(0o644)
    assert code == 2 and str(graph_file) in err and "ermission denied" in err


@pytest.mark.parametrize("raised, code, match", [
    (pb.DivergenceError("training produced nan at epoch 3"), 1,
     r"^pgm-boltz demo: error: training produced nan at epoch 3$"),
    (PermissionError(13, "Permission denied", "/x/digits_samples.png"), 1,
     r"^pgm-boltz demo: error: Permission denied: '/x/digits_samples.png'$"),
    (ModuleNotFoundError("No module named 'sklearn'", name="sklearn"), 1,
     r"needs the package 'sklearn'.*pgm-boltz\[examples\]"),
    (KeyboardInterrupt(), 130, r"^pgm-boltz demo: interrupted$"),
])
def test_cli_failures_during_the_work(capsys, tmp_path, monkeypatch, raised, code, match):
    import pgm_boltz.demo

    def run_demo(**kwargs):
        raise raised

    monkeypatch.setattr(pgm_boltz.demo, "run_demo", run_demo)
    got, out, err = run_cli(capsys, "demo", "--out", str(tmp_path / "figs"), "--quick")
    assert got == code
    assert re.search(match, err.strip()), err


def test_cli_demo_passes_its_options(capsys, tmp_path, monkeypatch) -> None:
    import pgm_boltz.demo

    seen = {}
    monkeypatch.setattr(pgm_boltz.demo, "run_demo", lambda **kw: seen.update(kw) or 0)
    monkeypatch.setenv("HOME", str(tmp_path))
    code, _, _ = run_cli(capsys, "demo", "--out", "~/figs", "--epochs", "3")
    assert code == 0
    assert seen == {"out": str(tmp_path / "figs"), "epochs": 3, "quick": False}
    assert (tmp_path / "figs").is_dir()  # made before training starts


def test_cli_help_is_plain_and_complete(capsys) -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parsers = {"": parser, **sub.choices}
    assert set(sub.choices) == {"demo", "seed", "plan"}
    for choice in sub._choices_actions:
        assert choice.help, f"subcommand {choice.dest} has no help"
    for name, p in parsers.items():
        for action in p._actions:
            if action is sub:
                continue
            assert action.help, f"{name or 'pgm-boltz'}: {action.option_strings or action.dest}"
        code, out, err = run_cli(capsys, *([name] if name else []), "--help")
        assert code == 0 and err == ""
        assert "``" not in out and "\x1b" not in out
        assert out.startswith(f"usage: pgm-boltz{' ' + name if name else ''}")


# ------------------------------------------------------------------ CLI, as a process


def run_process(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pgm_boltz.cli", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_process_bad_epochs_exits_2_without_traceback() -> None:
    proc = run_process("seed", "--epochs", "-5")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert "argument --epochs: must be at least 1, got -5" in proc.stderr


def test_process_bad_graph_file_exits_2_without_traceback(tmp_path) -> None:
    path = tmp_path / "g.graphml"
    path.write_bytes(b"\x00\xff garbage")
    proc = run_process("plan", str(path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"cannot read {str(path)!r} as a GraphML file" in proc.stderr


def test_process_version() -> None:
    proc = run_process("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"pgm-boltz {pb.__version__}"
