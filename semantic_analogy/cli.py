"""Command-line entry point (filled in below)."""
def main(argv=None) -> int:
    return 0
