"""Experiment × intervention × model matrices: every cell an ordinary run (`flipbench matrix`)."""
