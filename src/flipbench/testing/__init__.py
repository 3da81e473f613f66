"""Test helpers shipped with flipbench.

Import from the submodule (``from flipbench.testing.fault_server import FaultServer``): importing
it here would make ``python -m flipbench.testing.fault_server`` warn about a double import.
"""
