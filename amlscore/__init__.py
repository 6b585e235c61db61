"""The `amlscore` console script (thin: parsing and printing only)."""
