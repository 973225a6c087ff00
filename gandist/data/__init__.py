"""The data path: sources (user data) -> shards (tar + manifest.json) -> stream (per rank).

Never imports ray or the models. Import from the modules (gandist.data.shards, .loader,
.manifest, ...): this package imports nothing itself, so that `gandist --help`, `inspect` and
`train --dry-run` never load torch (which the loader and webdataset bring along).
"""
