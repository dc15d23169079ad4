"""Semantic Analogy: P -> P' :: I -> I'.

The installed package maps the repository's folders into one namespace:
``semantic_analogy.engine`` (engine/), ``semantic_analogy.daemon`` (daemon/)
and ``semantic_analogy.protocol`` (protocol/).
"""

__version__ = "0.1.0"
