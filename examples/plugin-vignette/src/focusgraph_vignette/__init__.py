"""focusgraph-vignette: an example focusgraph plugin providing the ``acme.vignette`` node type.

focusgraph finds the node through the ``focusgraph.nodes`` entry point declared in this
package's ``pyproject.toml``; nothing has to import this package by hand.
"""

from focusgraph_vignette.vignette import Vignette, apply_vignette, falloff, from_linear, to_linear

__all__ = ["Vignette", "apply_vignette", "falloff", "from_linear", "to_linear"]
