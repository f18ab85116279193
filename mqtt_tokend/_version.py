"""The package version: a leaf every floor may import (the package root re-exports it)."""

__version__ = "0.1.0"
