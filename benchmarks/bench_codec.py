"""Benchmark ``infolens compress`` / ``decompress`` against general-purpose compressors.

Text: CPython's ``pydoc_data/topics.py`` (the help topics, English prose and code; ships
with Python). Models: the built-in adaptive byte model (``ngram``) on the whole file, and
a tiny GPT-2 (2 layers, n_embd 64, a 1024-token BPE) *trained here* for a few hundred
steps on the first 90% of the file and coded on the held-out last part (``--hf-bytes``),
one core (``INFOLENS_NUM_THREADS=1``, ``torch.set_num_threads(1)``). Every row of the
table is one run; the compressors run on the same bytes in the same process.

Also: peak resident memory of compress and decompress of a 2 MB and a 20 MB file (each in
a fresh process), to show that memory does not grow with the file.

Run: ``python benchmarks/bench_codec.py [--json OUT]`` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("INFOLENS_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def topics() -> bytes:
    import pydoc_data.topics as t

    return Path(t.__file__).read_bytes()


def compressors(data: bytes) -> dict[str, dict[str, float]]:
    from infolens.compressors import REFERENCE_COMPRESSORS, _reference_compressor

    out = {}
    for name in REFERENCE_COMPRESSORS:
        c = _reference_compressor(name)
        t = time.perf_counter()
        n = len(c.compress(data)) + len(c.flush())
        dt = time.perf_counter() - t
        out[name] = {"bytes": n, "bits_per_byte": 8 * n / len(data), "compress_MB_s": len(data) / dt / 1e6}
    return out


def code(data: bytes, model: object, **kw: object) -> dict[str, float]:
    from infolens import codec

    with tempfile.TemporaryDirectory() as d:
        src, z, back = Path(d, "in"), Path(d, "in.ilz"), Path(d, "back")
        src.write_bytes(data)
        t = time.perf_counter()
        st = codec.compress(src, z, model=model, **kw)  # type: ignore[arg-type]
        t_c = time.perf_counter() - t
        t = time.perf_counter()
        codec.decompress(z, back, model=model)
        t_d = time.perf_counter() - t
        assert back.read_bytes() == data
    d_ = st.to_dict()
    return {
        "bytes": d_["compressed_bytes"],
        "header_bytes": d_["header_bytes"],
        "payload_bytes": d_["payload_bytes"],
        "bits_per_byte": d_["bits_per_byte"],
        "payload_bits_per_byte": d_["payload_bits_per_byte"],
        "quantized_bits_per_byte": d_["quantized_bits_per_byte"],
        "model_bits_per_byte": d_["model_bits_per_byte"],
        "coder_overhead_pct": 100 * d_["coder_overhead_bytes"] / d_["quantized_bytes"],
        "compress_MB_s": len(data) / t_c / 1e6,
        "decompress_MB_s": len(data) / t_d / 1e6,
        "frames": d_["frames"],
    }


def train_tiny_gpt2(text: str, steps: int, path: Path) -> object:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)  # fmt: skip
    tok.train_from_iterator([text], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>")  # fmt: skip
    fast.save_pretrained(path)
    eot = tok.token_to_id("<|endoftext|>")
    cfg = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=256, n_embd=64, n_layer=2,
                     n_head=2, bos_token_id=eot, eos_token_id=eot)  # fmt: skip
    model = GPT2LMHeadModel(cfg)
    ids = torch.tensor(tok.encode(text).ids)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ctx, batch = 128, 16
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - ctx - 1, (batch,), generator=g)
        x = torch.stack([ids[s : s + ctx] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(path)
    return float(loss)


_MEM = r"""
import sys, os, time
sys.path.insert(0, sys.argv[1])
from _mem import RssPeak
from infolens import codec
with RssPeak() as c:
    codec.compress(sys.argv[2], sys.argv[3])
with RssPeak() as d:
    codec.decompress(sys.argv[3], sys.argv[4])
print(c.peak - c.base, d.peak - d.base)
"""


def memory(sizes: list[int]) -> dict[str, dict[str, float]]:
    base = topics()
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            src = Path(d, f"in{n}")
            with open(src, "wb") as f:
                left = n
                while left > 0:
                    f.write(base[:left])
                    left -= len(base)
            r = subprocess.run([sys.executable, "-c", _MEM, str(HERE), str(src), str(src) + ".ilz",
                                str(src) + ".back"], capture_output=True, text=True, check=True)  # fmt: skip
            c, dd = (int(x) for x in r.stdout.split())
            out[f"{n / 1e6:.0f} MB"] = {"compress_MiB": c / 2**20, "decompress_MiB": dd / 2**20}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    ap.add_argument("--hf-bytes", type=int, default=40_000)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args()
    data = topics()
    res: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "text": f"pydoc_data/topics.py, {len(data)} bytes",
    }
    print(res["machine"], res["text"], flush=True)
    from infolens.models import load_model

    res["ngram"] = code(data, load_model("ngram"))
    print("ngram", res["ngram"], flush=True)
    res["compressors"] = compressors(data)
    for k, v in res["compressors"].items():  # type: ignore[attr-defined]
        print(k, v, flush=True)

    import torch

    torch.set_num_threads(1)
    cut = len(data) - args.hf_bytes
    train, held = data[:cut], data[cut:]
    # cut on a UTF-8 boundary
    while held and (held[0] & 0xC0) == 0x80:
        held = held[1:]
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        loss = train_tiny_gpt2(train.decode("utf-8", "ignore"), args.steps, Path(d))
        t_train = time.perf_counter() - t
        m = load_model(f"hf:{d}", device="cpu", dtype="float32")
        res["hf"] = code(held, m, context=256)
        res["hf"]["train_seconds"] = t_train  # type: ignore[index]
        res["hf"]["final_train_loss_nats"] = loss  # type: ignore[index]
    res["held_out"] = {
        "bytes": len(held),
        "ngram": code(held, load_model("ngram")),
        "compressors": compressors(held),
    }
    print("hf", res["hf"], flush=True)
    if not args.no_memory:
        res["memory"] = memory([2_000_000, 20_000_000, 40_000_000])
        print("memory", res["memory"], flush=True)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
