"""The simulate package (see DESIGN.md)."""
