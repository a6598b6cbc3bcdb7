"""`python -m tailormail` runs the CLI."""

from tailormail.cli import main

main()
