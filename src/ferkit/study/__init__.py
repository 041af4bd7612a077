"""Paired-seed studies (``ferkit compare``): train configurations over seeds, summarise paired differences."""
