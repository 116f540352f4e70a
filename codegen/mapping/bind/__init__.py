"""The binder in stages: one mapping bound to the contracts and compiled to transformer source
(``binder.Binder`` lists the steps)."""

from ccbmdm.codegen.mapping.bind.binder import Binder
from ccbmdm.codegen.mapping.bind.emit import MODULES, plain
from ccbmdm.codegen.mapping.bind.paths import elements, leaves

__all__ = ["MODULES", "Binder", "elements", "leaves", "plain"]
