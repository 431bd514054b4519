"""Datasets: cheap sequence listing, readers that map every source onto the DAVIS layout, and the
synthetic video generator used by the embedded default pipeline.

Readers (``fusionseg.datasets.readers``) and the writer decode images and videos; this module only
re-exports the listing so that importing it at Snakefile parse time stays cheap.
"""

from fusionseg.datasets.catalog import LAYOUTS, list_sequences, natural_key

__all__ = ["LAYOUTS", "list_sequences", "natural_key"]
