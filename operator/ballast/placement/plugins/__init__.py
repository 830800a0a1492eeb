"""Filter and score plugins, one per module, each with ``NAME``, ``Args`` and ``factory``."""
