"""Drawing: the paper's panels from arrays, and the adapters from a run's results to them.

Pure drawing (matplotlib loads when a module here is imported, so importers of the run
machinery import it lazily); which panels a run gets is its experiment kind's choice
(`flipbench.kinds`).
"""
