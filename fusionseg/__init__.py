"""FusionSeg: appearance + motion streams for fully automatic video object segmentation.

The package holds one module or subpackage per pipeline stage; each stage's command-line entry
(`fusionseg <step>`) lives in that stage's ``cli`` module and is what the Snakemake rules call.
"""

__version__ = "0.1.0"
