"""batchdrop: CSV drops become validated rows in a keyed table, with a receipt for every file."""

__version__ = "0.1.0"
