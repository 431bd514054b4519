"""Shards: byte-exact round trip, interrupted writes, corruption detection, multi-worker loading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from fusionseg.cli import main
from fusionseg.errors import InputError
from fusionseg.shards import Sample, ShardDataset, ShardWriter, verify_manifest, write_manifest
from fusionseg.shards.verify import read_manifest

SIZES = [(24, 32), (24, 32), (17, 29), (30, 20), (24, 32)]


def make_samples(with_rgb: bool = False, sizes=SIZES) -> list[Sample]:
    rng = np.random.default_rng(7)
    samples = []
    for index, (h, w) in enumerate(sizes):
        samples.append(Sample(
            flow=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            mask=rng.integers(0, 2, (h, w), dtype=np.uint8),
            dataset="weak", sequence=f"seq{index % 2}", frame=index, boxes=[(1, 2, w - 1, h - 3)],
            model_sha256="ab" * 32,
            rgb=rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if with_rgb else None,
        ))
    return samples


def write_shards(folder: Path, samples: list[Sample], shard_size: int = 2, compression: str = "lzf") -> Path:
    with ShardWriter(folder / "shards", shard_size, compression) as writer:
        for sample in samples:
            writer.add(sample)
    write_manifest(writer.rows, folder / "manifest.csv", shard_prefix="shards/")
    return folder / "manifest.csv"


@pytest.mark.parametrize("compression", ["lzf", "gzip", "none"])
def test_round_trip_is_byte_exact_with_provenance(tmp_path, compression):
    samples = make_samples(with_rgb=True)
    manifest = write_shards(tmp_path, samples, compression=compression)
    dataset = ShardDataset(manifest, with_rgb=True)
    assert len(dataset) == len(samples)
    for index, sample in enumerate(samples):
        got = dataset[index]
        assert got["image"].dtype == np.uint8 and got["mask"].dtype == np.uint8
        assert np.array_equal(got["image"], sample.flow)
        assert np.array_equal(got["mask"], sample.mask)
        assert np.array_equal(got["rgb"], sample.rgb)
        assert (got["dataset"], got["sequence"], got["frame"]) == (sample.dataset, sample.sequence, sample.frame)
    dataset.close()


def test_manifest_lists_shards_positions_and_checksums(tmp_path):
    manifest = write_shards(tmp_path, make_samples(), shard_size=2)
    table = read_manifest(manifest)
    assert table["shard"].tolist() == ["shards/shard-00000.h5"] * 2 + ["shards/shard-00001.h5"] * 2 + ["shards/shard-00002.h5"]
    assert table["position"].tolist() == [0, 1, 0, 1, 0]
    assert table["shard_samples"].tolist() == [2, 2, 2, 2, 1]
    assert table["shard_sha256"].nunique() == 3
    assert table["boxes"].iloc[2] == "[[1, 2, 28, 14]]"
    summary = verify_manifest(manifest)
    assert summary["samples"].tolist() == [2, 2, 1]


def test_transform_is_applied_last_to_the_sample_dict(tmp_path):
    manifest = write_shards(tmp_path, make_samples())
    dataset = ShardDataset(manifest, transform=lambda s: (s["image"][:4, :4].copy(), s["frame"]))
    image, frame = dataset[3]
    assert image.shape == (4, 4, 3) and frame == 3


def test_with_rgb_needs_shards_that_stored_rgb(tmp_path):
    manifest = write_shards(tmp_path, make_samples(with_rgb=False))
    with pytest.raises(InputError, match="without RGB"):
        ShardDataset(manifest, with_rgb=True)


def test_interrupted_shard_leaves_no_file_under_its_final_name(tmp_path):
    samples = make_samples()
    folder = tmp_path / "shards"
    with pytest.raises(RuntimeError, match="interrupted"):
        with ShardWriter(folder, 2) as writer:
            for sample in samples[:3]:
                writer.add(sample)
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in folder.iterdir()) == ["shard-00000.h5"]  # the complete one only
    assert [row["shard"] for row in writer.rows] == ["shard-00000.h5"] * 2


def corrupt_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def corrupt_truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


@pytest.mark.parametrize("corrupt", [corrupt_flip, corrupt_truncate])
def test_corrupt_shard_is_named_by_dataset_and_verifier(tmp_path, corrupt, capsys):
    manifest = write_shards(tmp_path, make_samples())
    corrupt(tmp_path / "shards" / "shard-00001.h5")
    dataset = ShardDataset(manifest)
    assert dataset[0]["frame"] == 0  # shards that are intact still read
    with pytest.raises(InputError, match=r"shard-00001\.h5: checksum mismatch"):
        dataset[2]
    with pytest.raises(InputError, match=r"shard-00001\.h5"):
        verify_manifest(manifest)
    assert main(["verify-shards", str(manifest)]) == 2
    assert "shard-00001.h5" in capsys.readouterr().err


def test_missing_shard_is_reported(tmp_path):
    manifest = write_shards(tmp_path, make_samples())
    (tmp_path / "shards" / "shard-00000.h5").unlink()
    with pytest.raises(InputError, match=r"shard-00000\.h5: shard listed in the manifest not found"):
        verify_manifest(manifest)


def test_manifest_rows_that_disagree_with_the_shard_are_reported(tmp_path):
    manifest = write_shards(tmp_path, make_samples())
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # shard-00000 loses one of its two rows
    with pytest.raises(InputError, match=r"shards/shard-00000\.h5 do not list positions"):
        verify_manifest(manifest)


def test_verify_shards_cli_reports_success(tmp_path, capsys):
    manifest = write_shards(tmp_path, make_samples())
    assert main(["verify-shards", str(manifest)]) == 0
    assert "3 shard(s), 5 sample(s)" in capsys.readouterr().out


def test_multi_worker_loader_matches_single_process(tmp_path):
    samples = make_samples(sizes=[(24, 32)] * 7)
    manifest = write_shards(tmp_path, samples, shard_size=3)
    dataset = ShardDataset(manifest)
    dataset[0]  # the parent now holds open handles; workers must open their own
    single = [dataset[i] for i in range(len(dataset))]
    loader = DataLoader(dataset, batch_size=None, num_workers=2, shuffle=False)
    multi = list(loader)
    assert [s["frame"] for s in multi] == [s["frame"] for s in single]
    for a, b in zip(single, multi):
        assert np.array_equal(a["image"], b["image"].numpy())
        assert np.array_equal(a["mask"], b["mask"].numpy())


def test_importing_the_package_does_not_import_torch_or_h5py():
    code = "import sys, fusionseg.shards, fusionseg.shards.cli; print('torch' in sys.modules, 'h5py' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"


def test_writer_stores_masks_as_zero_one_and_rejects_mismatched_arrays(tmp_path):
    sample = make_samples()[0]
    manifest = write_shards(tmp_path, [Sample(sample.flow, sample.mask * 255, "d", "s", 0, [], "x")])
    assert set(np.unique(ShardDataset(manifest)[0]["mask"])) <= {0, 1}
    with pytest.raises(ValueError, match="flow must be uint8"):
        with ShardWriter(tmp_path / "other", 2) as writer:
            writer.add(Sample(sample.flow[:-1], sample.mask, "d", "s", 0, [], "x"))
    assert list((tmp_path / "other").glob("*.h5")) == []


def test_each_shard_is_hashed_once_and_the_record_survives_pickling(tmp_path, monkeypatch):
    import pickle

    import fusionseg.shards.dataset as dataset_module

    manifest = write_shards(tmp_path, make_samples())
    calls = []
    real_check = dataset_module.check_checksum
    monkeypatch.setattr(dataset_module, "check_checksum", lambda shard, sha: (calls.append(shard.name), real_check(shard, sha)))
    dataset = ShardDataset(manifest)
    dataset.verify_all()
    assert sorted(calls) == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    copy = pickle.loads(pickle.dumps(dataset))  # what a spawned worker receives
    assert [copy[i]["frame"] for i in range(len(copy))] == [0, 1, 2, 3, 4]
    assert len(calls) == 3


def test_verify_all_names_a_corrupt_shard(tmp_path):
    manifest = write_shards(tmp_path, make_samples())
    corrupt_flip(tmp_path / "shards" / "shard-00002.h5")
    with pytest.raises(InputError, match=r"shard-00002\.h5: checksum mismatch"):
        ShardDataset(manifest).verify_all()
