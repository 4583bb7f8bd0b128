"""Writing a checkpoint folder never deletes what speechlm did not write (a planted file survives).

Commands that export a checkpoint refuse a non-empty folder without one unless ``--force``, before any work;
replacing a checkpoint keeps the other files of its folder, and a failure while writing leaves the old one.
"""

from __future__ import annotations

import json

import pytest
import torch

from speechlm.cli import main
from speechlm.errors import CheckpointError
from speechlm.train.checkpoint import (
    STATE_FILE,
    STATE_JSON,
    check_destination,
    checkpoint_files,
    load_checkpoint,
    save_checkpoint,
)
from speechlm.utils import atomic

PLANTED = "my_notes.txt"


def _plant(folder, name: str = PLANTED, text: str = "mine, not speechlm's\n"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def _weights(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((3, 2), value)}


def _no_temp_siblings(folder) -> None:
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")] == []


# ---- the CLI refuses before any work --------------------------------------------------------------------------

EXPORTS = [
    ["codec", "export", "{missing}", "-o", "{dest}"],
    ["lm", "export", "{missing}", "-o", "{dest}"],
    ["semantic", "cluster", "{missing}", "--data", "{missing}", "--layer", "1", "-o", "{dest}"],
    ["semantic", "cluster-asr", "--data", "{missing}", "-o", "{dest}"],
]


@pytest.mark.parametrize("argv", EXPORTS, ids=lambda a: " ".join(a[:2]))
def test_export_refuses_a_folder_it_did_not_write(tmp_path, capsys, argv) -> None:
    dest = tmp_path / "dest"
    planted = _plant(dest)
    # The source does not exist: if any work started before the check, the error would be about it.
    args = [a.format(missing=tmp_path / "no_such_run", dest=dest) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds no speechlm checkpoint" in err and "--force" in err, err
    assert planted.read_text() == "mine, not speechlm's\n"
    assert sorted(p.name for p in dest.iterdir()) == [PLANTED]


def test_export_force_keeps_the_planted_file_and_a_reexport_replaces_only_its_own(tmp_path, capsys) -> None:
    from speechlm.tokenizers.codec.builder import CodecConfig, build_codec

    tiny = dict(channels=8, max_channels=32, dim=16, n_q=4, codebook_size=64, istft_width=32, istft_blocks=1,
                enc_blocks=1, dec_blocks=1)
    src = save_checkpoint(tmp_path / "run", model=build_codec(CodecConfig(**tiny)), config={"model": tiny}, step=0)
    dest = tmp_path / "dest"
    planted = _plant(dest)
    assert main(["codec", "export", str(src), "-o", str(dest), "--force"]) == 0
    assert planted.read_text() == "mine, not speechlm's\n"
    first = load_checkpoint(dest)
    assert first.meta["extra"]["name"] == "codec_default"
    # Now a checkpoint: exporting onto it needs no --force, replaces the model and still keeps the planted file.
    assert main(["codec", "export", str(src), "-o", str(dest), "--name", "again"]) == 0
    assert load_checkpoint(dest).meta["extra"]["name"] == "again"
    assert planted.read_text() == "mine, not speechlm's\n"
    assert sorted(p.name for p in dest.iterdir()) == sorted([PLANTED, "config.json", "model.safetensors"])
    _no_temp_siblings(dest)
    capsys.readouterr()


def test_force_never_overwrites_a_file_named_like_a_checkpoint_file(tmp_path) -> None:
    dest = tmp_path / "dest"
    theirs = _plant(dest, "config.json", '{"theirs": true}')
    with pytest.raises(CheckpointError, match="config.json"):
        check_destination(dest, force=True)
    with pytest.raises(CheckpointError, match="config.json"):
        save_checkpoint(dest, model=_weights(1.0), step=1)
    assert theirs.read_text() == '{"theirs": true}'
    _no_temp_siblings(dest)


def test_destination_checks(tmp_path) -> None:
    check_destination(tmp_path / "new" / "deeper")  # missing: fine (created)
    (tmp_path / "empty").mkdir()
    check_destination(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="not a folder"):
        check_destination(tmp_path / "file")
    _plant(tmp_path / "full")
    with pytest.raises(CheckpointError, match="--force"):
        check_destination(tmp_path / "full")
    check_destination(tmp_path / "full", force=True)


# ---- replacing a checkpoint ------------------------------------------------------------------------------------

@pytest.fixture(params=["exchange", "file-by-file"])
def install_mode(request, monkeypatch):
    """Both ways a checkpoint is put in place: the atomic swap (Linux) and the per-file fallback."""
    if request.param == "file-by-file":
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    return request.param


def test_replacing_a_checkpoint_keeps_other_files(tmp_path, install_mode) -> None:
    dest = tmp_path / "ckpt"
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    save_checkpoint(dest, model=_weights(1.0), step=1, optimizer=opt)  # with training state
    planted = _plant(dest)
    (dest / "card").mkdir()
    (dest / "card" / "README.md").write_text("a model card")
    save_checkpoint(dest, model=_weights(2.0), step=2)  # inference only
    ck = load_checkpoint(dest)
    assert ck.step == 2 and torch.equal(ck.state_dict["w"], _weights(2.0)["w"])
    assert planted.read_text() == "mine, not speechlm's\n"
    assert (dest / "card" / "README.md").read_text() == "a model card"
    # The old checkpoint's training state belonged to it: gone with it, so it cannot be resumed wrongly.
    assert not (dest / STATE_FILE).exists() and not (dest / STATE_JSON).exists()
    assert checkpoint_files(dest) == {"config.json", "model.safetensors"}
    _no_temp_siblings(dest)


def test_a_failure_while_writing_leaves_the_old_checkpoint(tmp_path, install_mode) -> None:
    dest = tmp_path / "ckpt"
    save_checkpoint(dest, model=_weights(1.0), step=1)
    planted = _plant(dest)
    before = {p.name: p.read_bytes() for p in dest.iterdir()}

    def crash(folder) -> None:
        (folder / "half_written.bin").write_bytes(b"\0" * 10)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(dest, model=_weights(2.0), step=2, write_extra=crash)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert load_checkpoint(dest).step == 1
    assert planted.exists()
    _no_temp_siblings(dest)


def test_a_checkpoint_from_before_the_files_list_is_replaced_by_its_standard_files(tmp_path) -> None:
    dest = tmp_path / "ckpt"
    save_checkpoint(dest, model=_weights(1.0), step=1)
    meta = json.loads((dest / "config.json").read_text())
    del meta["files"]
    (dest / "config.json").write_text(json.dumps(meta))
    planted = _plant(dest)
    assert checkpoint_files(dest) == {"config.json", "model.safetensors"}
    save_checkpoint(dest, model=_weights(2.0), step=2)
    assert load_checkpoint(dest).step == 2 and planted.exists()


def test_write_extra_files_belong_to_the_checkpoint(tmp_path) -> None:
    dest = tmp_path / "lm"
    save_checkpoint(dest, model=_weights(1.0), step=1,
                    write_extra=lambda d: (d / "prompt.json").write_text("{}"))
    assert checkpoint_files(dest) == {"config.json", "model.safetensors", "prompt.json"}
    save_checkpoint(dest, model=_weights(2.0), step=2)  # an export without a default voice drops the old one
    assert not (dest / "prompt.json").exists()
