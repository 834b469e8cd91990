"""Per-user path settings (generated local.py files); see lib/README.md."""
