"""Command-line entry points (one module per console script); the flags they share are in `options`."""
