"""infolens compress / decompress: exact round trips, the bits adding up, decodable
exactly where it should be (same integers on every instruction set, thread count and
compiler flags) and refused everywhere else, with corrupt input never decoded."""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import subprocess
import sys
import sysconfig
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from infolens import codec
from infolens._kernels import quantized_free_weights
from infolens.cli import main
from infolens.errors import InputError
from infolens.models import load_model

pytest.importorskip("constriction")

from _faults import assert_corruptions_refused

ROOT = Path(__file__).resolve().parents[1]
TEXT = (
    "Cross-entropy is code length: the number of bits needed to encode data from p with "
    "a code designed for q. Η θεωρία της πληροφορίας. 情報理論。 Теория информации. 🙂\n"
)


def roundtrip(tmp_path: Path, data: bytes, **kw: object) -> codec.CompressionStats:
    src, z, back = tmp_path / "in.bin", tmp_path / "in.ilz", tmp_path / "back.bin"
    src.write_bytes(data)
    stats = codec.compress(src, z, **kw)  # type: ignore[arg-type]
    codec.decompress(z, back)
    assert back.read_bytes() == data
    assert stats.compressed_bytes == z.stat().st_size
    return stats


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    "name,data",
    [
        ("empty", b""),
        ("one byte", b"\x00"),
        ("one letter", b"a"),
        ("every byte value", bytes(range(256)) * 3),
        ("random", np.random.default_rng(7).integers(0, 256, 20_000, dtype=np.uint8).tobytes()),
        ("utf-8 scripts", (TEXT * 40).encode("utf-8")),
        ("binary", Path(sys.executable).read_bytes()[:60_000]),
        ("runs", b"\xff" * 5000 + b"\x00" * 5000),
    ],
)
def test_round_trip_is_exact(tmp_path: Path, name: str, data: bytes) -> None:
    stats = roundtrip(tmp_path, data)
    assert stats.original_bytes == len(data) and stats.symbols == len(data)


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=3000))
def test_round_trip_any_bytes(data: bytes) -> None:
    assert codec.decompress_bytes(codec.compress_bytes(data)) == data


def test_frames_and_bounded_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many frames and a history shorter than the file (what bounds memory on 10 MB+):
    the round trip stays exact and the kept history never exceeds its bound."""
    monkeypatch.setattr(codec._cm, "FRAME_BYTES", 4096)
    monkeypatch.setattr(codec._cm, "HISTORY_BYTES", 10_000)
    seen: list[int] = []
    orig = codec._ByteCoderModel._advance

    def spy(self: codec._ByteCoderModel, buf: bytes) -> None:
        orig(self, buf)
        seen.append(len(self.hist))

    monkeypatch.setattr(codec._ByteCoderModel, "_advance", spy)
    data = (TEXT * 300).encode("utf-8")  # about 60 kB: 15 frames, the history rebased
    stats = roundtrip(tmp_path, data)
    assert stats.frames == math.ceil(len(data) / 4096)
    assert max(seen) == 10_000 and len(seen) >= 2 * stats.frames


def test_ten_megabytes_round_trip(tmp_path: Path) -> None:
    """A file past the history bound (several rebases, 11 frames), exact."""
    rng = np.random.default_rng(3)
    words = [w.encode() for w in TEXT.split()] + [b"\n", b"0x%x" % 255]
    parts, n = [], 0
    while n < 10_500_000:
        chunk = b" ".join(words[i] for i in rng.integers(0, len(words), 2000))
        parts.append(chunk)
        n += len(chunk)
    data = b"".join(parts)
    stats = roundtrip(tmp_path, data)
    assert stats.frames == math.ceil(len(data) / codec._cm.FRAME_BYTES) and len(data) > 10 << 20
    assert 8 * stats.compressed_bytes < 4 * len(data)


# ------------------------------------------------------------------ the bits add up


def test_coded_size_matches_quantised_and_float_cross_entropy(tmp_path: Path) -> None:
    from infolens.documents import Document
    from infolens.score import score_documents

    text = (TEXT * 60) + Path(codec.__file__).read_text(encoding="utf-8")[:30_000]
    data = text.encode("utf-8")
    stats = roundtrip(tmp_path, data)
    d = stats.to_dict()
    # the coder writes the quantised cross-entropy, within a few bytes per frame
    assert (
        d["quantized_bytes"] - 1 <= d["payload_bytes"] <= d["quantized_bytes"] + 16 * stats.frames
    )
    assert d["payload_bytes"] <= 1.005 * d["quantized_bytes"] + 16
    # the float cross-entropy is what `score` reports (one document, one window)
    res = score_documents(load_model("ngram"), [Document("d", text)])
    nats = res.documents[0].metrics["nll_nats"]
    assert stats.model_bits == pytest.approx(nats / math.log(2), rel=1e-9)
    # quantising costs at most a few bits per kilobyte here
    assert abs(stats.quantized_bits - stats.model_bits) < 1e-3 * stats.model_bits


def test_quantised_bits_are_those_of_the_coder_integers() -> None:
    """constriction codes exactly f = w + 1: coding a long run of one symbol whose
    frequency is known gives that many bits (within the flush)."""
    import constriction

    w = np.full((1, 256), 100.0, dtype=np.float32)
    w[0, 7] = (1 << 24) - 256 - 255 * 100.0
    sym = np.full(50_000, 3, dtype=np.int32)
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(sym, constriction.stream.model.Categorical(perfect=False), np.repeat(w, len(sym), 0))
    bits = 32 * len(enc.get_compressed())
    want = len(sym) * -math.log2(101 / (1 << 24))
    assert want <= bits <= want + 64


# ------------------------------------------------------------------ the quantiser


def reference_free_weights(logits: np.ndarray, precision: int = 24) -> np.ndarray:
    """The definition, slowly, in float64 numpy (exp may differ from the kernel's by an ulp,
    so entries may differ by one)."""
    out = []
    v = logits.shape[1]
    for row in logits.astype(np.float64):
        m = row.max()
        u = np.exp(row - m)
        s = ((1 << precision) - v) / u.sum()
        w = np.floor(u * s)
        w[int(np.argmax(row))] += (1 << precision) - v - w.sum()
        out.append(w)
    return np.array(out)


def assert_close_to_definition(w: np.ndarray, ref: np.ndarray, top: np.ndarray) -> None:
    """Every floor within one of the reference's; the remainder at the first most probable
    token absorbs the difference (it can be up to V when many equal tiny probabilities sit
    just at an integer boundary)."""
    rows = np.arange(len(w))
    d = np.abs(w - ref)
    d_top = d[rows, top].copy()
    d[rows, top] = 0
    assert d.max() <= 1.0
    assert np.all(d_top <= w.shape[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_kernel_quantiser_matches_its_definition(dtype: type) -> None:
    rng = np.random.default_rng(11)
    a = (rng.standard_normal((40, 1000)) * rng.uniform(0.1, 20, (40, 1))).astype(dtype)
    a[0, :10] = -np.inf
    w = quantized_free_weights(a)
    ref = reference_free_weights(a)
    assert w.dtype == np.float32
    assert np.all(w.astype(np.int64).sum(axis=1) == (1 << 24) - a.shape[1])
    assert np.all(w >= 0) and np.all(w[0, :10] == 0)  # -inf: f = 1, still codable
    assert_close_to_definition(w, ref, np.argmax(a, axis=1))
    assert (w == ref).mean() > 0.99


def test_kernel_quantiser_exact_cases() -> None:
    p = np.array([[0.5, 0.25, 0.125, 0.125]])
    assert ((quantized_free_weights(np.log(p), precision=6) + 1).tolist()) == [
        [32, 16, 8, 8]
    ]  # 60 p, floor, +1
    with pytest.raises(ValueError, match="NaN"):
        quantized_free_weights(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="no finite"):
        quantized_free_weights(np.array([[-np.inf, -np.inf]]))


def test_torch_bf16_quantises_like_its_float64_widening() -> None:
    torch = pytest.importorskip("torch")
    x = torch.randn(8, 333, generator=torch.Generator().manual_seed(0)).bfloat16()
    assert np.array_equal(quantized_free_weights(x), quantized_free_weights(x.double().numpy()))


def test_ngram_quantiser_matches_its_definition() -> None:
    m = load_model("ngram")
    data = (TEXT * 20).encode()
    core = m._core_for_window()
    core.begin()
    logp = np.empty((len(data), 256))
    core.run(data, 0, len(data), logp, True)
    core = m._core_for_window()
    core.begin()
    w = np.empty((len(data), 256), dtype=np.float32)
    nats = core.run(data, 0, len(data), w, True)
    assert np.all(w.astype(np.int64).sum(axis=1) == (1 << 24) - 256)
    assert_close_to_definition(w, reference_free_weights(logp), np.argmax(logp, axis=1))
    sym = np.frombuffer(data, np.uint8)
    assert nats == pytest.approx(-logp[np.arange(len(data)), sym].sum(), rel=1e-12)


_PROBE = r"""
import hashlib, sys
import numpy as np
from infolens._kernels import quantized_free_weights
from infolens import _native
rng = np.random.default_rng(5)
h = hashlib.sha256()
for v, dt in ((256, np.float64), (50257, np.float32), (3000, np.float16), (9, np.float64)):
    a = (rng.standard_normal((33, v)) * rng.uniform(0.05, 40, (33, 1))).astype(dt)
    a[1, : v // 2] = -np.inf
    h.update(quantized_free_weights(a).tobytes())
import torch
x = torch.randn(17, 777, generator=torch.Generator().manual_seed(1)).bfloat16()
h.update(quantized_free_weights(x).tobytes())
print(_native.isa(), h.hexdigest())
"""


def test_kernel_quantiser_same_integers_on_every_isa_and_thread_count() -> None:
    pytest.importorskip("infolens._native")
    seen = {}
    for isa in ("avx512", "avx2", "baseline"):
        for threads in ("1", "2", "5"):
            env = dict(os.environ, INFOLENS_NATIVE_ISA=isa, INFOLENS_NUM_THREADS=threads)
            out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                                 text=True, check=True).stdout.split()  # fmt: skip
            seen[(out[0], threads)] = out[1]
    assert len(set(seen.values())) == 1, seen
    assert {k[0] for k in seen} >= {"baseline"}  # at least the baseline ran


_NGRAM_PROBE = r"""
import sys
sys.path.insert(0, sys.argv[1])
import _ngram_native, hashlib, numpy as np
data = open(sys.argv[2], "rb").read()
m = _ngram_native.Model(order=6, match_min=4, use_match=1)
m.begin()
w = np.empty((len(data), 256), dtype=np.float32)
m.run(data, 0, len(data), w, True)
print(hashlib.sha256(w.tobytes()).hexdigest())
"""


def test_ngram_integers_do_not_depend_on_compiler_flags(tmp_path: Path) -> None:
    """The built-in model's quantised rows, built with -O0, -O2 and -O3 -march=native
    (AVX-512 / FMA where the CPU has them) — all with the project's -ffp-contract=off —
    are the same integers: what makes a file decodable on another machine."""
    import numpy

    cc = sysconfig.get_config_var("CC") or "gcc"
    include = [sysconfig.get_paths()["include"], numpy.get_include()]
    src = ROOT / "src" / "infolens" / "_ngram_native.c"
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    probe = tmp_path / "probe.bin"
    probe.write_bytes(codec._cm._probe_bytes() + (TEXT * 30).encode())
    hashes = {}
    for flags in (["-O0"], ["-O2"], ["-O3", "-march=native"]):
        d = tmp_path / "_".join(f.strip("-=") for f in flags)
        d.mkdir()
        cmd = [*cc.split(), "-shared", "-fPIC", *flags, "-ffp-contract=off", "-fno-math-errno",
               *[f"-I{i}" for i in include], str(src), "-o", str(d / f"_ngram_native{suffix}")]  # fmt: skip
        try:
            subprocess.run(cmd, check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot build the extension here: {exc}")
        out = subprocess.run([sys.executable, "-c", _NGRAM_PROBE, str(d), str(probe)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        hashes[flags[-1]] = out.stdout.strip()
    m = load_model("ngram")
    core = m._core_for_window()
    core.begin()
    data = probe.read_bytes()
    w = np.empty((len(data), 256), dtype=np.float32)
    core.run(data, 0, len(data), w, True)
    hashes["installed"] = hashlib.sha256(w.tobytes()).hexdigest()
    assert len(set(hashes.values())) == 1, hashes


# ------------------------------------------------------------------ refused, never wrong


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("codec")
    src, z = d / "small.txt", d / "small.txt.ilz"
    src.write_bytes(TEXT.encode()[:120])
    codec.compress(src, z)
    return z


def test_corrupt_and_truncated_files_are_refused(small_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.bin"

    def read(p: Path) -> None:
        codec.decompress(p, out)
        assert out.read_bytes() == TEXT.encode()[:120]
        out.unlink()

    counts = assert_corruptions_refused(small_file, read, tmp_path, patterns=(0x01, 0x80))
    assert counts["flips"] > 1000 and not out.exists()


def _rewrite(z: Path, tmp: Path, edit_header=None, edit_words=None) -> Path:  # type: ignore[no-untyped-def]
    """A copy of ``z`` with an edited header or frame words, every CRC made valid again."""
    b = z.read_bytes()
    n = len(codec.MAGIC)
    (hlen,) = struct.unpack_from("<I", b, n)
    h = json.loads(b[n + 4 : n + 4 + hlen])
    rest = b[n + 8 + hlen :]
    if edit_header:
        edit_header(h)
    out = codec._header_bytes(h)
    pos = 0
    while pos < len(rest):
        n_sym, n_words, _ = struct.unpack_from("<III", rest, pos)
        words = np.frombuffer(rest[pos + 12 : pos + 12 + 4 * n_words], "<u4").copy()
        if edit_words and n_words:
            edit_words(words)
        out += codec._frame(n_sym, words)
        pos += 12 + 4 * n_words
    p = tmp / "edited.ilz"
    p.write_bytes(out)
    return p


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda h: h.update(version=2), "format version 2"),
        (lambda h: h.update(model_fingerprint="0" * 64), "gives different probabilities"),
        (lambda h: h["settings"].update(history_bytes=1 << 20), "settings do not match"),
        (lambda h: h.update(original_bytes=h["original_bytes"] + 1), "decoded 120 bytes"),
        (lambda h: h.update(sha256="0" * 64), "SHA-256"),
        (lambda h: h.update(model="ngram:order=4"), r"differs in order|setting"),
    ],
)
def test_valid_checksums_wrong_content_refused(
    small_file: Path, tmp_path: Path, edit, match
) -> None:  # type: ignore[no-untyped-def]
    p = _rewrite(small_file, tmp_path, edit_header=edit)
    out = tmp_path / "out.bin"
    with pytest.raises(InputError, match=match):
        codec.decompress(p, out)
    assert not out.exists()


def test_garbage_words_with_valid_crc_never_give_output(small_file: Path, tmp_path: Path) -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)

        def scramble(w: np.ndarray, rng: np.random.Generator = rng) -> None:
            w[rng.integers(0, len(w))] ^= np.uint32(1 << int(rng.integers(0, 32)))

        p = _rewrite(small_file, tmp_path, edit_words=scramble)
        out = tmp_path / "out.bin"
        with pytest.raises(InputError, match="corrupt"):
            codec.decompress(p, out)
        assert not out.exists()


def test_other_model_refused(tmp_path: Path) -> None:
    src, z = tmp_path / "a.txt", tmp_path / "a.ilz"
    src.write_bytes(TEXT.encode())
    codec.compress(src, z, model="ngram:order=3")
    with pytest.raises(InputError, match=r"setting|differs"):
        codec.decompress(z, tmp_path / "b", model="ngram:order=5")
    codec.decompress(z, tmp_path / "b")  # the header's own model
    assert (tmp_path / "b").read_bytes() == TEXT.encode()


def test_fitted_model_round_trip_and_refusal(tmp_path: Path) -> None:
    from infolens.models.ngram import fit_ngram

    fit_ngram([(TEXT * 20).encode()], order=4).save(tmp_path / "m.ilm")
    other = tmp_path / "o.ilm"
    fit_ngram([b"something else entirely " * 30], order=4).save(other)
    src, z = tmp_path / "a.txt", tmp_path / "a.ilz"
    src.write_bytes((TEXT * 3).encode())
    spec = f"ngram:{tmp_path / 'm.ilm'}"
    st_fit = codec.compress(src, z, model=spec)
    codec.decompress(z, tmp_path / "b", model=spec)
    assert (tmp_path / "b").read_bytes() == src.read_bytes()
    assert st_fit.payload_bytes < len((TEXT * 3).encode()) / 4  # it learned the text
    codec.decompress(z, tmp_path / "c")  # the header names the model file
    (tmp_path / "m.ilm").rename(tmp_path / "moved.ilm")
    with pytest.raises(InputError, match="no such file"):
        codec.decompress(z, tmp_path / "d")
    with pytest.raises(InputError, match=r"differs in|setting"):
        codec.decompress(z, tmp_path / "d", model=f"ngram:{other}")
    codec.decompress(z, tmp_path / "d", model=f"ngram:{tmp_path / 'moved.ilm'}")
    assert (tmp_path / "d").read_bytes() == src.read_bytes()


def test_not_a_compressed_file(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"PK\x03\x04 not ours")
    with pytest.raises(InputError, match="expected an infolens compressed file"):
        codec.decompress(p, tmp_path / "y")
    with pytest.raises(InputError, match="expected a file, got the directory"):
        codec.decompress(tmp_path, tmp_path / "y")


# ------------------------------------------------------------------ token models


def test_hf_round_trip_and_accounting(tiny_hf, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from hf_fixtures import stdlib_text

    data = stdlib_text(1500).encode()
    stats = roundtrip(tmp_path, data, model=tiny_hf, context=48)
    d = stats.to_dict()
    assert stats.symbols == len(tiny_hf.tokenize(data.decode()).ids)
    assert (
        d["quantized_bytes"] - 1 <= d["payload_bytes"] <= d["quantized_bytes"] + 16 * stats.frames
    )
    h = codec.read_header(tmp_path / "in.ilz")
    assert h["settings"]["tokens"] == "tokenizer" and "decodable_on" in h
    assert set(h["model_identity"]["files_sha256"]) >= {"config.json", "model.safetensors"}


def test_hf_other_weights_refused(tiny_hf, tiny_hf_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from hf_fixtures import build_tiny_hf

    src, z = tmp_path / "a.txt", tmp_path / "a.ilz"
    src.write_text("def f(x):\n    return x + 1\n", encoding="utf-8")
    codec.compress(src, z, model=tiny_hf, context=16)
    other = load_model(f"hf:{build_tiny_hf(tmp_path / 'other', seed=9)}", device="cpu",
                       dtype="float32")  # fmt: skip
    with pytest.raises(InputError, match=r"differs in|different probabilities"):
        codec.decompress(z, tmp_path / "b", model=other)
    with pytest.raises(InputError, match="expected UTF-8"):
        (tmp_path / "bin").write_bytes(b"\xff\xfe")
        codec.compress(tmp_path / "bin", tmp_path / "bin.ilz", model=tiny_hf)


# ------------------------------------------------------------------ CLI


def run(*args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), input=input)


def test_cli_files_and_json(tmp_path: Path) -> None:
    src = tmp_path / "t.txt"
    src.write_bytes((TEXT * 30).encode())
    r = run("compress", str(src), "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    z = tmp_path / "t.txt.ilz"
    assert d["compressed_bytes"] == z.stat().st_size
    assert set(d["compressors"]) >= {"gzip_9", "bz2_9", "xz_9e"}
    for c in d["compressors"].values():
        assert c["bits_per_byte"] == pytest.approx(8 * c["bytes"] / src.stat().st_size)
    assert d["compressors"]["xz_9e"]["bytes"] == len(
        __import__("lzma").compress(src.read_bytes(), preset=9 | __import__("lzma").PRESET_EXTREME)
    )
    r = run("compress", str(src))
    assert r.exit_code == 2 and "exists; give --force" in r.stderr
    src.unlink()
    r = run("decompress", str(z))
    assert r.exit_code == 0 and "decompressed" in r.stdout
    assert src.read_bytes() == (TEXT * 30).encode()


def test_cli_stdin_stdout(tmp_path: Path) -> None:
    data = (TEXT * 5).encode()
    r = run("compress", "-", "-o", "-", "--no-compare", input=data)
    assert r.exit_code == 0, r.stderr
    blob = r.stdout_bytes
    assert blob.startswith(codec.MAGIC) and "compressed" in r.stderr
    r = run("decompress", "-", "-o", "-", "-q", input=blob)
    assert r.exit_code == 0 and r.stdout_bytes == data


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ilz"
    bad.write_bytes(codec.MAGIC + b"\x05\x00")
    for args in (("decompress", str(bad), "-o", str(tmp_path / "o")),
                 ("decompress", str(tmp_path / "missing.ilz")),
                 ("decompress", str(tmp_path / "noext")),
                 ("compress", str(tmp_path / "missing"))):  # fmt: skip
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o").exists()


def test_header_crc_covers_the_json(small_file: Path) -> None:
    b = small_file.read_bytes()
    n = len(codec.MAGIC)
    (hlen,) = struct.unpack_from("<I", b, n)
    assert struct.unpack_from("<I", b, n + 4 + hlen)[0] == zlib.crc32(b[n + 4 : n + 4 + hlen])


def test_hf_segments_across_frames(tiny_hf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Frames of whole segments (here 2 segments of 16 tokens per frame, the last one short)."""
    from hf_fixtures import stdlib_text

    monkeypatch.setattr(codec._cm, "FRAME_TOKENS", 40)
    data = stdlib_text(700).encode()
    stats = roundtrip(tmp_path, data, model=tiny_hf, context=16)
    assert codec.read_header(tmp_path / "in.ilz")["settings"]["frame_tokens"] == 32
    assert stats.frames == math.ceil(stats.symbols / 32) and stats.frames > 2


def test_progress_reports_bytes_and_running_bits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec._cm, "FRAME_BYTES", 2048)
    src = tmp_path / "p.txt"
    src.write_bytes((TEXT * 30).encode())
    seen: list[tuple[int, float]] = []
    stats = codec.compress(src, tmp_path / "p.ilz", on_progress=lambda n, b: seen.append((n, b)))
    assert [n for n, _ in seen] == sorted({n for n, _ in seen}) and seen[-1][0] == stats.original_bytes
    assert seen[-1][1] == pytest.approx(stats.quantized_bits)
    back: list[tuple[int, float]] = []
    codec.decompress(tmp_path / "p.ilz", tmp_path / "q.txt", on_progress=lambda n, b: back.append((n, b)))
    assert [n for n, _ in back] == [n for n, _ in seen]
    assert back[-1][1] == pytest.approx(stats.quantized_bits, rel=1e-9)


def test_file_changed_while_compressing_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, z = tmp_path / "a.txt", tmp_path / "a.ilz"
    src.write_bytes((TEXT * 20).encode())
    orig = codec._open_input

    def then_change(path, option):  # type: ignore[no-untyped-def]
        got = orig(path, option)
        src.write_bytes((TEXT * 21).encode())  # after the checksum pass, before the coding
        got[0].close()
        return open(src, "rb"), *got[1:]

    monkeypatch.setattr(codec, "_open_input", then_change)
    with pytest.raises(InputError, match="changed while it was being compressed"):
        codec.compress(src, z)
    assert not z.exists()
