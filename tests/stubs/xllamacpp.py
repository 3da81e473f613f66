"""Stands in for llama.cpp's runtime while `make test` runs the fast tests two at a time: a fast
test that loads a real model fails here, because the model tests run alone (`-m slow`, after)
where llama.cpp's spinning threads have the cores to themselves."""

raise ImportError("a test that runs a real model must be marked slow (tests/stubs/xllamacpp.py)")
