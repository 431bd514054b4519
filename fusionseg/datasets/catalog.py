"""Cheap sequence listing for every dataset layout (folder and file names only, nothing decoded).

The config checks and the Snakefile call `list_sequences` at parse time, so it must stay fast even on
full-size datasets: it lists directories and never opens an image or a video.
"""

from __future__ import annotations

import re
from pathlib import Path

from fusionseg.errors import ConfigError, InputError

LAYOUTS = ("davis", "segtrackv2", "youtube-objects", "imagenet-vid", "video", "synthetic", "images", "pascal-voc")
# Still photos with masks: they train the appearance stream only (no motion) and are one "sequence" each.
IMAGE_LAYOUTS = ("images", "pascal-voc")
VOC_SPLITS = ("train", "val", "trainval", "train_aug")
# ImageNet-VID's annotated splits (Data/VID/<split>); its test snippets have no boxes.
VID_SPLITS = ("train", "val")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
# The one rule for dataset and sequence names: they become folder names and command-line words, so they
# hold no space, quote, slash or shell character. The schema's $defs/name pattern and the workflow's
# wildcard constraints are this regex (tests/test_workflow_trust.py checks that they agree).
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+-]*"
NAME_RULE = "letters, digits and . _ + - (not first)"
_NAME = re.compile(NAME_PATTERN)


def natural_key(name: str) -> list:
    """Sort key that orders 'f2' before 'f10' (SegTrack and YouTube-Objects frame names are arbitrary)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def synthetic_names(count: int) -> list[str]:
    return [f"clip{i:03d}" for i in range(count)]


def check_name(name: str, where: str | Path) -> None:
    """An InputError naming `where` (the folder or file the name comes from) unless `name` is a valid name."""
    if not _NAME.fullmatch(name):
        raise InputError(f"{where}: name '{name}' is not allowed (names are {NAME_RULE}); rename it")


def video_name(stem: str) -> str:
    """The sequence name of a video file: its stem with every run of other characters replaced by '_',
    and leading non-alphanumerics and trailing '_' dropped ('my clip (1)' -> 'my_clip_1')."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", stem)
    return re.sub(r"^[^A-Za-z0-9]+|_+$", "", name)


def list_sequences(name: str, dataset: dict) -> list[str]:
    """Sequence names of the declared dataset `name` (a config `datasets.<name>` entry, defaults filled).

    Honours the entry's `image_set` (DAVIS) and `sequences` (a restriction; naming a sequence the
    dataset lacks is an error). A name outside the name rule is an error naming its folder or file,
    unless the restriction leaves it out.
    """
    layout = dataset["layout"]
    if layout == "synthetic":
        available = dict.fromkeys(synthetic_names(dataset.get("synthetic", {}).get("sequences", 8)), f"datasets.{name}")
    elif layout in IMAGE_LAYOUTS:
        available = {_image_set_name(name, dataset): f"datasets.{name}"}
    else:
        available = _list_on_disk(name, layout, dataset)
    wanted = dataset.get("sequences") or list(available)
    missing = [s for s in wanted if s not in available]
    if missing:
        raise ConfigError(
            f"datasets.{name}.sequences: {', '.join(missing)} not found in {dataset.get('root')} "
            f"(it has {len(available)} sequence(s))"
        )
    for sequence in wanted:
        check_name(sequence, available[sequence])
    return list(wanted)


def _list_on_disk(name: str, layout: str, dataset: dict) -> dict[str, Path]:
    """Sequence name -> the folder or file it comes from, sorted by name."""
    if not dataset.get("root"):
        raise ConfigError(f"datasets.{name}.root: required for layout '{layout}'")
    root = Path(dataset["root"])
    if not root.exists():
        raise InputError(f"{root}: dataset root of '{name}' does not exist")
    if layout == "davis":
        found = _davis_names(root, dataset.get("resolution", "480p"), dataset.get("image_set"))
    elif layout == "imagenet-vid":
        found = imagenet_vid_sequence_dirs(root, _vid_split(name, dataset))
    elif layout == "video":
        found = video_sequences(root)
    else:
        found = _subfolders(root / "JPEGImages")
    if not found:
        raise InputError(f"{root}: dataset '{name}' has no sequences (empty folder)")
    return dict(sorted(found.items()))


def _subfolders(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found")
    return {p.name: p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}


def _davis_names(root: Path, resolution: str, image_set: str | None) -> dict[str, Path]:
    if not image_set:
        return _subfolders(root / "JPEGImages" / resolution)
    path = Path(image_set) if Path(image_set).is_absolute() else root / "ImageSets" / image_set
    if not path.is_file():
        raise InputError(f"{path}: DAVIS image set file not found")
    return dict.fromkeys(_parse_image_set(path), path)


def _parse_image_set(path: Path) -> list[str]:
    """DAVIS-2017 sets list one name per line; DAVIS-2016 lists '/JPEGImages/480p/<seq>/00000.jpg ...'."""
    names: list[str] = []
    for line in path.read_text().splitlines():
        first = line.split()[0] if line.split() else ""
        name = Path(first).parent.name if "/" in first else first
        if name and name not in names:
            names.append(name)
    return names


def imagenet_vid_sequence_dirs(root: Path, split: str | None = None) -> dict[str, Path]:
    """Sequence name -> frame folder: every leaf folder below <root>/Data/VID, or below its `split`
    folder (train nests one level more: train/ILSVRC2015_VID_train_0000/<snippet>)."""
    if not (root / "Data" / "VID").is_dir():
        raise InputError(f"{root / 'Data' / 'VID'}: not an ImageNet-VID root (no Data/VID folder)")
    base = root / "Data" / "VID" / (split or "")
    if not base.is_dir():
        raise InputError(f"{base}: ImageNet-VID has no split folder '{split}'")
    found: dict[str, Path] = {}
    pending = [base]
    while pending:
        folder = pending.pop()
        subdirs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if not subdirs and folder != base:
            if folder.name in found:
                raise InputError(f"{folder}: sequence name also used by {found[folder.name]}")
            found[folder.name] = folder
        pending.extend(subdirs)
    return found


def _vid_split(name: str, dataset: dict) -> str | None:
    """An ImageNet-VID dataset's split: without one, every snippet below Data/VID counts, the test
    snippets (no boxes) included."""
    split = dataset.get("split")
    if split is not None and split not in VID_SPLITS:
        raise ConfigError(f"datasets.{name}.split: '{split}' is not an ImageNet-VID split with boxes ({', '.join(VID_SPLITS)})")
    return split


def video_files(root: Path) -> list[Path]:
    """The video files of a `video` dataset: `root` itself when it is a file, else those inside it."""
    if root.is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def video_sequences(root: Path) -> dict[str, Path]:
    """Sequence name (`video_name` of the stem) -> video file of a `video` dataset; a file without a
    usable name, or two files with one name, is an error naming them."""
    found: dict[str, Path] = {}
    for path in video_files(root):
        name = video_name(path.stem)
        if not name:
            raise InputError(f"{path}: no usable sequence name in this file name (names are {NAME_RULE}); rename it")
        if name in found:
            raise InputError(f"{path}: same sequence name '{name}' as {found[name].name}; rename one of them")
        found[name] = path
    return found


def image_set_name(layout: str, split: str | None, sbd_root: str | None) -> str:
    """The one "sequence" of a still-image dataset: its split (pascal-voc) or "images"."""
    if layout == "images":
        return "images"
    return split or ("train_aug" if sbd_root else "train")


# Values that mean "not set" for keys the schema fills with a default.
_UNSET_VALUES = {"images": "images", "masks": "masks", "mask_threshold": 0}
# Keys that only the other still-image layout reads: setting one is a mistake, not a no-op.
_FOREIGN_KEYS = {
    "images": ("split", "sbd_root"),
    "pascal-voc": ("images", "masks", "list", "mask_threshold", "void_label"),
}


def foreign_image_keys(layout: str, values: dict) -> list[str]:
    """The keys in `values` that are set but not read by the still-image layout `layout`."""
    return [k for k in _FOREIGN_KEYS[layout] if values.get(k) is not None and values.get(k) != _UNSET_VALUES.get(k)]


def _image_set_name(name: str, dataset: dict) -> str:
    """Checks what a still-image dataset needs from the folder names alone; returns its one sequence."""
    layout = dataset["layout"]
    foreign = foreign_image_keys(layout, dataset)
    if foreign:
        raise ConfigError(f"datasets.{name}.{foreign[0]}: not read by layout '{layout}'")
    if not dataset.get("root"):
        raise ConfigError(f"datasets.{name}.root: required for layout '{layout}'")
    root = Path(dataset["root"])
    if layout == "images":
        for key in ("images", "masks"):
            _require_dir(root / dataset.get(key, key), f"datasets.{name}.{key}")
        return image_set_name(layout, None, None)
    split, sbd_root = dataset.get("split"), dataset.get("sbd_root")
    resolved = image_set_name(layout, split, sbd_root)
    if resolved == "train_aug" and not sbd_root:
        raise ConfigError(f"datasets.{name}.split: train_aug needs sbd_root (the SBD dataset/ folder)")
    _require_dir(root / "ImageSets" / "Segmentation", f"datasets.{name}.root")
    if sbd_root:
        _require_dir(Path(sbd_root), f"datasets.{name}.sbd_root")
    return resolved


def _require_dir(folder: Path, key: str) -> None:
    if not folder.is_dir():
        raise ConfigError(f"{key}: folder '{folder}' does not exist")
