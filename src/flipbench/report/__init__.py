"""Figures and reports drawn from computed results."""
