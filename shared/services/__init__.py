"""Use cases: each module turns a plain request into a plain result."""
