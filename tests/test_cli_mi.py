"""``infolens mi`` through the in-memory runner: CSV, JSON Lines and Parquet columns, kinds,
conditional MI, p-values and intervals, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from infolens import estimate as E
from infolens.cli import main
from infolens.mi_columns import mutual_information_columns


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def table(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    n = 600
    x = rng.standard_normal(n)
    y = 0.8 * x + 0.6 * rng.standard_normal(n)
    z = rng.standard_normal(n)
    lab = (x > 0).astype(int)
    name = np.where(lab == 1, "pos", "neg")
    noise = rng.integers(0, 3, n)
    rows = [
        {
            "x": float(a),
            "y": float(b),
            "z": float(c),
            "lab": int(d),
            "name": str(e),
            "noise": int(f),
        }
        for a, b, c, d, e, f in zip(x, y, z, lab, name, noise)
    ]
    csv = tmp_path / "t.csv"
    csv.write_text(
        "x,y,z,lab,name,noise\n"
        + "\n".join(
            ",".join(str(r[k]) for k in ("x", "y", "z", "lab", "name", "noise")) for r in rows
        )
    )
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows))
    out = {"csv": csv, "jsonl": jsonl}
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
        out["parquet"] = tmp_path / "t.parquet"
    except ImportError:
        pass
    out["arrays"] = {"x": x, "y": y, "z": z, "lab": lab, "name": name, "noise": noise}  # type: ignore[assignment]
    return out


def test_each_format_gives_the_library_numbers(table):
    a = table["arrays"]
    want = {
        ("x", "y"): ("ksg", E.ksg_mutual_information(a["x"], a["y"])),
        ("lab", "name"): ("plugin", E.mutual_information(a["lab"], list(a["name"]))),
        ("lab", "y"): ("ross", E.mixed_mutual_information(a["lab"], a["y"])),
    }
    for fmt in ("csv", "jsonl", "parquet"):
        if fmt not in table:
            continue
        for (cx, cy), (method, value) in want.items():
            res = run("mi", str(table[fmt]), "--x", cx, "--y", cy, "--json", "--permutations", "0",
                      "--intervals", "0")  # fmt: skip
            assert res.exit_code == 0, res.output
            r = json.loads(res.output)
            assert r["method"] == method and r["unit"] == "nats"
            assert r["value"] == pytest.approx(value, rel=1e-9), (fmt, cx, cy)
            assert r["p_value"] is None and r["interval"] is None


def test_conditional_p_values_intervals_and_units(table):
    a = table["arrays"]
    r = mutual_information_columns(str(table["csv"]), "lab", "noise", "name", base=2, seed=1)
    assert r["quantity"] == "I(X;Y|Z)" and r["unit"] == "bits"
    want = E.conditional_mutual_information(a["lab"], a["noise"], list(a["name"]), base=2)
    assert r["value"] == pytest.approx(want, rel=1e-12)
    r = mutual_information_columns(str(table["csv"]), "x", "y", "z", permutations=20, intervals=20)
    assert r["method"] == "frenzel-pompe"
    assert r["value"] == pytest.approx(E.ksg_conditional_mutual_information(a["x"], a["y"], a["z"]))
    # dependent columns: small p-value, interval around the estimate; seeded: repeatable
    r1 = mutual_information_columns(str(table["csv"]), "x", "y", permutations=49, intervals=30)
    r2 = mutual_information_columns(str(table["csv"]), "x", "y", permutations=49, intervals=30)
    assert r1 == r2
    assert r1["p_value"] == pytest.approx(1 / 50)
    lo, hi = r1["interval"]
    assert lo < r1["value"] < hi and r1["interval_method"] == "subsampling"
    # independent columns: a large p-value
    r = mutual_information_columns(str(table["csv"]), "lab", "noise", permutations=99, intervals=0)
    assert r["p_value"] > 0.05
    # kinds can be forced: x as discrete labels of floats is every value distinct
    r = mutual_information_columns(str(table["csv"]), "lab", "x", x_kind="discrete",
                                   y_kind="continuous", permutations=0, intervals=0)  # fmt: skip
    assert r["method"] == "ross"


def test_table_output(table):
    res = run("mi", str(table["csv"]), "--x", "x", "--y", "y", "--permutations", "19")
    assert res.exit_code == 0, res.output
    assert "I(X;Y) (x ; y)" in res.output and "nats" in res.output
    assert "independence p-value  0.0500 (19 permutations" in res.output
    assert "95% interval" in res.output


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--x", "nope", "--y", "y"], "--x: expected a column of"),
        (["--x", "x", "--y", "x"], "--y: expected a column other than --x"),
        (["--x", "x", "--y", "lab", "--z", "name"], "--z: conditional MI needs"),
        (
            ["--x", "x", "--y", "y", "--permutations", "-1"],
            "--permutations: expected an integer >= 0",
        ),
        (["--x", "x", "--y", "y", "--base", "1"], "base: expected"),
    ],
)
def test_bad_input_one_line_and_exit_2(table, args, msg):
    res = run("mi", str(table["csv"]), *args)
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and msg in lines[0], res.output


def test_missing_file_and_bad_json(tmp_path):
    res = run("mi", str(tmp_path / "absent.csv"), "--x", "a", "--y", "b")
    assert res.exit_code == 2 and "FILE: expected a readable file" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1, "b": 2}\n{"a": 1\n')
    res = run("mi", str(bad), "--x", "a", "--y", "b")
    assert res.exit_code == 2 and "line 2" in res.output
