"""The wsc command: inspect, decompress, evaluate, compress; clear errors and exit codes."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import safetensors.torch
import torch

import wsc
from wsc.cli import main

from pipeline_fixtures import DigitsMLP, resave


@pytest.fixture(scope="module")
def wsc_file(trained_mlp, digits_eval, tmp_path_factory):
    r = wsc.compress(copy.deepcopy(trained_mlp), digits_eval, k_range=(2, 32), pop_size=6, generations=3,
                     progress=False)
    path = tmp_path_factory.mktemp("cli") / "mlp.wsc"
    r.save(path)
    return path


def test_inspect_text_and_json(wsc_file, capsys):
    assert main(["inspect", str(wsc_file)]) == 0
    out = capsys.readouterr().out
    assert "checksums: all ok" in out and "fc1.weight" in out and "honest" in out and "paper-style" in out
    assert main(["inspect", str(wsc_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == json.loads(json.dumps(wsc.inspect(wsc_file)))


def test_inspect_reports_a_bad_checksum_with_exit_code_1(wsc_file, tmp_path, capsys):
    from wsc import container

    meta, tensors, _, _ = container._read_raw(wsc_file)
    tensors["data"][3] ^= 0xFF
    bad = tmp_path / "bad.wsc"
    bad.write_bytes(resave(meta, tensors))
    assert main(["inspect", str(bad)]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    assert main(["decompress", str(bad), "-o", str(tmp_path / "x.safetensors")]) == 1
    assert "checksum mismatch" in capsys.readouterr().err


def test_decompress_writes_the_restored_state_dict(wsc_file, tmp_path, capsys):
    out = tmp_path / "restored.safetensors"
    assert main(["decompress", str(wsc_file), "-o", str(out)]) == 0
    restored = safetensors.torch.load_file(out)
    expect = wsc.load_state_dict(wsc_file)
    assert restored.keys() == expect.keys()
    assert all(torch.equal(restored[k], expect[k]) for k in expect)
    DigitsMLP().load_state_dict(restored)


@pytest.mark.parametrize("argv, message", [
    ([], "required"),
    (["compress", "--pop-size", "1"], "population of at least 2"),
    (["compress", "--k-max", "70000"], "[2, 65536]"),
    (["compress", "--tolerance", "5"], "[0, 1)"),
    (["compress", "--generations", "x"], "positive integer"),
    (["compress", "--metric", "auc"], "invalid choice"),
    (["compress", "--params", "biases"], "invalid choice"),
    (["compress", "--coder", "zstd"], "invalid choice"),
    (["compress", "--codebook", "lloyd"], "invalid choice"),
    (["compress", "--confidence", "1.5"], "confidence"),
    (["decompress", "f.wsc"], "-o/--output"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_options_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_runtime_errors_are_one_line_without_traceback(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing.wsc")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("wsc inspect: error:") and "Traceback" not in err and err.count("\n") == 1
    junk = tmp_path / "junk.wsc"
    junk.write_bytes(b"\x00" * 64)
    assert main(["inspect", str(junk)]) == 1
    assert "wsc inspect: error:" in capsys.readouterr().err


def test_python_dash_m(wsc_file):
    proc = subprocess.run([sys.executable, "-m", "wsc", "inspect", str(wsc_file), "--json"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["codebook_size"] >= 1


FMNIST = "/usr/share/datasets/fashion-mnist"
needs_fmnist = pytest.mark.skipif(not os.path.isdir(FMNIST), reason="Debian package dataset-fashion-mnist not installed")
QUICK = ["--search-size", "300", "--heldout-size", "400", "--pop-size", "4", "--generations", "2",
         "--k-max", "24", "--seed", "1"]


@needs_fmnist
def test_compress_default_model_then_evaluate_reproduces_the_report(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compress", *QUICK, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "<- chosen" in captured.out and "honest" in captured.out
    assert "search  generation   2/2" in captured.err and "measure" in captured.err
    report = json.loads((out / "report.json").read_text())
    assert sorted(os.listdir(out)) == ["evaluations.json", "model.wsc", "pareto.png", "report.json"]
    assert os.path.getsize(out / "model.wsc") == report["chosen"]["file_bytes"]
    assert report["model"].startswith("lenet5-fmnist") and report["data"] == "fashion-mnist"
    args = ["evaluate", "--wsc", str(out / "model.wsc"), "--search-size", "300", "--heldout-size", "400",
            "--seed", "1", "--json"]
    assert main(args) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["heldout"] == report["chosen"]["heldout_score"]
    assert scores["search"] == report["chosen"]["search_score"]


@needs_fmnist
def test_compress_json_and_quiet(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr("wsc.heap.keep_freed_memory", lambda: calls.append(1) or True)
    assert main(["compress", "--model", "lenet300-fmnist", *QUICK, "--no-merge", "--json",
                 "--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert captured.err == "" and report["front_after_merge"] == [] and report["settings"]["merge"] is False
    assert report["settings"]["coder"] == "auto"
    # by default 1,024 training images calibrate GPTQ compensation of the three Linear weights
    assert report["settings"]["compensated"] == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert report["front_compensated"] and all(s["compensated"] for s in report["front_compensated"])
    assert report["settings"]["compensate"] == "search"  # GPTQ is one of the search's choices
    assert calls  # the CLI keeps freed memory for the evaluations (wsc.heap)
    assert main(["compress", "--model", "lenet300-fmnist", *QUICK, "--no-merge", "--json", "--compensate", "front",
                 "--out", str(tmp_path / "f")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["compensate"] == "front" and report["front_compensated"]
    assert not any(s["compensated"] for s in report["front_before_merge"])  # the search rounded to the bins
    assert main(["compress", "--model", "lenet300-fmnist", *QUICK, "--quiet", "--coder", "rans",
                 "--calibration", "0", "--out", str(tmp_path / "b")]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["settings"]["compensated"] == [] and report["front_compensated"] == []
    info = wsc.inspect(tmp_path / "b" / "model.wsc")
    assert info["coder"] == "rans" and set(info["coders"]) == {"rans"}
    assert main(["inspect", str(tmp_path / "b" / "model.wsc")]) == 0
    assert "coder rans (" in capsys.readouterr().out


@needs_fmnist
def test_compress_method_options(tmp_path, capsys):
    base = ["compress", "--model", "lenet300-fmnist", *QUICK, "--json"]
    assert main([*base, "--paper", "--out", str(tmp_path / "p")]) == 0
    s = json.loads(capsys.readouterr().out)["settings"]
    assert (s["codebook"], s["clip"], s["steps"], s["size"], s["confidence"], s["merge"]) == (
        "uniform", False, False, "values", None, True)
    assert s["compensated"] == []  # the paper's method rounds to the bins
    assert s["stored"] == "exact"  # bit for bit
    assert all(e["stored_as"] == e["dtype"] for e in wsc.inspect(tmp_path / "p" / "model.wsc")["stored"])
    assert main([*base, "--codebook", "normalized", "--scale", "tensor", "--no-clip", "--no-steps",
                 "--confidence", "0.9", "--out", str(tmp_path / "n")]) == 0
    report = json.loads(capsys.readouterr().out)
    s = report["settings"]
    assert (s["codebook"], s["scale"], s["clip"], s["confidence"], s["merge"]) == ("normalized", "tensor", False,
                                                                                   0.9, "within")
    assert {r["scheme"]["scope"] for r in report["front_before_merge"]} == {"tensor"}
    assert {r["scheme"]["clip"] for r in report["front_before_merge"]} == {0}
    assert s["steps"] is False and not any("steps" in r["scheme"] for r in report["front_before_merge"])
    assert wsc.inspect(tmp_path / "n" / "model.wsc")["shared"][0]["scales"] == 1
    assert s["stored"] == "compact"  # biases of 300 and 100 values as 8-bit codes, that of 10 in float16
    assert {e["name"]: e["stored_as"] for e in wsc.inspect(tmp_path / "n" / "model.wsc")["stored"]} == {
        "fc1.bias": "uint8", "fc2.bias": "uint8", "fc3.bias": "float16"}
    assert main([*base, "--paper", "--stored", "compact", "--out", str(tmp_path / "c")]) == 0
    assert json.loads(capsys.readouterr().out)["settings"]["stored"] == "compact"


@pytest.mark.parametrize("argv, message", [
    (["compress", "--model", "no.such.module:factory", "--data", "fashion-mnist"], "wsc compress: error:"),
    (["compress", "--model", "wsc.zoo:LeNet5"], "--data is needed"),
    (["compress", "--weights", "w.safetensors"], "--weights needs --model"),
    (["compress", "--k-min", "50", "--k-max", "10"], "--k-min 50 is larger than --k-max 10"),
    (["compress", "--data", "cifar10:/nonexistent"], "wsc compress: error:"),
    (["evaluate", "--wsc", "/nonexistent.wsc"], "wsc evaluate: error:"),
])
def test_compress_runtime_errors(argv, message, tmp_path, capsys):
    assert main([*argv, *(["--out", str(tmp_path)] if argv[0] == "compress" else [])]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@needs_fmnist
def test_the_front_re_encodes_with_each_coder(tmp_path, capsys):
    """bench/reencode_front.py rebuilds every solution of a report (merged, with step levels,
    compact storage) and writes it with each coder: the run's own coder gives the run's bytes;
    the solutions GPTQ placed are listed as skipped, each once."""
    import importlib.util

    assert main(["compress", "--model", "lenet300-fmnist", *QUICK, "--tolerance", "0.05", "--calibration", "64",
                 "--quiet", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    spec = importlib.util.spec_from_file_location("reencode_front", os.path.join(
        os.path.dirname(__file__), "..", "bench", "reencode_front.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main([str(tmp_path / "report.json")])
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    final = {json.dumps(s, sort_keys=True): s for s in
             (report["front_after_merge"] or report["front_before_merge"]) + report["front_compensated"]}
    plain = [s for s in final.values() if not s["compensated"]]
    assert any(s["merged"] and any(s["scheme"].get("steps", [])) for s in plain)  # what the rebuild must redo
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    skipped = [line for line in out.splitlines() if "placed by GPTQ" in line]
    assert len(rows) == len(plain) >= 1 and len(skipped) == len(final) - len(plain) >= 1
    assert "re-encoded to" not in out
    for sol, row in zip(plain, rows):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == str(sol["values"]) and cells[9].split(" ")[0] == f"{sol['file_bytes']:,}"  # `auto`: the run's coder


@needs_fmnist
def test_compress_with_a_selection_split(tmp_path, capsys):
    """--select-size sets that many of the rest apart: the final solutions within the bar on
    the search split are scored there, and the choice keeps the bar there too."""
    assert main(["compress", "--model", "lenet300-fmnist", *QUICK, "--select-size", "200", "--calibration", "0",
                 "--tolerance", "0.05", "--json", "--out", str(tmp_path / "a")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["evaluator"]["select_examples"] == 200 and report["evaluator"]["heldout_examples"] == 400
    front = report["front_after_merge"] or report["front_before_merge"]
    scored = [s for s in front if "select_bound" in s]
    assert len(scored) == report["settings"]["select_evaluations"] >= 1
    assert all(s["search_bound"] <= 0.05 for s in scored)
    assert all("select_bound" in s for s in front if s["search_bound"] <= 0.05)
    if report["chosen"]["within_tolerance"]:
        assert report["chosen"]["select_bound"] <= 0.05
    else:  # none keeps the bar on both splits: the scored one that drops least on the selection split
        assert report["chosen"]["select_bound"] == min(s["select_bound"] for s in scored)
    args = ["evaluate", "--model", "lenet300-fmnist", "--wsc", str(tmp_path / "a" / "model.wsc"), *QUICK[:4],
            "--seed", "1", "--select-size", "200", "--json"]
    assert main(args) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["heldout"] == report["chosen"]["heldout_score"] and scores["search"] == report["chosen"]["search_score"]
    if "select_score" in report["chosen"]:
        assert scores["select"] == report["chosen"]["select_score"]
    assert main(["compress", "--model", "lenet300-fmnist", *QUICK[:2], "--select-size", "9700",
                 "--out", str(tmp_path / "b")]) == 1
    assert "--select-size 9700 leaves no held-out examples" in capsys.readouterr().err
