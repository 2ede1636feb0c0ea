"""Everything about the model: frame sampling, manifest, network, data, training, export.

`frames` and `manifest` are torch-free and used by the service; the rest needs the
`[train]` extra.
"""
