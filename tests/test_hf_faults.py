"""A broken model folder is one line naming the folder and the reason, never a traceback:
truncated or corrupt weights, impossible config sizes, a pickle-only checkpoint, no
tokenizer. Through the library and the CLI."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from infolens.cli import main
from infolens.errors import InputError
from infolens.models import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _truncate(p: Path) -> None:
    w = p / "model.safetensors"
    w.write_bytes(w.read_bytes()[:5000])


def _corrupt_header(p: Path) -> None:
    w = p / "model.safetensors"
    b = bytearray(w.read_bytes())
    b[10:30] = b"x" * 20
    w.write_bytes(bytes(b))


def _short_body(p: Path) -> None:  # header intact, tensor data cut short
    w = p / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-64])


def _negative_config(p: Path) -> None:
    c = json.loads((p / "config.json").read_text())
    c["n_embd"] = -32
    (p / "config.json").write_text(json.dumps(c))


def _garbled_config(p: Path) -> None:
    (p / "config.json").write_text("{not json")


def _no_tokenizer(p: Path) -> None:
    for f in os.listdir(p):
        if "token" in f:
            os.remove(p / f)


def _pickle_only(p: Path) -> None:
    import torch
    from safetensors.torch import load_file

    sd = load_file(p / "model.safetensors")
    os.remove(p / "model.safetensors")
    torch.save({**sd, "payload": os.system}, p / "pytorch_model.bin")  # not weights-only


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated weights": (_truncate, "cannot load the model weights: SafetensorError"),
    "corrupt weights header": (_corrupt_header, "cannot load the model weights: SafetensorError"),
    "weights cut short": (_short_body, "cannot load the model weights"),
    "negative config size": (_negative_config, "negative dimension"),
    "garbled config": (_garbled_config, "cannot load the model config"),
    "no tokenizer": (_no_tokenizer, "expected a tokenizer"),
    "pickle-only checkpoint": (_pickle_only, "pickle that torch refuses to load safely"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_model_folder_is_one_line(tiny_hf_dir: Path, tmp_path: Path, case: str) -> None:
    damage, fragment = CASES[case]
    folder = tmp_path / "m"
    shutil.copytree(tiny_hf_dir, folder)
    damage(folder)
    with pytest.raises(InputError) as info:
        load_model(f"hf:{folder}")
    msg = str(info.value)
    assert msg.startswith(f"hf:{folder}: ") and "\n" not in msg and fragment in msg, msg
    doc = tmp_path / "doc.txt"
    doc.write_text("some text to score")
    res = CliRunner().invoke(main, ["score", str(doc), "--model", f"hf:{folder}"])
    err = res.stderr.strip()
    assert res.exit_code == 2 and res.stdout == "" and err.splitlines() == [err], err
    assert fragment in err


def test_the_intact_copy_loads(tiny_hf_dir: Path, tmp_path: Path) -> None:  # the cases above differ by their damage only
    folder = tmp_path / "m"
    shutil.copytree(tiny_hf_dir, folder)
    assert load_model(f"hf:{folder}").vocab_size > 2
