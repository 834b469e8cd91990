"""Test-side settings package; holds the generated evaluation/local.py."""
