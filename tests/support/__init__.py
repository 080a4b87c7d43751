"""Test helpers shared by every test module: the function app, Azurite, leak checks."""
