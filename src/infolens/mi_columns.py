"""Mutual information between columns of a table file (CSV, JSON Lines, Parquet): what
``infolens mi`` computes. Returns plain data.

Column kinds: ``"discrete"`` or ``"continuous"``, or ``"auto"``: a column of floats that
are not all whole numbers is continuous; integers, booleans, strings and anything else
are discrete (CSV cells are read as integers or floats where every cell of the column
parses as one). Estimators by kinds:

=====================  ==============================================================
x, y (, z)             estimator
=====================  ==============================================================
discrete, discrete     :func:`infolens.estimate.mutual_information` (``estimator=``)
continuous both        :func:`infolens.estimate.ksg_mutual_information`
one of each            :func:`infolens.estimate.mixed_mutual_information` (Ross)
with z, all discrete   :func:`infolens.estimate.conditional_mutual_information`
with z, all continuous :func:`infolens.estimate.ksg_conditional_mutual_information`
=====================  ==============================================================

Uncertainty: a permutation p-value for independence (``y`` shuffled, seeded), and an
interval: the basic bootstrap for discrete estimates; for nearest-neighbour estimates,
whose resamples would hold duplicate points (distance 0), half-size subsamples drawn
without replacement, with the interval
:math:`[\\hat I - q_{1-\\alpha/2}/\\sqrt N, \\hat I - q_{\\alpha/2}/\\sqrt N]`,
:math:`q` the quantiles of :math:`\\sqrt{m}(\\hat I_m - \\hat I)` (Politis & Romano
subsampling; it does not correct the estimator's bias).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from infolens import estimate as est
from infolens.errors import InputError

KINDS = ("auto", "discrete", "continuous")


def _read_table(path: str, columns: list[str]) -> dict[str, list[Any]]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"FILE: expected a readable file, got {path!r} (not found)")
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as e:  # pragma: no cover
            raise InputError("FILE: reading Parquet needs pyarrow (pip install pyarrow)") from e
        try:
            table = pq.read_table(p)
        except Exception as e:
            raise InputError(f"FILE: expected a Parquet file, got {path!r} ({e})") from e
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise InputError(
                f"--{_flag(columns, missing[0])}: expected a column of {path!r} "
                f"({', '.join(table.column_names)}), got {missing[0]!r}"
            )
        return {c: table.column(c).to_pylist() for c in columns}
    out: dict[str, list[Any]] = {c: [] for c in columns}
    if suffix in (".jsonl", ".ndjson"):
        with p.open(encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"FILE: line {i} of {path!r} is not JSON ({e.msg})") from e
                if not isinstance(row, dict):
                    raise InputError(f"FILE: line {i} of {path!r}: expected an object")
                for c in columns:
                    if c not in row:
                        raise InputError(
                            f"--{_flag(columns, c)}: expected a field of every line, "
                            f"line {i} lacks {c!r}"
                        )
                    out[c].append(row[c])
        return out
    with p.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
        names = reader.fieldnames or []
        for c in columns:
            if c not in names:
                raise InputError(
                    f"--{_flag(columns, c)}: expected a column of {path!r} "
                    f"({', '.join(names)}), got {c!r}"
                )
        for row in reader:
            for c in columns:
                out[c].append(row[c])
    return {c: _parse_csv(v) for c, v in out.items()}


def _flag(columns: list[str], c: str) -> str:
    return "xyz"[columns.index(c)]


def _parse_csv(cells: list[Any]) -> list[Any]:
    for cast in (int, float):
        try:
            return [cast(v) for v in cells]
        except (TypeError, ValueError):
            continue
    return cells


def _kind(values: list[Any], kind: str, flag: str) -> str:
    if kind not in KINDS:
        raise InputError(f"--{flag}-kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if any(v is None for v in values):
        raise InputError(f"--{flag}: expected no missing values, got null/empty cells")
    if kind != "auto":
        return kind
    floats = all(isinstance(v, float) for v in values) and values
    if floats and not all(float(v).is_integer() for v in values):
        return "continuous"
    return "discrete"


def _as_float(values: list[Any], flag: str) -> np.ndarray:
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"--{flag}: a continuous column must hold numbers") from e
    if a.ndim == 2:  # a column of lists: vectors
        return a
    return a.reshape(-1)


def _labels(values: list[Any]) -> Any:
    if all(isinstance(v, (bool, int)) for v in values):
        return np.asarray(values, dtype=np.int64)
    return [tuple(v) if isinstance(v, list) else v for v in values]


def _estimate(method: str, a: Any, b: Any, z: Any, estimator: str, k: int) -> float:
    if method == "ksg":
        return est.ksg_mutual_information(a, b, k=k)
    if method == "ross":
        return est.mixed_mutual_information(a, b, k=k)
    if method == "frenzel-pompe":
        return est.ksg_conditional_mutual_information(a, b, z, k=k)
    if z is not None:
        return est.conditional_mutual_information(a, b, z, estimator=estimator)
    return est.mutual_information(a, b, estimator=estimator)


def mutual_information_columns(
    path: str,
    x: str,
    y: str,
    z: str | None = None,
    *,
    x_kind: str = "auto",
    y_kind: str = "auto",
    z_kind: str = "auto",
    estimator: str = "plugin",
    k: int = 3,
    base: float | None = None,
    permutations: int = 200,
    intervals: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Mutual information (or conditional MI given ``z``) between columns of a file.

    Returns a plain dict: the value (in nats, or ``base`` units), the method used, the
    kinds, the sample count, the permutation p-value and the interval (``None`` when
    ``permutations`` / ``intervals`` is 0).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "t.csv").write_text("a,b\\n" + "\\n".join(f"{i % 2},{i % 2}" for i in range(40)))
    >>> r = mutual_information_columns(str(d / "t.csv"), "a", "b", base=2, permutations=19)
    >>> r["value"], r["method"], r["p_value"]
    (1.0, 'plugin', 0.05)
    """
    div = est._check_base(base)
    for v, name in ((permutations, "--permutations"), (intervals, "--intervals")):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InputError(f"{name}: expected an integer >= 0, got {v!r}")
    if not 0 < confidence < 1:
        raise InputError(f"--confidence: expected a number in (0, 1), got {confidence!r}")
    cols = [c for c in (x, y, z) if c is not None]
    if len(set(cols)) != len(cols):
        raise InputError(f"--y: expected a column other than --x, got {y!r} twice")
    data = _read_table(path, cols)
    n = len(data[x])
    if n < 2:
        raise InputError(f"FILE: expected at least 2 rows, got {n}")
    kinds = [_kind(data[x], x_kind, "x"), _kind(data[y], y_kind, "y")]
    if z is not None:
        kinds.append(_kind(data[z], z_kind, "z"))
    if estimator not in est.ENTROPY_ESTIMATORS:
        raise InputError(
            f"--estimator: expected one of {', '.join(est.ENTROPY_ESTIMATORS)}, got {estimator!r}"
        )
    zs: Any = None
    if z is None:
        if kinds == ["discrete", "discrete"]:
            method = estimator
            xs, ys = _labels(data[x]), _labels(data[y])
        elif kinds == ["continuous", "continuous"]:
            method = "ksg"
            xs, ys = _as_float(data[x], "x"), _as_float(data[y], "y")
        else:
            method = "ross"
            disc, cont = (x, y) if kinds[0] == "discrete" else (y, x)
            xs, ys = _labels(data[disc]), _as_float(data[cont], "y" if cont == y else "x")
    else:
        if set(kinds) == {"discrete"}:
            method = estimator
            xs, ys, zs = _labels(data[x]), _labels(data[y]), _labels(data[z])
        elif set(kinds) == {"continuous"}:
            method = "frenzel-pompe"
            xs, ys, zs = (_as_float(data[c], f) for c, f in ((x, "x"), (y, "y"), (z, "z")))
        else:
            raise InputError(
                "--z: conditional MI needs x, y and z all discrete or all continuous, "
                f"got {', '.join(kinds)}"
            )

    def take(v: Any, rows: np.ndarray | None) -> Any:
        if v is None or rows is None:
            return v
        return v[rows] if isinstance(v, np.ndarray) else [v[i] for i in rows]

    def fn(rows: np.ndarray | None, perm: np.ndarray | None) -> float:
        a, b, c = take(xs, rows), take(ys, rows), take(zs, rows)
        return _estimate(method, a, take(b, perm), c, estimator, k)

    knn = method in ("ksg", "ross", "frenzel-pompe")
    value = fn(None, None)
    p_value, interval = est._resample_test(
        fn, n, value, permutations=permutations, resamples=intervals, confidence=confidence,
        seed=seed, scheme="subsample" if knn else "bootstrap",
    )  # fmt: skip
    kind_of_interval = None if not intervals else "subsampling" if knn else "basic bootstrap"
    return {
        "file": path,
        "x": x,
        "y": y,
        "z": z,
        "kinds": dict(zip("xyz", kinds)),
        "samples": n,
        "method": method,
        "k": k if method in ("ksg", "ross", "frenzel-pompe") else None,
        "quantity": "I(X;Y|Z)" if z is not None else "I(X;Y)",
        "unit": "nats" if base is None else ("bits" if base == 2 else f"log base {base}"),
        "value": value / div,
        "p_value": p_value,
        "permutations": permutations,
        "interval": None
        if interval is None
        else [float(interval[0]) / div, float(interval[1]) / div],
        "interval_method": kind_of_interval,
        "confidence": confidence,
        "seed": seed,
    }
