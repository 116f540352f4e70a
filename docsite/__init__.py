"""The documentation site: reference pages generated from a project, built with mkdocs-material.

Integrators read contracts and mappings far more often than they edit them; the site publishes
what the compiler already knows (the contracts' IR, the flow catalogue, the lineage) so that the
reference never drifts from the code (docs/contracts.md, docs/mappings.md).
"""
