"""The flow stage's option values, importable without OpenCV, torch or h5py (the CLI parser needs them)."""

METHODS = ("tvl1", "dis", "farneback", "tvl1-opencv", "segflow")
NORMALIZATIONS = ("per_frame", "fixed")
