"""flipbench: can a language model follow a requested probability distribution?"""

__version__ = "0.1.0"
