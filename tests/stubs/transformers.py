"""Stands in for transformers while `make test` runs the fast tests two at a time (see
xllamacpp.py beside it): a fast test that loads a real model fails here."""

raise ImportError("a test that runs a real model must be marked slow (tests/stubs/transformers.py)")
