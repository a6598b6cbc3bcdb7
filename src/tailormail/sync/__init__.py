"""Data sync: scheduled pulls, outbound destinations, run logs and health."""
