"""A miniature of every dataset configs/davis-gpu.yaml reads, and a ResNet-101 checkpoint file, so that
the cluster config runs end to end on a CPU (in CI, on a laptop) before anyone books a cluster.

Each dataset is written in its own folder layout and file formats, as a cluster's copy has them and as
the readers (`readers.py`, `images.py`) take them, with real image content: textured objects moving over
textured backgrounds from the synthetic renderer (`synthetic.py`), a few small frames per sequence.

    OUT/VOCdevkit/VOC2012/             PASCAL VOC 2012: JPEGImages/*.jpg, SegmentationClass/*.png and
                                       SegmentationObject/*.png (palette: class ids 1..20 or instance ids,
                                       255 void along outlines), ImageSets/Segmentation/{train,val,trainval}.txt
    OUT/SBD/benchmark_RELEASE/dataset/ SBD: img/*.jpg, cls/*.mat (struct GTcls), inst/*.mat (struct GTinst),
                                       train.txt, val.txt
    OUT/DAVIS/                         DAVIS-2017: JPEGImages/480p/<seq>/00000.jpg, Annotations/480p/<seq>/
                                       00000.png (palette object ids), ImageSets/2016/ and ImageSets/2017/
    OUT/ILSVRC2015/                    ImageNet-VID: Data/VID/{train/ILSVRC2015_VID_train_0000,val,test}/
                                       <snippet>/000000.JPEG; Annotations/VID/ the same folders (not test),
                                       one PASCAL-VOC XML per frame (boxes only)
    OUT/youtube-objects/               JPEGImages/<seq>/frameNNNN.jpg, Annotations/<seq>/ (sparse masks)
    OUT/SegTrackv2/                    JPEGImages/<seq>/ (.png or .bmp), GroundTruth/<seq>/ (one sub-folder
                                       per object where there are several)
    OUT/models/resnet101-random.pth    torchvision's ResNet-101 state_dict keys, seeded random weights

The folders below OUT are named like those below /data in configs/davis-gpu.yaml, so pointing that
config at the miniature (configs/davis-gpu-miniature.yaml) swaps the /data prefix for OUT. Nothing is
downloaded; the same seed writes the same files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fusionseg.datasets.synthetic import SynthClip, SynthParams, render_clip, sequence_rng
from fusionseg.datasets.writer import JPEG_QUALITY, mask_box
from fusionseg.errors import InputError
from fusionseg.io import atomic_dir, save_torch, write_bytes, write_image, write_mask

if TYPE_CHECKING:
    import torch

VOC = Path("VOCdevkit/VOC2012")
SBD = Path("SBD/benchmark_RELEASE/dataset")
DAVIS = Path("DAVIS")
VID = Path("ILSVRC2015")
YOUTUBE_OBJECTS = Path("youtube-objects")
SEGTRACK = Path("SegTrackv2")
CHECKPOINT = Path("models/resnet101-random.pth")

# The DAVIS-2017 train sequences that are not in DAVIS-2016: configs/davis-gpu.yaml holds 15 of them
# out for the fusion layer, by name, so the miniature has them all.
DAVIS2017_HELD_OUT = (
    "boxing-fisheye", "cat-girl", "classic-car", "color-run", "crossing", "dancing", "disc-jockey",
    "dog-gooses", "dogs-scale", "drone", "kid-football", "koala", "lady-running", "lindy-hop", "longboard",
)  # fmt: skip
DAVIS2016_VAL = ("bmx-trees",)
# VOC train and val, and SBD train and val, overlapping as the real lists do: train_aug (SBD train + val +
# VOC train - VOC val) then takes a VOC mask (2007_000039), SBD masks, and drops a VOC val image.
VOC_LISTS = {"train": ("2007_000032", "2007_000039"), "val": ("2007_000033",)}
SBD_LISTS = {"train": ("2007_000033", "2007_000039", "2008_000002"), "val": ("2008_000008",)}
VOC_CLASSES = 20
VOID = 255
# Output scale of each residual branch of the random ResNet-101 (write_resnet101_checkpoint).
RESIDUAL_BRANCH_SCALE = 0.2
# ImageNet-VID snippets: (split folder, snippet, annotated); test snippets have no annotations.
VID_SNIPPETS = (
    ("train/ILSVRC2015_VID_train_0000", "ILSVRC2015_train_00000000", True),
    ("train/ILSVRC2015_VID_train_0000", "ILSVRC2015_train_00001000", True),
    ("val", "ILSVRC2015_val_00000000", True),
    ("test", "ILSVRC2015_test_00000000", False),
)
VID_SYNSETS = ("n02691156", "n02419796", "n02131653", "n02834778", "n02958343")  # airplane, antelope, bear, bicycle, car
YOUTUBE_OBJECTS_SEQUENCES = ("aeroplane0001",)
# A SegTrack-v2 sequence of several objects (name: objects): one numbered mask folder per object.
SEGTRACK_SEQUENCES = {"bmx": 2}


@dataclass(frozen=True)
class MiniatureSpec:
    """Sizes of the miniature: every image is width x height; video sequences have `frames` frames
    (the DAVIS-2017 held-out ones two: they only train the 24-parameter fusion layer)."""

    width: int = 128
    height: int = 96
    frames: int = 4
    seed: int = 2017


def write_miniature(out: str | Path, spec: MiniatureSpec = MiniatureSpec()) -> Path:
    """Write the miniature into the new folder `out`, all or nothing; return `out`."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: already exists and is not an empty folder (the miniature is written into a new one)")
    with atomic_dir(out, "miniature datasets") as tmp:
        write_voc(tmp / VOC, spec)
        write_sbd(tmp / SBD, spec)
        write_davis(tmp / DAVIS, spec)
        write_imagenet_vid(tmp / VID, spec)
        write_youtube_objects(tmp / YOUTUBE_OBJECTS, spec)
        write_segtrack(tmp / SEGTRACK, spec)
        write_resnet101_checkpoint(tmp / CHECKPOINT, spec.seed)
    return out


# --- still images: PASCAL VOC 2012 and SBD ---------------------------------------------------------------


def write_voc(root: Path, spec: MiniatureSpec) -> None:
    lists = root / "ImageSets" / "Segmentation"
    for stem in _stems(VOC_LISTS):
        image, classes, instances = _still_image(stem, spec)
        write_image(root / "JPEGImages" / f"{stem}.jpg", image, JPEG_QUALITY)
        write_palette_png(root / "SegmentationClass" / f"{stem}.png", _with_void_outlines(classes))
        write_palette_png(root / "SegmentationObject" / f"{stem}.png", _with_void_outlines(instances))
    _write_lists(lists, {**VOC_LISTS, "trainval": VOC_LISTS["train"] + VOC_LISTS["val"]})


def write_sbd(root: Path, spec: MiniatureSpec) -> None:
    """SBD's masks carry no void label (its outlines are in the Boundaries field instead)."""
    for stem in _stems(SBD_LISTS):
        image, classes, instances = _still_image(stem, spec)
        write_image(root / "img" / f"{stem}.jpg", image, JPEG_QUALITY)
        write_sbd_mat(root / "cls" / f"{stem}.mat", "GTcls", classes, np.unique(classes[classes > 0]))
        write_sbd_mat(root / "inst" / f"{stem}.mat", "GTinst", instances, _instance_classes(classes, instances))
    _write_lists(root, SBD_LISTS)


def write_sbd_mat(path: Path, struct: str, segmentation: np.ndarray, categories: np.ndarray) -> None:
    """An SBD annotation file: struct GTcls (Segmentation, Boundaries per class, CategoriesPresent) or
    GTinst (Segmentation, Boundaries per instance, Categories: each instance's class)."""
    from scipy.io import savemat
    from scipy.sparse import csc_matrix

    labels = range(1, VOC_CLASSES + 1) if struct == "GTcls" else range(1, int(segmentation.max()) + 1)
    boundaries = np.empty((len(labels), 1), dtype=object)
    for row, label in enumerate(labels):
        boundaries[row, 0] = csc_matrix(_outline(segmentation == label))
    key = "CategoriesPresent" if struct == "GTcls" else "Categories"
    fields = {"Segmentation": segmentation.astype(np.uint8), "Boundaries": boundaries, key: categories.astype(np.uint8).reshape(-1, 1)}
    buffer = io.BytesIO()
    savemat(buffer, {struct: fields}, do_compression=True)
    _write_file(path, buffer.getvalue())


def _still_image(stem: str, spec: MiniatureSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A photo, its class map (a VOC class per object) and its instance map, from one rendered frame."""
    clip = render_clip(stem, SynthParams(1, spec.height, spec.width, max_objects=2, seed=spec.seed))
    instances = clip.layers[0]
    rng = sequence_rng(spec.seed, f"classes:{stem}")
    object_classes = np.concatenate([[0], rng.integers(1, VOC_CLASSES + 1, size=int(instances.max()))])
    return clip.frames[0], object_classes[instances].astype(np.uint8), instances


def _instance_classes(classes: np.ndarray, instances: np.ndarray) -> np.ndarray:
    return np.array([classes[instances == k][0] for k in range(1, int(instances.max()) + 1)])


def _with_void_outlines(labels: np.ndarray) -> np.ndarray:
    """VOC marks a band along every object outline as void (255)."""
    voided = labels.copy()
    voided[_outline(labels > 0, width=2) | _outline_between_objects(labels)] = VOID
    return voided


def _outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    mask = mask.astype(np.uint8)
    return (cv2.dilate(mask, kernel) - cv2.erode(mask, kernel)) > 0


def _outline_between_objects(labels: np.ndarray) -> np.ndarray:
    return np.logical_or.reduce([_outline(labels == k) for k in np.unique(labels[labels > 0])], axis=0) & (labels > 0)


# --- video: DAVIS-2017, ImageNet-VID, YouTube-Objects, SegTrack-v2 ---------------------------------------


def write_davis(root: Path, spec: MiniatureSpec) -> None:
    """All frames annotated, palette object ids (DAVIS-2017); 2016 and 2017 image sets list names."""
    lengths = {**dict.fromkeys(DAVIS2017_HELD_OUT, 2), **dict.fromkeys(DAVIS2016_VAL, spec.frames)}
    for name, frames in lengths.items():
        clip = _clip(name, spec, frames, max_objects=2)
        for t in range(frames):
            write_image(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", clip.frames[t], JPEG_QUALITY)
            write_palette_png(root / "Annotations" / "480p" / name / f"{t:05d}.png", clip.layers[t])
    sets = root / "ImageSets"
    _write_lists(sets / "2016", {"val": DAVIS2016_VAL})
    _write_lists(sets / "2017", {"train": DAVIS2017_HELD_OUT, "val": DAVIS2016_VAL})


def write_imagenet_vid(root: Path, spec: MiniatureSpec) -> None:
    """Frames %06d.JPEG and, but for test snippets, one PASCAL-VOC XML each with the objects' boxes."""
    for folder, snippet, annotated in VID_SNIPPETS:
        clip = _clip(snippet, spec, spec.frames, max_objects=2)
        synsets = sequence_rng(spec.seed, f"synsets:{snippet}").choice(VID_SYNSETS, size=int(clip.layers.max()))
        for t in range(spec.frames):
            name = f"{t:06d}"
            write_image(root / "Data" / "VID" / folder / snippet / f"{name}.JPEG", clip.frames[t], JPEG_QUALITY, ".jpg")
            if annotated:
                xml = vid_annotation(snippet, name, clip.layers[t], synsets)
                _write_file(root / "Annotations" / "VID" / folder / snippet / f"{name}.xml", xml.encode())


def vid_annotation(snippet: str, frame: str, layers: np.ndarray, synsets: np.ndarray) -> str:
    """One frame's ImageNet-VID annotation: a box per visible object, its track id the object's; VID's
    corners are inclusive (xmax = our exclusive x1 - 1)."""
    objects = ""
    for k in range(1, len(synsets) + 1):
        if (layers == k).any():
            x0, y0, x1, y1 = mask_box(layers == k)
            objects += (
                f"<object><trackid>{k - 1}</trackid><name>{synsets[k - 1]}</name><bndbox><xmax>{x1 - 1}</xmax>"
                f"<xmin>{x0}</xmin><ymax>{y1 - 1}</ymax><ymin>{y0}</ymin></bndbox><occluded>0</occluded>"
                f"<generated>0</generated></object>"
            )
    height, width = layers.shape
    return (
        f"<annotation><folder>{snippet}</folder><filename>{frame}</filename><source><database>ILSVRC_2015</database>"
        f"</source><size><width>{width}</width><height>{height}</height></size>{objects}</annotation>\n"
    )


def write_youtube_objects(root: Path, spec: MiniatureSpec) -> None:
    """Frames frameNNNN.jpg; only some are annotated (grey 0/255 masks named after their frame)."""
    for name in YOUTUBE_OBJECTS_SEQUENCES:
        clip = _clip(name, spec, spec.frames, max_objects=1)
        for t in range(spec.frames):
            frame = f"frame{t + 1:04d}"
            write_image(root / "JPEGImages" / name / f"{frame}.jpg", clip.frames[t], JPEG_QUALITY)
            if t % 2:
                write_mask(root / "Annotations" / name / f"{frame}.png", clip.masks[t])


def write_segtrack(root: Path, spec: MiniatureSpec) -> None:
    """PNG frames <seq>_NNNNN.png; masks with the frames' names in GroundTruth/<seq>/<object>/."""
    for name, objects in SEGTRACK_SEQUENCES.items():
        clip = _clip(name, spec, spec.frames, max_objects=objects)
        for t in range(spec.frames):
            frame = f"{name}_{t:05d}"
            write_image(root / "JPEGImages" / name / f"{frame}.png", clip.frames[t])
            for k in range(1, objects + 1):
                write_mask(root / "GroundTruth" / name / str(k) / f"{frame}.png", clip.layers[t] == k)


def _clip(name: str, spec: MiniatureSpec, frames: int, max_objects: int) -> SynthClip:
    """A rendered clip with exactly `max_objects` objects visible in its first frame (the renderer
    draws 1..max_objects; later seeds are tried until the count fits), so multi-object layouts have
    several objects."""
    for attempt in range(100):
        clip = render_clip(f"{name}:{attempt}", SynthParams(frames, spec.height, spec.width, max_objects, spec.seed))
        if len(np.unique(clip.layers[0][clip.layers[0] > 0])) == max_objects:
            return clip
    raise RuntimeError(f"no clip with {max_objects} visible objects for {name}")


# --- the backbone checkpoint ---------------------------------------------------------------------------------


def write_resnet101_checkpoint(path: Path, seed: int) -> None:
    """ResNet-101 with torchvision's keys (ImageNet classifier included) and seeded random weights.

    Random convolutions under BatchNorm statistics of 0 and 1 grow the features by orders of magnitude
    over 101 layers, which a pretrained backbone's never do, and at DeepLab's learning rate the first
    steps then saturate every prediction. So, like a trained network: the statistics are measured on
    rendered frames (as training leaves them), and each residual branch's last BatchNorm is scaled down
    (torchvision's zero_init_residual in part) so that the sum over 23 blocks stays near unit scale.
    Saved like torchvision's ImageNet files: a plain dict without BatchNorm's num_batches_tracked.
    """
    import torch

    from fusionseg.models.resnet import ResNet

    torch.manual_seed(seed)
    model = ResNet("resnet101", dilated=False, num_classes=1000)
    for name, module in model.named_modules():
        if name.endswith(".bn3"):
            torch.nn.init.constant_(module.weight, RESIDUAL_BRANCH_SCALE)
    _measure_batchnorm_statistics(model, _calibration_images(seed))
    state = {key: value for key, value in model.state_dict().items() if not key.endswith("num_batches_tracked")}
    save_torch(path, state)


def _calibration_images(seed: int) -> torch.Tensor:
    """Rendered frames, normalised like the backbone's input (ImageNet mean and std)."""
    import torch

    from fusionseg.models.resnet import MEAN, STD

    params = SynthParams(1, 96, 128, max_objects=2, seed=seed)
    frames = np.stack([render_clip(f"calibration{i}", params).frames[0] for i in range(8)])
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    return (images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def _measure_batchnorm_statistics(model: torch.nn.Module, images: torch.Tensor) -> None:
    """Every BatchNorm's running statistics set to the plain average over `images` (one pass)."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        model.features(images)
    model.eval()


# --- files ---------------------------------------------------------------------------------------------------


def write_palette_png(path: Path, indices: np.ndarray) -> None:
    """An 8-bit palette PNG whose pixel values are the indices (VOC's and DAVIS's mask format)."""
    from PIL import Image

    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette(voc_palette())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    _write_file(path, buffer.getvalue())


def voc_palette() -> list[int]:
    """PASCAL VOC's colour map (DAVIS uses it too): the bits of an index spread over R, G and B."""
    colours = []
    for index in range(256):
        rgb, bits = [0, 0, 0], index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
        colours += rgb
    return colours


def _stems(lists: dict[str, tuple[str, ...]]) -> list[str]:
    return list(dict.fromkeys(stem for stems in lists.values() for stem in stems))


def _write_lists(folder: Path, lists: dict[str, tuple[str, ...]]) -> None:
    for name, stems in lists.items():
        _write_file(folder / f"{name}.txt", "".join(f"{stem}\n" for stem in stems).encode())


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, data)
