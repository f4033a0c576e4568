"""Helpers shared by test modules; fixtures live in tests/conftest.py, plain functions here."""
import os
import pathlib

# The repository's root, whichever folder of tests/ a module sits in.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = pathlib.Path(__file__).resolve().parents[2]
