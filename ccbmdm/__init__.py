"""ccbmdm: contract-first integration of CCB and MDM.

The subpackages follow the repository's pipeline: ``ccbmdm.codegen`` turns contracts (and later
mappings) into typed code, ``ccbmdm.runtime`` runs it, ``ccbmdm.conformance`` checks it.
"""

__version__ = "0.1.0"
