"""Property-based fuzzing: no input crashes the package, a refusal says why, nothing is lost."""
