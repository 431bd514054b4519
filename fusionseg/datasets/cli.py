"""Subcommands of the datasets stage: `extract-frames` (any source -> DAVIS layout), `synth`,
`extract-images` (a still-image dataset -> its training cache) and `make-miniature` (every dataset of
configs/davis-gpu.yaml in miniature)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fusionseg.datasets.catalog import IMAGE_LAYOUTS, LAYOUTS, VIDEO_SUFFIXES, VOC_SPLITS

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_extract(subparsers)
    _register_synth(subparsers)
    _register_extract_images(subparsers)
    _register_make_miniature(subparsers)


def _register_extract(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract-frames",
        help="map one sequence of a dataset (or a video file) onto the DAVIS layout",
        description="Write JPEGImages/480p/SEQ, Annotations/480p/SEQ, Boxes/SEQ.csv and Tables/SEQ.csv under --out.",
    )
    parser.add_argument("source", help="dataset root, or a video file (or folder of videos) for layout video")
    parser.add_argument(
        "--layout", choices=[n for n in LAYOUTS if n != "synthetic" and n not in IMAGE_LAYOUTS],
        help="the source's layout; optional for a video file (video, from its suffix)",
    )
    parser.add_argument("--sequence", help="sequence name (for layout video: the file stem, with '_' for spaces and the like; the default)")
    parser.add_argument("--out", required=True, help="output DAVIS-layout root")
    parser.add_argument("--max-side", type=int, help="shrink frames so the longer side is at most this")
    parser.add_argument("--max-frames", type=int, help="keep only the first N frames")
    parser.add_argument("--mask-threshold", type=int, default=0, help="mask value > T is foreground (127: resampled SegTrack-v2)")
    parser.add_argument("--no-merge-objects", dest="merge_objects", action="store_false",
                        help="keep object ids as the mask PNG's grey values instead of 0/255")
    parser.add_argument("--boxes-from-masks", action="store_true", help="derive per-frame boxes from the masks")
    parser.add_argument("--resolution", default="480p", help="DAVIS resolution folder to read (output is always 480p)")
    parser.set_defaults(handler=_extract)


def _register_synth(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="render one synthetic clip with exact masks, boxes and flow",
        description="Write a synthetic clip in the DAVIS layout, with ground-truth forward flow in Flow/SEQ/*.flo.",
    )
    parser.add_argument("--out", required=True, help="output DAVIS-layout root")
    parser.add_argument("--sequence", required=True, help="clip name; with --seed it fixes the clip's content")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--max-objects", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-merge-objects", dest="merge_objects", action="store_false",
                        help="write the objects' ids 1..K as the masks' grey values instead of 0/255")
    parser.set_defaults(handler=_synth)


def _register_extract_images(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract-images",
        help="check a still-image dataset (photos + masks) and write its training cache",
        description="Check every photo and mask, shrink them to --max-side, and write OUT/manifest.csv and "
        "OUT/shards/shard-*.h5 (uint8 RGB photos; masks 0 background, 1 object, 255 void), all or nothing.",
    )
    parser.add_argument("root", help="folder holding the photo and mask folders (images), or VOC2012 (pascal-voc)")
    parser.add_argument("--layout", required=True, choices=IMAGE_LAYOUTS)
    parser.add_argument("--out", required=True, help="cache folder to write")
    parser.add_argument("--images", help="images layout: photo subfolder of ROOT (default images)")
    parser.add_argument("--masks", help="images layout: mask subfolder of ROOT (default masks)")
    parser.add_argument("--list", dest="list", help="images layout: file of stems to use, one per line (relative to ROOT or absolute)")
    parser.add_argument("--mask-threshold", type=int, help="images layout: mask value > T is object (default 0)")
    parser.add_argument("--void-label", type=int, help="images layout: mask value V is void, ignored by the loss (e.g. 255)")
    parser.add_argument("--split", choices=VOC_SPLITS, help="pascal-voc: default train_aug with --sbd-root, else train")
    parser.add_argument("--sbd-root", help="pascal-voc: SBD's dataset/ folder (img/, cls/, inst/, train.txt, val.txt)")
    parser.add_argument("--max-side", type=int, help="shrink so the longer side is at most this")
    parser.add_argument("--shard-size", type=int, default=1024, help="samples per HDF5 shard")
    parser.set_defaults(handler=_extract_images)


def _register_make_miniature(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-miniature",
        help="write a miniature of every dataset configs/davis-gpu.yaml reads, and a ResNet-101 file",
        description="Write, into the new folder OUT, PASCAL VOC 2012 + SBD, DAVIS-2017, ImageNet-VID, YouTube-Objects "
        "and SegTrack-v2 in their own layouts and formats (a few small rendered frames each) and a ResNet-101 "
        "checkpoint with seeded random weights. Run the cluster config on it with the overlay "
        "configs/davis-gpu-miniature.yaml (it expects OUT to be ./miniature).",
    )
    parser.add_argument("out", help="folder to create (must not exist, or be empty)")
    parser.set_defaults(handler=_make_miniature)


def _extract(args: argparse.Namespace) -> None:
    from fusionseg.datasets.readers import open_source
    from fusionseg.datasets.writer import ExtractOptions, write_sequence
    from fusionseg.errors import InputError

    if args.max_side is not None and args.max_side < 16:
        raise InputError(f"--max-side {args.max_side}: must be at least 16")
    if args.max_frames is not None and args.max_frames < 2:
        raise InputError(f"--max-frames {args.max_frames}: must be at least 2")
    layout = args.layout or _inferred_layout(Path(args.source))
    raw = open_source(layout, args.source, args.sequence, args.resolution, args.mask_threshold)
    options = ExtractOptions(args.max_side, args.max_frames, args.merge_objects, args.boxes_from_masks)
    sequence = write_sequence(raw, args.out, options)
    log.info("%s: %d frames -> %s", raw.name, len(sequence.table()), sequence.frames_dir)


def _inferred_layout(source: Path) -> str:
    """video for a video file (by its suffix); any other source must name its layout."""
    from fusionseg.errors import InputError

    if source.suffix.lower() in VIDEO_SUFFIXES:
        return "video"
    raise InputError(f"{source}: give --layout (it is only inferred for a video file: {', '.join(VIDEO_SUFFIXES)})")


def _synth(args: argparse.Namespace) -> None:
    from fusionseg.datasets.synthetic import SynthParams, write_clip
    from fusionseg.errors import InputError

    if args.frames < 2 or args.height < 32 or args.width < 32 or args.max_objects < 1:
        raise InputError("synth: needs --frames >= 2, --height and --width >= 32, --max-objects >= 1")
    params = SynthParams(args.frames, args.height, args.width, args.max_objects, args.seed)
    sequence = write_clip(Path(args.out), args.sequence, params, args.merge_objects)
    log.info("%s: %d synthetic frames -> %s", args.sequence, args.frames, sequence.frames_dir)


def _extract_images(args: argparse.Namespace) -> None:
    from fusionseg.datasets.catalog import foreign_image_keys
    from fusionseg.datasets.image_cache import write_image_cache
    from fusionseg.datasets.images import ImageSetOptions, open_image_set
    from fusionseg.errors import InputError

    keys = {k: getattr(args, k) for k in ("images", "masks", "list", "mask_threshold", "void_label", "split", "sbd_root")}
    foreign = foreign_image_keys(args.layout, keys)
    if foreign:
        raise InputError(f"--{foreign[0].replace('_', '-')}: not read by layout '{args.layout}'")
    if args.max_side is not None and args.max_side < 16:
        raise InputError(f"--max-side {args.max_side}: must be at least 16")
    if args.shard_size < 1:
        raise InputError(f"--shard-size {args.shard_size}: must be at least 1")
    options = ImageSetOptions(
        images=args.images or "images", masks=args.masks or "masks", list_file=args.list,
        mask_threshold=args.mask_threshold or 0, void_label=args.void_label, split=args.split, sbd_root=args.sbd_root,
    )  # fmt: skip
    image_set = open_image_set(args.layout, args.root, options)
    source = {"layout": args.layout, "root": str(Path(args.root).resolve()), "max_side": args.max_side, **keys}
    table = write_image_cache(image_set, args.out, args.max_side, args.shard_size, source)
    log.info("%s: %d images (%s) -> %s", args.root, len(table), image_set.name, args.out)


def _make_miniature(args: argparse.Namespace) -> None:
    from fusionseg.datasets.miniature import write_miniature

    out = write_miniature(args.out)
    log.info("miniature datasets and ResNet-101 checkpoint -> %s", out)
