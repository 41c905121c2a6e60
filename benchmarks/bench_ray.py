"""Benchmark ``--engine ray`` against the single-process engine, and the driver's merge.

Corpus: CPython's own standard-library ``.py`` files (they ship with Python), the first
files in sorted order up to ``--megabytes``. Models: the built-in ``ngram`` and a tiny
GPT-2 built by ``tests/hf_fixtures.py`` (random weights; the speed is what matters here).
For each: the single-process :func:`infolens.score.score_documents`, then Ray with 1 and
2 local workers (``ray.init`` on this machine), Ray's start-up timed apart (the first
``ray.init``) and every result checked equal to the single-process JSON.

The merge: the driver's cost per document (unpickling a worker's single-document result
and merging it, in order) over ``--merge-documents`` documents.

Run: ``python benchmarks/bench_ray.py [--json OUT]`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def corpus(megabytes: float) -> list[str]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    out, n = [], 0
    for p in sorted(lib.glob("*.py")):
        out.append(str(p))
        n += p.stat().st_size
        if n >= megabytes * 1e6:
            break
    return out


def run(spec: str, paths: list[str], opts: dict[str, Any], workers: list[int]) -> dict[str, Any]:
    import ray

    from infolens.distributed import RayOptions, _init, score_documents_ray
    from infolens.documents import read_documents
    from infolens.models import load_model
    from infolens.score import score_documents

    allow = spec.startswith("ngram")
    total = sum(Path(p).stat().st_size for p in paths)
    t = time.perf_counter()
    ref = score_documents(load_model(spec, **opts), read_documents(paths, allow_bytes=allow))
    single = time.perf_counter() - t
    ref_json = json.dumps(ref.to_dict())
    res: dict[str, Any] = {"bytes": total, "documents": len(paths),
                           "tokens": ref.to_dict()["tokens"],
                           "single_seconds": single, "single_MB_s": total / single / 1e6}  # fmt: skip
    for w in workers:
        if ray.is_initialized():
            ray.shutdown()
        startup = _init(ray, RayOptions(workers=w))
        info: dict[str, Any] = {}
        t = time.perf_counter()
        got = score_documents_ray(spec, read_documents(paths, allow_bytes=allow),
                                  model_options=opts, options=RayOptions(workers=w, batch_documents=4),
                                  info=info)  # fmt: skip
        dt = time.perf_counter() - t
        assert json.dumps(got.to_dict()) == ref_json, "ray result differs"
        res[f"ray_{w}"] = {"startup_seconds": startup, "seconds": dt, "MB_s": total / dt / 1e6,
                           "speedup_vs_single": single / dt,
                           "merge_seconds_after_last_result": info.get("merge_seconds_after_last_result"),
                           "actor_restarts": info.get("actor_restarts")}  # fmt: skip
        print(spec, w, res[f"ray_{w}"], flush=True)
    ray.shutdown()
    return res


def merge_cost(n: int) -> dict[str, float]:
    """What the driver does per document that comes back: unpickle the worker's state
    and merge it in order (:func:`infolens.distributed.merge_score_states`), here on the
    same state ``n`` times, streamed as the results would arrive."""
    from infolens.distributed import merge_score_states
    from infolens.documents import Document
    from infolens.models import load_model
    from infolens.score import score_documents

    one = pickle.dumps(score_documents(load_model("ngram"), [Document("d", "hello world " * 20)]))
    t = time.perf_counter()
    merged = merge_score_states(one for _ in range(n))
    dt = time.perf_counter() - t
    assert merged.stats.documents == n
    return {"documents": n, "state_bytes": len(one), "us_per_document": 1e6 * dt / n,
            "total_seconds": dt}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    ap.add_argument("--megabytes", type=float, default=3.0)
    ap.add_argument("--hf-megabytes", type=float, default=1.0)
    ap.add_argument("--merge-documents", type=int, default=1_000_000)
    args = ap.parse_args()
    os.environ.setdefault("INFOLENS_NUM_THREADS", "1")
    res: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                           f"Python {platform.python_version()}"}  # fmt: skip
    res["merge"] = merge_cost(args.merge_documents)
    print("merge", res["merge"], flush=True)
    res["ngram"] = run("ngram", corpus(args.megabytes), {}, [1, 2])
    from hf_fixtures import build_tiny_hf

    with tempfile.TemporaryDirectory() as d:
        build_tiny_hf(Path(d))
        res["hf"] = run(f"hf:{d}", corpus(args.hf_megabytes), {"device": "cpu",
                        "dtype": "float32"}, [1, 2])  # fmt: skip
    print(json.dumps(res, indent=1))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
