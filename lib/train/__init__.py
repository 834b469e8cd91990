"""Training-side settings package; holds the generated admin/local.py."""
