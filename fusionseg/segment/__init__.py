"""Segmenting video without ground truth: native-size masks, an overlay video and provenance per sequence.

Two ways in: the workflow's `segment` role (rules/segment.smk; each step a rule, `fusionseg
segment-outputs` the last), and `fusionseg segment VIDEO_OR_FOLDER... --out DIR`, which runs the same
steps in one process with a model bundle (fusionseg.models.bundle). Both write, per sequence,

    <dir>/masks/00000.png        Ours-Joint masks (0/255) at the source's native size
    <dir>/overlay.mp4            the source frames with the mask tinted and outlined (MPEG-4, mp4v)
    <dir>/masks-{appearance,motion}/, overlay-{appearance,motion}.mp4   the streams' own (optional)
    <dir>/segment.json           provenance: source, sizes, frame rate, threshold, flow, models
                                 (bundle SHA-256 and checkpoint SHA-256s)
"""
