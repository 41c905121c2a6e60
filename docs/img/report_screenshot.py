"""Regenerate ``docs/img/report.png``: a score report of a small character model, screenshotted.

Run ``python docs/img/report_screenshot.py`` (needs matplotlib, Pillow and Debian's
``chromium``). The model is an interpolated character trigram model trained on the README,
so the surprisal values are real (if of a weak model), and nothing is downloaded.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TEXT = (
    "Information theory tells us how surprised a model is by each token. A language model "
    "that has read a lot of English expects the next letter of a common word, so the "
    "surprisal there is low; at the start of a new word, or on a rare name such as "
    "Kullback, it is high.\n"
    "def entropy(p):\n    return -sum(x * math.log2(x) for x in p if x > 0)\n"
)


def train(text: str) -> tuple[dict[str, Counter[str]], Counter[str], list[str]]:
    ctx: dict[str, Counter[str]] = defaultdict(Counter)
    for i in range(len(text)):
        for n in (1, 2):
            if i >= n:
                ctx[text[i - n : i]][text[i]] += 1
    uni = Counter(text)
    return ctx, uni, sorted(uni)


def predict(
    model: tuple[dict[str, Counter[str]], Counter[str], list[str]], history: str
) -> dict[str, float]:
    ctx, uni, vocab = model
    total = sum(uni.values())
    p = {c: (uni[c] + 0.5) / (total + 0.5 * len(vocab)) for c in vocab}
    for n, w in ((1, 0.35), (2, 0.5)):
        if len(history) >= n and (cnt := ctx.get(history[-n:])):
            s = sum(cnt.values())
            p = {c: (1 - w) * p[c] + w * cnt[c] / s for c in vocab}
    z = sum(p.values())
    return {c: v / z for c, v in p.items()}


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from infolens.report import render_score_report

    corpus = (ROOT / "README.md").read_text(encoding="utf-8") * 2
    model = train(corpus)
    recs = []
    pos_b = 0
    for i, ch in enumerate(TEXT):
        p = predict(model, TEXT[max(0, i - 2) : i])
        pc = p.get(ch, 1e-6)
        top = sorted(p.items(), key=lambda kv: -kv[1])[:5]
        nb = len(ch.encode())
        recs.append({
            "doc": "example.txt", "position": i, "token": ch, "bytes": [pos_b, pos_b + nb],
            "surprisal_bits": -math.log2(pc),
            "entropy_bits": -sum(v * math.log2(v) for v in p.values() if v > 0),
            "rank": 1 + sum(1 for v in p.values() if v > pc), "context": min(i, 64),
            "top": [[c, v] for c, v in top],
        })  # fmt: skip
        pos_b += nb
    bits = sum(r["surprisal_bits"] for r in recs)
    ent = sum(r["entropy_bits"] for r in recs) / len(recs)
    n = len(recs)
    result = {
        "model": "char-trigram (README)", "max_length": 64, "stride": 64, "bos": "none",
        "perplexity": 2 ** (bits / n), "nll_nats": bits * math.log(2), "tokens": n,
        "bits_per_token": bits / n, "bytes": pos_b, "bits_per_byte": bits / pos_b,
        "characters": len(TEXT), "words": len(TEXT.split()),
        "word_perplexity": 2 ** (bits / len(TEXT.split())),
        "mean_entropy_bits": ent, "mean_surprisal_bits": bits / n,
        "calibration_gap_bits": bits / n - ent,
        "documents": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        page = render_score_report(result, recs, {"example.txt": TEXT}, Path(tmp) / "r.html")
        shot = Path(tmp) / "shot.png"
        chromium = shutil.which("chromium")
        assert chromium, "needs Debian's chromium"
        focus = TEXT.index("Kullback")
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp}/profile",
             f"--screenshot={shot}", "--window-size=1100,1150", "--virtual-time-budget=3000",
             page.as_uri() + f"#focus=t{focus}"],
            check=True, capture_output=True,
        )  # fmt: skip
        from PIL import Image

        img = Image.open(shot).convert("RGB")
        img = img.resize((img.width * 4 // 5, img.height * 4 // 5), Image.Resampling.LANCZOS)
        out = ROOT / "docs" / "img" / "report.png"
        img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
        print(out, out.stat().st_size)


if __name__ == "__main__":
    main()
