"""Still-image datasets (photos with object masks) that train the appearance stream.

Two layouts, each mapped onto a list of `ImagePair`s (one photo, one mask file, matched by stem):

* ``images``: ``<root>/<images>/<stem>.jpg`` (any image type) and ``<root>/<masks>/<stem>.png``, matched
  by file stem, optionally restricted to the stems of a list file (one per line). A mask value above
  ``mask_threshold`` is object; exactly ``void_label`` (if set) is void. The form of DUTS, ECSSD,
  MSRA10K, HKU-IS and the Weizmann horses.
* ``pascal-voc``: a VOC2012 folder (``JPEGImages/``, ``SegmentationClass/`` and ``SegmentationObject/``
  palette PNGs, ``ImageSets/Segmentation/{train,val,trainval}.txt``) and optionally SBD's ``dataset/``
  folder (``img/*.jpg``, ``cls/*.mat`` with struct GTcls, ``inst/*.mat`` with struct GTinst, both with
  field Segmentation; ``train.txt``, ``val.txt``). Split ``train_aug`` is SBD train + SBD val + VOC
  train minus VOC val (10,582 images in the paper). Classes 1..20 are object, 255 is void. A stem's
  mask is the VOC PNG where there is one (class, else object), else the SBD .mat (cls, else inst).

Every pair reads as (RGB uint8 (H, W, 3), mask uint8 (H, W)): 0 background, 1 object, 255 void.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusionseg.datasets.catalog import image_set_name, natural_key
from fusionseg.datasets.raw import image_files
from fusionseg.errors import InputError
from fusionseg.io import read_image, read_label_image

VOID = 255  # ignored by the loss (fusionseg.train.data.IGNORE)
VOC_CLASSES = 20
SBD_STRUCTS = ("GTcls", "GTinst")


@dataclass(frozen=True)
class LabelRule:
    """How a mask file's values become training labels."""

    threshold: int = 0
    void_label: int | None = None
    max_label: int | None = None  # class maps: any larger non-void value means a wrong file


VOC_CLASS_RULE = LabelRule(0, VOID, VOC_CLASSES)
VOC_INSTANCE_RULE = LabelRule(0, VOID)


@dataclass(frozen=True)
class ImagePair:
    """One training photo and its mask file."""

    stem: str
    image: Path
    mask: Path
    rule: LabelRule


@dataclass(frozen=True)
class ImageSet:
    """A still-image dataset: its one "sequence" name (split or "images") and its pairs, in order."""

    name: str
    pairs: list[ImagePair]


@dataclass(frozen=True)
class ImageSetOptions:
    """The dataset keys of both layouts (each layout reads its own; see the module docstring)."""

    images: str = "images"
    masks: str = "masks"
    list_file: str | None = None
    mask_threshold: int = 0
    void_label: int | None = None
    split: str | None = None
    sbd_root: str | None = None


def open_image_set(layout: str, root: str | Path, options: ImageSetOptions = ImageSetOptions()) -> ImageSet:
    """Pair every photo of the dataset with its mask; an error names the first file that does not fit.

    Only names are checked here (nothing decoded): unmatched stems, list files naming missing stems,
    empty folders. `read_pair` decodes and checks the contents.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset root does not exist")
    if layout == "images":
        return ImageSet(image_set_name(layout, None, None), _folder_pairs(root, options))
    if layout == "pascal-voc":
        split = image_set_name(layout, options.split, options.sbd_root)
        return ImageSet(split, _voc_pairs(root, split, Path(options.sbd_root) if options.sbd_root else None))
    raise InputError(f"layout '{layout}' is not a still-image layout (images, pascal-voc)")


def read_pair(pair: ImagePair) -> tuple[np.ndarray, np.ndarray]:
    """The photo (RGB uint8) and its training mask (0 / 1 / 255 void), checked to be the same size."""
    image = read_image(pair.image)
    labels = read_labels(pair.mask)
    if labels.shape != image.shape[:2]:
        raise InputError(
            f"{pair.mask}: mask is {labels.shape[1]}x{labels.shape[0]} but its photo {pair.image.name} "
            f"is {image.shape[1]}x{image.shape[0]}"
        )
    return image, training_mask(labels, pair.rule, pair.mask)


def read_labels(path: Path) -> np.ndarray:
    """A mask file's raw values: palette indices, grey values (RGB: the brightest channel) or SBD labels."""
    if path.suffix.lower() == ".mat":
        return read_sbd_segmentation(path)
    labels = read_label_image(path)
    return labels.max(axis=2) if labels.ndim == 3 else labels


def training_mask(labels: np.ndarray, rule: LabelRule, path: Path) -> np.ndarray:
    """Labels -> uint8 mask: 1 where label > threshold, VOID where label == void_label, else 0."""
    mask = (labels > rule.threshold).astype(np.uint8)
    void = labels == rule.void_label if rule.void_label is not None else np.zeros(labels.shape, bool)
    mask[void] = VOID
    if rule.max_label is not None:
        unknown = (labels > rule.max_label) & ~void
        if unknown.any():
            raise InputError(
                f"{path}: value {int(labels[unknown].max())} is neither a class (0..{rule.max_label}) "
                f"nor void ({rule.void_label}); not a class label map"
            )
    return mask


def read_sbd_segmentation(path: Path) -> np.ndarray:
    """Field Segmentation of the GTcls or GTinst struct of an SBD .mat file, as a 2-D label array."""
    from scipy.io import loadmat

    if not path.is_file():
        raise InputError(f"{path}: mask file not found")
    try:
        contents = loadmat(path, squeeze_me=True, struct_as_record=False)
    # scipy reports damaged files with unrelated types (OSError, IndexError, MatReadError, zlib.error).
    except Exception as exc:
        raise InputError(f"{path}: not a readable .mat file ({type(exc).__name__}: {exc})") from exc
    for struct in SBD_STRUCTS:
        segmentation = getattr(contents.get(struct), "Segmentation", None)
        if isinstance(segmentation, np.ndarray) and segmentation.ndim == 2 and segmentation.dtype.kind in "ui":
            return segmentation
    raise InputError(f"{path}: no {' or '.join(SBD_STRUCTS)} struct with a 2-D integer Segmentation field")


def read_stem_list(path: Path) -> list[str]:
    """The stems of a list file, one per line (blank lines skipped); an error on a repeated stem."""
    if not path.is_file():
        raise InputError(f"{path}: list file not found")
    stems: dict[str, None] = {}
    for stem in filter(None, (line.strip() for line in path.read_text().splitlines())):
        if stem in stems:
            raise InputError(f"{path}: stem '{stem}' is listed twice")
        stems[stem] = None
    if not stems:
        raise InputError(f"{path}: lists no images (empty list)")
    return list(stems)


def _folder_pairs(root: Path, options: ImageSetOptions) -> list[ImagePair]:
    photos, masks = _files_by_stem(root / options.images), _files_by_stem(root / options.masks)
    rule = LabelRule(options.mask_threshold, options.void_label)
    if options.list_file:
        stems = _listed_stems(_under(root, options.list_file), photos)
    else:
        stems = sorted(photos, key=natural_key)
        orphans = sorted(set(masks) - set(photos), key=natural_key)
        if orphans:
            raise InputError(f"{masks[orphans[0]]}: mask has no photo in {root / options.images}")
    unmasked = [stem for stem in stems if stem not in masks]
    if unmasked:
        raise InputError(f"{photos[unmasked[0]]}: photo has no mask in {root / options.masks}")
    return [ImagePair(stem, photos[stem], masks[stem], rule) for stem in stems]


def _files_by_stem(folder: Path) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for path in sorted(image_files(folder)):
        if path.stem in by_stem:
            raise InputError(f"{path}: same stem as {by_stem[path.stem].name} (one photo or mask per stem)")
        by_stem[path.stem] = path
    if not by_stem:
        raise InputError(f"{folder}: no images (empty folder)")
    return by_stem


def _listed_stems(list_path: Path, photos: dict[str, Path]) -> list[str]:
    stems = read_stem_list(list_path)
    missing = [stem for stem in stems if stem not in photos]
    if missing:
        raise InputError(f"{list_path}: names '{missing[0]}', which has no photo ({len(missing)} such stem(s))")
    return stems


def _under(root: Path, path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else root / path


def _voc_pairs(root: Path, split: str, sbd_root: Path | None) -> list[ImagePair]:
    if not (root / "ImageSets" / "Segmentation").is_dir():
        raise InputError(f"{root}: not a PASCAL VOC2012 folder (no ImageSets/Segmentation)")
    listed_by = _split_stems(root, split, sbd_root)
    return [_voc_pair(root, sbd_root, stem, list_path) for stem, list_path in listed_by.items()]


def _split_stems(root: Path, split: str, sbd_root: Path | None) -> dict[str, Path]:
    """Stem -> the list file that named it, in natural stem order."""
    voc_lists = root / "ImageSets" / "Segmentation"
    if split != "train_aug":
        return {stem: voc_lists / f"{split}.txt" for stem in read_stem_list(voc_lists / f"{split}.txt")}
    if sbd_root is None:
        raise InputError(f"{root}: split train_aug needs the SBD dataset folder (--sbd-root)")
    named: dict[str, Path] = {}
    for list_path in (sbd_root / "train.txt", sbd_root / "val.txt", voc_lists / "train.txt"):
        for stem in read_stem_list(list_path):
            named.setdefault(stem, list_path)
    for stem in read_stem_list(voc_lists / "val.txt"):
        named.pop(stem, None)
    return {stem: named[stem] for stem in sorted(named, key=natural_key)}


def _voc_pair(root: Path, sbd_root: Path | None, stem: str, list_path: Path) -> ImagePair:
    photos = [root / "JPEGImages" / f"{stem}.jpg"]
    masks = [
        (root / "SegmentationClass" / f"{stem}.png", VOC_CLASS_RULE),
        (root / "SegmentationObject" / f"{stem}.png", VOC_INSTANCE_RULE),
    ]
    if sbd_root is not None:
        photos.append(sbd_root / "img" / f"{stem}.jpg")
        masks += [(sbd_root / "cls" / f"{stem}.mat", VOC_CLASS_RULE), (sbd_root / "inst" / f"{stem}.mat", VOC_INSTANCE_RULE)]
    photo = next((p for p in photos if p.is_file()), None)
    if photo is None:
        raise InputError(f"{list_path}: names '{stem}', which has no photo ({' nor '.join(map(str, photos))})")
    mask = next(((p, rule) for p, rule in masks if p.is_file()), None)
    if mask is None:
        raise InputError(f"{list_path}: names '{stem}', which has no mask ({', '.join(str(p) for p, _ in masks)})")
    return ImagePair(stem, photo, *mask)
