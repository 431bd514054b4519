"""Segmenting video without ground truth: native-size masks, an overlay video and provenance per sequence.

Two ways in: the workflow's `segment` role (rules/segment.smk; each step a rule, `fusionseg
segment-outputs` the last), and `fusionseg segment VIDEO_OR_FOLDER... --out DIR`, which runs the same
steps in one process with a model bundle (fusionseg.bundles). Both write, per sequence,

    <dir>/masks/00000.png        the chosen method's masks (0/255) at the source's native size (the
                                 workflow: Ours-Joint; `fusionseg segment --method`: the bundle's default)
    <dir>/overlay.webm           the source frames with the mask tinted and outlined (WebM, VP8)
    <dir>/masks-saliency/, overlay-saliency.webm   the Saliency row (U²-Netp per frame), for comparison
    <dir>/masks-<method>/, overlay-<method>.webm   other methods shown: Ours-Joint+TSN in the workflow,
                                 with stream overlays what the chosen method was made from
    <dir>/segment.json           provenance: method, source, sizes, frame rate, threshold, flow, models
                                 (bundle SHA-256 and checkpoint SHA-256s)
"""
