"""The live scheduler around the placement engine: watches, binds, evicts, explains."""
