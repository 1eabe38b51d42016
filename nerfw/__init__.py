"""nerfw: NeRF in the Wild for unconstrained photo collections, and novel views for visual localization."""
__version__ = "0.1.0"
