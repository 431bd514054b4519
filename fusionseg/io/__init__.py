"""Small I/O helpers shared by every stage: atomic outputs and checked reading/writing.

- `fusionseg.io.atomic`: atomic outputs (`atomic_file`, `atomic_dir`): nothing partial under a final
  name, folders replaced only when they are ours, machine failures as one OutputError naming the output.
- `fusionseg.io.hdf5`: HDF5 files written atomically with failures and signals kept out of the library
  (`hdf5_output`), opened and read with errors that name the file.
- `fusionseg.io.images`: image, mask and label-image codecs; paths OpenCV can be given.
- `fusionseg.io.files`: torch payloads, CSV tables and file digests.
- `fusionseg.io.flo`: single flow fields (Middlebury .flo, KITTI 16-bit PNG); imported by name.

The names below are the package's I/O vocabulary; import them from here.
"""

from fusionseg.io.atomic import (
    OUTPUT_MARKER,
    FormerOutput,
    atomic_dir,
    atomic_file,
    check_replaceable,
    temporary_path,
    write_bytes,
    write_faults_named,
)
from fusionseg.io.files import file_sha256, fingerprint, load_torch, read_table, save_torch
from fusionseg.io.hdf5 import hdf5_output, open_hdf5, read_hdf5
from fusionseg.io.images import (
    opencv_path,
    read_image,
    read_label_image,
    read_mask,
    utf8_path,
    write_image,
    write_labels,
    write_mask,
)

__all__ = [
    "OUTPUT_MARKER",
    "FormerOutput",
    "atomic_dir",
    "atomic_file",
    "check_replaceable",
    "file_sha256",
    "fingerprint",
    "hdf5_output",
    "load_torch",
    "open_hdf5",
    "opencv_path",
    "read_hdf5",
    "read_image",
    "read_label_image",
    "read_mask",
    "read_table",
    "save_torch",
    "temporary_path",
    "utf8_path",
    "write_bytes",
    "write_faults_named",
    "write_image",
    "write_labels",
    "write_mask",
]
