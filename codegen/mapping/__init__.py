"""The mapping compiler: YAML mappings in, typed transformers and lineage out."""
