"""Bootstrapping the motion stream's training data: pseudo labels from weakly labelled (boxed) video.

`filters` holds the per-frame tests of the paper, `report` builds the funnel and quality tables, and
`run` ties them to the files of the stage contract and writes the kept samples into shards
(`fusionseg.shards`). The `bootstrap` config section is checked by `fusionseg.config.section_params`.
"""
