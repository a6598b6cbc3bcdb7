"""The deliver package (see DESIGN.md)."""
