"""Seed-compatible Python APIs of the methods (DICEFER, UAFER)."""
