"""Generated training path settings live here in local.py (git-ignored); see lib/README.md."""
